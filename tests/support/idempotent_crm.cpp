#include "support/idempotent_crm.h"

#include <httplib.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <algorithm>

namespace fb::test {

namespace {

// The content version in an idempotency key: "fb1:<integration>:rec<id>.v<version>:<hook>:..." (0
// when the key has none).
int64_t content_version_of(const std::string& key) {
  const size_t rec = key.find(":rec");
  const size_t v = rec == std::string::npos ? rec : key.find(".v", rec);
  if (v == std::string::npos) return 0;
  try {
    return std::stoll(key.substr(v + 2));
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

struct IdempotentCrm::Impl {
  httplib::Server server;
  std::thread thread;
  int port = 0;
  mutable std::mutex mu;
  std::map<std::string, std::string> by_key;  // guarded by mu
  // Activities logged per (integration, recording, content version), each under a key of its own.
  std::map<std::tuple<int64_t, int64_t, int64_t>, int> activities;
  int64_t calls = 0, replays = 0, seq = 0;
  int delay_ms = 0;

  std::string call(const std::string& body) {
    int delay = 0;
    {
      std::lock_guard lock(mu);
      delay = delay_ms;
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    nlohmann::json c = nlohmann::json::parse(body, nullptr, false);
    std::lock_guard lock(mu);
    ++calls;
    if (c.is_discarded() || !c.contains("idempotency_key")) return R"({"error":"malformed"})";
    const std::string key = c["idempotency_key"];
    if (auto it = by_key.find(key); it != by_key.end()) {
      ++replays;
      return it->second;
    }
    const std::string op = c.value("operation", "");
    nlohmann::json result = nullptr;
    if (op.rfind("find_", 0) != 0) {
      result = {{"id", op + "_" + std::to_string(++seq)}};
      if (op == "log_activity") {
        int64_t integration = c.value("integration_id", int64_t{0});
        int64_t recording = c["args"].value("recording_id", int64_t{0});
        ++activities[{integration, recording, content_version_of(key)}];
      }
    }
    std::string answer = result.dump();
    by_key[key] = answer;
    return answer;
  }
};

IdempotentCrm::IdempotentCrm() : impl_(std::make_unique<Impl>()) {
  impl_->server.Post("/crm", [this](const httplib::Request& req, httplib::Response& res) {
    res.set_content(impl_->call(req.body), "application/json");
  });
  // An answer goes out as head and body, two writes: without TCP_NODELAY the second waits for the
  // host's delayed ACK, ~40 ms per CRM call on a reused connection (the chaos suite's recovery sync
  // of ~700 meetings took 125 s instead of 15 under ASan).
  impl_->server.set_tcp_nodelay(true);
  impl_->server.new_task_queue = [] { return new httplib::ThreadPool(8); };
  impl_->port = impl_->server.bind_to_any_port("127.0.0.1");
  if (impl_->port <= 0) throw std::runtime_error("IdempotentCrm: cannot bind a loopback port");
  impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
  while (!impl_->server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

IdempotentCrm::~IdempotentCrm() {
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string IdempotentCrm::url() const { return "http://127.0.0.1:" + std::to_string(impl_->port) + "/crm"; }

std::map<std::pair<int64_t, int64_t>, int> IdempotentCrm::activities() const {
  std::lock_guard lock(impl_->mu);
  std::map<std::pair<int64_t, int64_t>, int> out;
  for (const auto& [k, n] : impl_->activities) {
    int& most = out[{std::get<0>(k), std::get<1>(k)}];
    most = std::max(most, n);
  }
  return out;
}

std::map<std::pair<int64_t, int64_t>, std::set<int64_t>> IdempotentCrm::versions() const {
  std::lock_guard lock(impl_->mu);
  std::map<std::pair<int64_t, int64_t>, std::set<int64_t>> out;
  for (const auto& [k, n] : impl_->activities) out[{std::get<0>(k), std::get<1>(k)}].insert(std::get<2>(k));
  return out;
}

int64_t IdempotentCrm::calls() const {
  std::lock_guard lock(impl_->mu);
  return impl_->calls;
}

int64_t IdempotentCrm::replays() const {
  std::lock_guard lock(impl_->mu);
  return impl_->replays;
}

void IdempotentCrm::set_delay_ms(int ms) {
  std::lock_guard lock(impl_->mu);
  impl_->delay_ms = ms;
}

}  // namespace fb::test

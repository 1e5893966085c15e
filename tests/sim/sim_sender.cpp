#include "sim/sim_sender.h"

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "crypto/encoding.h"
#include "crypto/hash.h"
#include "sim/sim_signing.h"

namespace fb::sim {
namespace {

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Target {
  std::string origin;  // scheme://host:port
  std::string host;
  std::string path;    // path and query
};

bool split_url(const std::string& url, Target* t) {
  size_t sep = url.find("://");
  if (sep == std::string::npos) return false;
  std::string scheme = url.substr(0, sep);
  std::transform(scheme.begin(), scheme.end(), scheme.begin(), [](unsigned char c) { return std::tolower(c); });
  if (scheme != "http" && scheme != "https") return false;
  size_t slash = url.find_first_of("/?#", sep + 3);
  std::string authority = url.substr(sep + 3, slash == std::string::npos ? std::string::npos : slash - sep - 3);
  if (authority.empty() || authority.find('@') != std::string::npos) return false;
  t->origin = scheme + "://" + authority;
  t->path = slash == std::string::npos ? "/" : url.substr(slash);
  if (t->path[0] != '/') t->path = "/" + t->path;
  if (size_t hash = t->path.find('#'); hash != std::string::npos) t->path.resize(hash);
  if (authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) return false;
    t->host = authority.substr(1, close - 1);
  } else {
    t->host = authority.substr(0, authority.find(':'));
  }
  std::transform(t->host.begin(), t->host.end(), t->host.begin(), [](unsigned char c) { return std::tolower(c); });
  return true;
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host == "::1") return true;
  // An IPv4 literal 127.a.b.c: four decimal parts, the first 127.
  int parts = 0;
  size_t pos = 0;
  while (pos <= host.size()) {
    size_t dot = host.find('.', pos);
    std::string part = host.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (part.empty() || part.size() > 3 || !std::all_of(part.begin(), part.end(), ::isdigit)) return false;
    if (std::stoi(part) > 255 || (parts == 0 && part != "127")) return false;
    ++parts;
    if (dot == std::string::npos) break;
    pos = dot + 1;
  }
  return parts == 4;
}

// The secret a rotated-out key would have had: derived, so the entry is well formed but wrong.
std::string rotated_out_secret(const std::string& secret) {
  std::string digest = fb::detail::sha256("rotated:" + secret);
  return "whsec_" + fb::detail::base64_encode(digest.substr(0, 24));
}

std::string tampered(const std::string& body) {
  std::string out = body;
  size_t p = out.find("\"title\":\"");
  if (p != std::string::npos) out.insert(p + 9, "[tampered] ");
  else out += " ";
  return out;
}

}  // namespace

const std::vector<double>& retry_schedule_s() {
  static const std::vector<double> s = {0, 5, 300, 1800, 7200, 18000, 36000, 36000};
  return s;
}

bool is_loopback_url(const std::string& url) {
  Target t;
  return split_url(url, &t) && is_loopback_host(t.host);
}

Sender::Sender(size_t threads, KnobsFn knobs, RecordFn record) : knobs_(std::move(knobs)), record_(std::move(record)) {
  for (size_t i = 0; i < std::max<size_t>(1, threads); ++i) threads_.emplace_back([this] { worker(); });
}

Sender::~Sender() { stop(); }

void Sender::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t Sender::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queue_.size() + in_flight_;
}

void Sender::submit(Delivery d) { schedule(std::move(d), std::chrono::steady_clock::now()); }

void Sender::schedule(Delivery d, TimePoint due) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    queue_.emplace(due, std::move(d));
  }
  cv_.notify_one();
}

void Sender::worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (stopping_) return;
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto due = queue_.begin()->first;
    if (due > std::chrono::steady_clock::now()) {
      cv_.wait_until(lock, due);
      continue;
    }
    Delivery d = std::move(queue_.begin()->second);
    queue_.erase(queue_.begin());
    ++in_flight_;
    lock.unlock();
    attempt(std::move(d));
    lock.lock();
    --in_flight_;
  }
}

void Sender::attempt(Delivery d) {
  Knobs k = knobs_();
  nlohmann::json rec = {{"kind", d.kind},         {"message_id", d.message_id}, {"webhook_id", d.webhook_id},
                        {"recording_id", d.recording_id}, {"url", d.url},       {"attempt", d.attempt},
                        {"duplicate", d.duplicate}, {"at_ms", wall_ms()}};
  Target t;
  if (!split_url(d.url, &t) || !is_loopback_host(t.host)) {
    rec["status"] = "refused";
    rec["ok"] = false;
    rec["error"] = "destination is not a loopback address; fathom-sim never contacts the outside";
    record_(rec);
    return;
  }

  httplib::Headers headers = {{"User-Agent", "Svix-Webhooks/1.81.0"}};
  std::string body = d.body;
  if (!d.secret.empty()) {
    int64_t ts = wall_ms() / 1000 + k.webhook_timestamp_offset_s;
    std::string secret = k.webhook_wrong_signature ? rotated_out_secret("wrong:" + d.secret) : d.secret;
    std::string sig = sign_webhook(secret, d.message_id, ts, d.body);
    if (k.webhook_two_signatures) sig = sign_webhook(rotated_out_secret(d.secret), d.message_id, ts, d.body) + " " + sig;
    if (k.webhook_tamper_body) body = tampered(body);
    headers.emplace("webhook-id", d.message_id);
    headers.emplace("webhook-timestamp", std::to_string(ts));
    headers.emplace("webhook-signature", sig);
    if (k.webhook_svix_headers) {
      headers.emplace("svix-id", d.message_id);
      headers.emplace("svix-timestamp", std::to_string(ts));
      headers.emplace("svix-signature", sig);
    }
    rec["timestamp"] = ts;
  }

  httplib::Client cli(t.origin);
  auto secs = static_cast<time_t>(k.webhook_timeout_s);
  auto usecs = static_cast<time_t>((k.webhook_timeout_s - static_cast<double>(secs)) * 1e6);
  cli.set_connection_timeout(secs, usecs);
  cli.set_read_timeout(secs, usecs);
  cli.set_write_timeout(secs, usecs);
  cli.set_follow_location(false);  // a 3xx is a failure, as with Svix
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  cli.enable_server_certificate_verification(false);  // loopback test receivers use self-signed certs
#endif
  auto res = cli.Post(t.path, headers, body, "application/json");
  bool ok = res && res->status >= 200 && res->status < 300;
  rec["status"] = res ? res->status : 0;
  rec["ok"] = ok;
  rec["done_ms"] = wall_ms();  // with at_ms: whether the attempt lay wholly inside an outage
  if (!res) rec["error"] = httplib::to_string(res.error());
  record_(rec);

  if (d.kind != "webhook") return;  // callbacks get one attempt
  if (ok) {
    if (k.webhook_duplicate && !d.duplicate) {
      d.duplicate = true;
      d.attempt += 1;
      submit(std::move(d));
    }
    return;
  }
  if (d.duplicate) return;
  const auto& schedule_s = retry_schedule_s();
  int max_attempts = static_cast<int>(std::min<int64_t>(k.webhook_max_attempts, static_cast<int64_t>(schedule_s.size())));
  if (d.attempt >= max_attempts) return;
  double delay = schedule_s[static_cast<size_t>(d.attempt)] * k.webhook_retry_scale;
  d.attempt += 1;
  auto due = std::chrono::steady_clock::now() +
             std::chrono::microseconds(static_cast<int64_t>(std::llround(delay * 1e6)));
  schedule(std::move(d), due);
}

}  // namespace fb::sim

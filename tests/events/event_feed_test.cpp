// The durable event feed: ids only grow and survive a restart of the process, a consumer reads by
// cursor with no gap, long polls wait for the next event, Server-Sent Events resume from
// Last-Event-ID, and retention deletes old rows without ever giving an id twice.
#define BOOST_TEST_MODULE fb_events
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "events/event_store.h"
#include "store/db.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

// `fathom-bridge serve` as a child process on a free loopback port.
class Sidecar {
 public:
  Sidecar(const std::string& config_path, int port) : port_(port) {
    pid_ = fork();
    if (pid_ == 0) {
      std::string bin = std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge";
      execl(bin.c_str(), bin.c_str(), "serve", "--config", config_path.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    BOOST_REQUIRE(pid_ > 0);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return http_get(url("/healthz")).status == 200; }),
                          "fathom-bridge serve did not answer /healthz");
  }
  ~Sidecar() { kill_now(); }
  // SIGKILL: no shutdown code runs, as in a crash.
  void kill_now() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

 private:
  int port_;
  pid_t pid_ = -1;
};

const HeaderMap kAuth{{"Authorization", "Bearer feed-token"}};

// The bridge's store: a SQLite file, or a PostgreSQL database of its own in the _postgresql run.
json store_config(const TempDir& dir) {
  const std::string target = dir.store("bridge.db");
  return {{store_key(target), target}};
}

// `serve` wants a complete OAuth app; nothing here uses it (loopback port 9: nothing listens).
json oauth_app(const std::string& api_origin) {
  return {{"client_id", "cid"},
          {"client_secret", "c-secret"},
          {"redirect_uri", "http://127.0.0.1:9/oauth/callback"},
          {"authorize_url", "http://127.0.0.1:9/external/v1/oauth2/authorize"},
          {"token_url", "http://127.0.0.1:9/external/v1/oauth2/token"},
          {"api_base", api_origin + "/external/v1"}};
}

// The default scripts, copied to dir/scripts so a test can change them.
std::string copy_scripts(const TempDir& dir) {
  std::string to = dir.file("scripts");
  BOOST_REQUIRE(run_command("cp -r '" + std::string(FB_SOURCE_DIR) + "/scripts' '" + to + "'").exit_code == 0);
  return to;
}

std::string write_config(const TempDir& dir, int port) {
  json cfg = {{"tokens", {{"key", "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}}},
              {"fathom", oauth_app("http://127.0.0.1:9")},
              {"frontend", {{"url", "http://127.0.0.1:9"}}},
              {"store", store_config(dir)},
              {"scripts", {{"dir", copy_scripts(dir)}}},
              {"sync", {{"scheduler", false}}},
              {"server", {{"port", port}, {"api_token", "feed-token"}}},
              {"log_level", "warn"}};
  std::string path = dir.file("config.json");
  std::ofstream(path) << cfg.dump();
  return path;
}

// Every event after `after`, page by page, as a consumer would read them.
json read_all(const Sidecar& s, int64_t after) {
  json all = json::array();
  for (;;) {
    json page = http_get(s.url("/v1/events?limit=2&after=" + std::to_string(after)), kAuth).json();
    for (auto& e : page["events"]) all.push_back(e);
    if (page["events"].empty()) return all;
    after = page["next"];
  }
}

// Changes mapping.lua (a comment more) and reloads: one script_loaded event.
void reload_scripts(const Sidecar& s, const TempDir& dir) {
  std::ofstream(dir.file("scripts/mapping.lua"), std::ios::app) << "\n-- edited\n";
  BOOST_REQUIRE_EQUAL(http_post_json(s.url("/v1/scripts/reload"), json::object(), kAuth).status, 200);
}

}  // namespace

BOOST_AUTO_TEST_CASE(cursor_reads_across_a_process_restart_without_gap_or_renumbering) {
  TempDir dir;
  const int port = free_port();
  const std::string cfg = write_config(dir, port);
  json before;
  {
    Sidecar s(cfg, port);
    BOOST_TEST(http_get(s.url("/v1/events")).status == 401);  // the bearer token guards the feed
    reload_scripts(s, dir);
    reload_scripts(s, dir);
    before = read_all(s, 0);
    s.kill_now();
  }
  // The load at start and the two reloads: ids 1, 2, 3.
  BOOST_REQUIRE_EQUAL(before.size(), 3u);
  for (size_t i = 0; i < before.size(); ++i) {
    BOOST_TEST(before[i]["id"] == static_cast<int64_t>(i + 1));
    BOOST_TEST(before[i]["type"] == "script_loaded");
    BOOST_TEST(before[i]["created_at"].get<int64_t>() > 0);
  }
  const int64_t cursor = before[1]["id"];  // the consumer had handled two of them when it went down

  Sidecar s(cfg, port);
  reload_scripts(s, dir);
  json after_restart = read_all(s, cursor);
  // Nothing lost (id 3 from before the crash), nothing renumbered, the new events continue the ids.
  BOOST_REQUIRE_EQUAL(after_restart.size(), 3u);  // id 3, the load at start (4) and the reload (5)
  BOOST_TEST(after_restart[0] == before[2]);
  for (size_t i = 0; i < after_restart.size(); ++i) BOOST_TEST(after_restart[i]["id"] == cursor + 1 + static_cast<int64_t>(i));
  json everything = read_all(s, 0);
  BOOST_REQUIRE_EQUAL(everything.size(), 5u);
  for (size_t i = 0; i < before.size(); ++i) BOOST_TEST(everything[i] == before[i]);
}

BOOST_AUTO_TEST_CASE(long_poll_waits_for_the_next_event_and_sse_resumes_from_last_event_id) {
  TempDir dir;
  const int port = free_port();
  Sidecar s(write_config(dir, port), port);
  json page = http_get(s.url("/v1/events?after=0"), kAuth).json();
  const int64_t last = page["next"];
  BOOST_REQUIRE(last >= 1);

  // Nothing new: a short wait answers with an empty page and the same cursor.
  json empty = http_get(s.url("/v1/events?wait=1&after=" + std::to_string(last)), kAuth).json();
  BOOST_TEST(empty["events"].empty());
  BOOST_TEST(empty["next"] == last);

  // A long poll is parked until an event arrives, then answers with it (well before its 30 s).
  auto start = std::chrono::steady_clock::now();
  auto poll = std::async(std::launch::async, [&] {
    HttpCall c;
    c.url = s.url("/v1/events?wait=30&after=" + std::to_string(last));
    c.headers = kAuth;
    c.timeout_s = 60;
    return http_request(c);
  });
  BOOST_TEST((poll.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout));  // still waiting
  reload_scripts(s, dir);
  HttpReply got = poll.get();
  const double waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  BOOST_REQUIRE_EQUAL(got.status, 200);
  json events = got.json()["events"];
  BOOST_REQUIRE_EQUAL(events.size(), 1u);
  BOOST_TEST(events[0]["id"] == last + 1);
  BOOST_TEST(events[0]["type"] == "script_loaded");
  BOOST_TEST(waited_s < 25.0);

  // Bad cursors and waits are refused by name.
  HttpReply bad = http_get(s.url("/v1/events?after=-1"), kAuth);
  BOOST_TEST(bad.status == 400);
  BOOST_TEST(bad.body.find("after") != std::string::npos);
  BOOST_TEST(http_get(s.url("/v1/events?wait=600"), kAuth).status == 400);

  // Server-Sent Events from Last-Event-ID: only the events after it, each with id, event and data.
  HeaderMap sse = kAuth;
  sse.emplace("Last-Event-ID", std::to_string(last));
  sse.emplace("Accept", "text/event-stream");
  HttpReply stream = http_get(s.url("/v1/events/stream?wait=1"), sse);
  BOOST_REQUIRE_EQUAL(stream.status, 200);
  BOOST_TEST(stream.header("Content-Type").rfind("text/event-stream", 0) == 0);
  BOOST_TEST(stream.body.find("id: " + std::to_string(last + 1) + "\nevent: script_loaded\ndata: {") != std::string::npos);
  BOOST_TEST(stream.body.find("id: " + std::to_string(last) + "\n") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(retention_deletes_old_events_and_never_reuses_an_id) {
  TempDir dir;
  fb::detail::FakeClock clock;
  auto db = fb::detail::Db::open(dir.store("events.db"));
  BOOST_REQUIRE(db.ok());
  auto store = fb::detail::EventStore::open(**db, clock, {.retention_s = 3600});
  BOOST_REQUIRE(store.ok());
  auto& st = **store;
  fb::Event e{"sync_completed", "acme", "u1", 7, "done", "{\"n\":1}"};
  BOOST_TEST(*st.append(e) == 1);
  BOOST_TEST(*st.append(e) == 2);
  BOOST_TEST(*st.prune() == 0);  // nothing is an hour old yet
  clock.advance_ms(3601 * 1000);
  BOOST_TEST(*st.append(e) == 3);  // an append prunes too (at most once a minute)
  auto left = st.read(0, 10);
  BOOST_REQUIRE_EQUAL(left->size(), 1u);
  BOOST_TEST((*left)[0].id == 3);
  BOOST_TEST((*left)[0].event.data_json == "{\"n\":1}");
  // Even when every row is gone, the next id follows the last one ever given.
  clock.advance_ms(3601 * 1000);
  BOOST_TEST(*st.prune() == 1);
  BOOST_TEST(*st.last_id() == 3);
  BOOST_TEST(*st.append(e) == 4);
  // A wait with nothing newer returns empty after its timeout (the fake clock makes it instant).
  auto none = st.wait(4, 10, 5000);
  BOOST_TEST(none->empty());
  BOOST_TEST(fb::detail::EventStore::open(**db, clock, {.retention_s = 0}).code() == fb::Code::kConfig);
}

namespace {

// tests/interop/verify_receiver.mjs as a child process; its log lines as JSON.
class VerifyingReceiver {
 public:
  VerifyingReceiver(const std::string& secret, const std::string& log, int fail_first) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      std::string script = std::string(FB_SOURCE_DIR) + "/tests/interop/verify_receiver.mjs";
      std::string fail = std::to_string(fail_first);
      execlp("node", "node", script.c_str(), secret.c_str(), log.c_str(), fail.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    BOOST_REQUIRE(pid_ > 0);
    BOOST_REQUIRE_MESSAGE(eventually([&] { return port_from_log() > 0; }), "verify_receiver.mjs did not start");
  }
  ~VerifyingReceiver() {
    ::kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
  }
  int port_from_log() const {
    auto lines = complete_lines();
    if (lines.empty()) return 0;
    std::istringstream in(lines[0]);
    std::string word;
    int port = 0;
    in >> word >> port;
    return word == "listening" ? port : 0;
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_from_log()) + path; }
  std::vector<json> requests(const std::string& path) const {
    std::vector<json> out;
    for (const std::string& line : complete_lines()) {
      if (line.empty() || line[0] != '{') continue;
      json j = json::parse(line);
      if (j["path"] == path) out.push_back(j);
    }
    return out;
  }

 private:
  // The log's lines that end in a newline: the receiver may be in the middle of appending the
  // last one (a reader can see part of a write), and a half line is not a request yet.
  std::vector<std::string> complete_lines() const {
    std::ifstream in(log_, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<std::string> out;
    for (size_t start = 0, nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) {
      out.push_back(text.substr(start, nl - start));
    }
    return out;
  }

  std::string log_;
  pid_t pid_ = -1;
};

}  // namespace

BOOST_AUTO_TEST_CASE(events_are_pushed_signed_and_retried_and_crm_calls_are_signed) {
  TempDir dir;
  const std::string secret = "whsec_" + std::string("cHVzaC1zZWNyZXQtZm9yLXRoZS1jcm0tMTIzNDU2Nzg=");  // 32 bytes
  VerifyingReceiver rx(secret, dir.file("receiver.log"), /*fail_first=*/1);
  SimProcess sim({"--meetings", "3", "--seed", "9"});
  const int port = free_port();
  json cfg = {{"tokens", {{"key", "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="}}},
              {"fathom", oauth_app(sim.base_url())},
              {"frontend", {{"url", "http://127.0.0.1:9"}}},
              {"store", store_config(dir)},
              {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
              {"sync", {{"scheduler", false}}},
              {"server", {{"port", port}, {"api_token", "feed-token"}, {"crm_url", rx.url("/crm")}}},
              {"events", {{"push_url", rx.url("/events")}, {"push_secret", secret}, {"push_backoff_ms", 200}}},
              {"log_level", "warn"}};
  std::ofstream(dir.file("config.json")) << cfg.dump();
  Sidecar s(dir.file("config.json"), port);

  // Events after push was configured: the load at start, a connect, a sync's mapped meetings.
  HttpReply connected = http_post_json(s.url("/v1/connect/api-key"),
                                       {{"tenant_id", "acme"}, {"user_id", "u1"}, {"api_key", sim.api_key("alice@example.com")}}, kAuth);
  BOOST_REQUIRE_MESSAGE(connected.status == 200, connected.body);
  const int64_t id = connected.json()["integration_id"];
  HttpReply job = http_post_json(s.url("/v1/sync"), {{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}, {"mode", "backfill"}}, kAuth);
  BOOST_REQUIRE_MESSAGE(job.status == 200, job.body);
  json feed = http_get(s.url("/v1/events?after=0"), kAuth).json()["events"];
  BOOST_REQUIRE(feed.size() >= 3u);  // script_loaded, connected, sync_completed

  // Every event arrives, verified by the official library; the first one after a 500 and a retry.
  BOOST_REQUIRE_MESSAGE(eventually([&] {
    std::set<std::string> delivered;
    for (const auto& r : rx.requests("/events")) {
      if (r["status"] == 200) delivered.insert(r["id"].get<std::string>());
    }
    return delivered.size() == feed.size();
  }), "not every event was pushed");
  auto pushed = rx.requests("/events");
  BOOST_TEST(pushed.size() == feed.size() + 1);  // one retry
  for (const auto& r : pushed) BOOST_TEST_CONTEXT(r.dump()) { BOOST_TEST(r["verified"] == true); }
  BOOST_TEST(pushed[0]["status"] == 500);
  BOOST_TEST(pushed[0]["id"] == "evt_" + std::to_string(feed[0]["id"].get<int64_t>()));
  // The retry keeps the webhook-id (later events did not wait for it), and the body is the event
  // as the feed has it.
  auto retry = std::find_if(pushed.begin() + 1, pushed.end(), [&](const json& r) { return r["id"] == pushed[0]["id"]; });
  BOOST_REQUIRE(retry != pushed.end());
  BOOST_TEST((*retry)["status"] == 200);
  BOOST_TEST(json::parse((*retry)["body"].get<std::string>()) == feed[0]);

  // The delivery log shows the attempts (a row is marked once its answer is back, just after the
  // receiver logged it).
  json log;
  BOOST_TEST(eventually([&] {
    log = http_get(s.url("/v1/events/deliveries"), kAuth).json();
    return std::all_of(log.begin(), log.end(), [](const json& d) { return d["status"] == "delivered"; });
  }));
  BOOST_REQUIRE_EQUAL(log.size(), feed.size());
  json oldest = log.back();
  BOOST_TEST(oldest["event_id"] == feed[0]["id"]);
  BOOST_TEST(oldest["status"] == "delivered");
  BOOST_TEST(oldest["attempts"] == 2);
  for (const auto& d : log) BOOST_TEST(d["status"] == "delivered");

  // The scripts' CRM calls were signed the same way, and verified.
  auto crm_calls = rx.requests("/crm");
  BOOST_TEST(!crm_calls.empty());
  for (const auto& r : crm_calls) BOOST_TEST_CONTEXT(r.dump()) {
    BOOST_TEST(r["verified"] == true);
    BOOST_TEST(r["id"].get<std::string>().rfind("crm_", 0) == 0);
  }
}

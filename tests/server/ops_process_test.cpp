// `fathom-bridge serve` as a process, the way systemd or a container runs it: SIGTERM while a long
// sync is running against fathom-sim ends the process cleanly, within server.shutdown_timeout_s,
// with exit status 0; its log lines are JSON objects with timestamps when log.format is "json".
#include <signal.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "crypto/encoding.h"
#include "support/http.h"
#include "support/serve_process.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;

namespace {

const std::string kCli = std::string(FB_BINARY_DIR) + "/plugin/cli/fathom-bridge";

}  // namespace

BOOST_AUTO_TEST_SUITE(serve_process)

BOOST_AUTO_TEST_CASE(sigterm_with_a_long_sync_running_exits_0_within_the_shutdown_timeout) {
  // 200 meetings at 5 a page, and Fathom allowing 3 calls a minute (a 429 with Retry-After after
  // that): the backfill would take many minutes, waiting out the rate limit between pages.
  SimProcess sim({"--meetings", "200", "--seed", "3", "--page-size", "5", "--rate-limit", "3", "--rate-window", "60"});
  TempDir dir;
  const int port = free_port();
  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  const std::string token = "serve-token";
  const std::string config = dir.file("serve.json");
  std::ofstream(config) << json{
      {"fathom", sim.fathom_settings(base + "/oauth/callback")},
      {"frontend", {{"url", base}}},
      {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 's'))}}},
      {"store", {{store_key(dir.store("serve.db")), dir.store("serve.db")}}},
      {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
      {"sync", {{"scheduler", false}, {"backfill_days", 3650}}},
      {"server", {{"port", port}, {"api_token", token}}},
      {"log", {{"format", "json"}, {"level", "info"}}}}.dump();
  const std::string log_path = dir.file("serve.log");
  ServeProcess serve(config, log_path);
  BOOST_REQUIRE(serve.pid() > 0);
  BOOST_REQUIRE_MESSAGE(eventually([&] { return http_get(base + "/healthz").status == 200; }), read_file(log_path));
  HeaderMap auth{{"Authorization", "Bearer " + token}};

  const std::string api_key = sim.api_key("alice@example.com");
  HttpReply connected = http_post_json(base + "/v1/connect/api-key",
                                       {{"tenant_id", "acme"}, {"user_id", "u1"}, {"api_key", api_key}}, auth);
  BOOST_REQUIRE_MESSAGE(connected.status == 200, connected.body);
  const int64_t id = connected.json()["integration_id"];

  // The host's sync call blocks while the sync runs.
  auto sync = std::async(std::launch::async, [&] {
    HttpCall call;
    call.method = "POST";
    call.url = base + "/v1/sync";
    call.headers = auth;
    call.body = json{{"tenant_id", "acme"}, {"user_id", "u1"}, {"integration_id", id}, {"mode", "backfill"}}.dump();
    call.content_type = "application/json";
    call.timeout_s = 120;
    return http_request(call);
  });
  BOOST_REQUIRE(eventually([&] {
    json jobs = http_get(base + "/v1/sync/jobs?status=running", auth).json();
    return jobs.size() == 1 && sim.counters()["api_calls_total"].get<int64_t>() >= 3;  // the minute's budget is spent
  }));
  // Still running: waiting out the rate limit (about a minute) before its next page.
  BOOST_REQUIRE(sync.wait_for(std::chrono::milliseconds(500)) == std::future_status::timeout);

  auto t0 = std::chrono::steady_clock::now();
  BOOST_REQUIRE(::kill(serve.pid(), SIGTERM) == 0);
  int status = serve.wait_exit(std::chrono::seconds(30));
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  BOOST_TEST_MESSAGE("SIGTERM to exit: " << took.count() << " ms");
  const std::string logs = read_file(log_path);
  BOOST_TEST_INFO(logs);
  BOOST_REQUIRE_MESSAGE(status != -1, "still running 30 s after SIGTERM");
  BOOST_TEST(WIFEXITED(status));
  BOOST_TEST(WEXITSTATUS(status) == 0);
  BOOST_TEST(took.count() < 10'000);  // server.shutdown_timeout_s, the default

  // The host's call was answered (the job record, cancelled at a safe point), not cut off.
  HttpReply answer = sync.get();
  BOOST_TEST_INFO(answer.body);
  BOOST_TEST(answer.status == 200);
  if (answer.status == 200) BOOST_TEST(answer.json()["status"] == "cancelled");

  // The store says so too, for the next start to resume from the checkpoint.
  CommandResult jobs = run_command(kCli + " jobs --json --config " + config + " 2>/dev/null");
  BOOST_TEST_INFO(jobs.output);
  BOOST_TEST(jobs.exit_code == 0);
  json recorded = json::parse(jobs.output, nullptr, false);
  BOOST_REQUIRE(recorded.is_array());
  BOOST_REQUIRE_EQUAL(recorded.size(), 1u);
  BOOST_TEST(recorded[0]["status"] == "cancelled");

  // log.format "json": every line is one object with an RFC 3339 UTC millisecond timestamp; the
  // sync's lines name its integration and tenant; the API key is never written.
  std::istringstream lines(logs);
  std::string line;
  int n = 0;
  bool scoped = false, shutdown = false;
  const std::regex ts(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  while (std::getline(lines, line)) {
    json j = json::parse(line, nullptr, false);
    BOOST_TEST_INFO(line);
    BOOST_REQUIRE(j.is_object());
    BOOST_TEST(std::regex_match(j["ts"].get<std::string>(), ts));
    BOOST_TEST(j.contains("level"));
    BOOST_TEST(j.contains("component"));
    BOOST_TEST(j.contains("message"));
    if (j.value("integration_id", int64_t{0}) == id && j.value("tenant_id", "") == "acme") scoped = true;
    if (j["message"].get<std::string>().find("stopped cleanly") != std::string::npos) shutdown = true;
    ++n;
  }
  BOOST_TEST(n > 2);
  BOOST_TEST(scoped);
  BOOST_TEST(shutdown);
  BOOST_TEST(logs.find(api_key) == std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

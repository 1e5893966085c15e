// fb_bench_fleet_tokens (issue 12): 50 concurrent token callers spread over 3 app servers
// (`fathom-bridge serve` processes) on one throwaway PostgreSQL, against fathom-sim with rotating
// single-use refresh tokens (a spent refresh token used again revokes the grant).
//
//   fb_bench_fleet_tokens [--rounds N] [--callers N] [--hosts N]
//
// Each round connects a new user (start on host 1, callback on host 2) with a 2 s access token,
// waits until it has expired, then releases the callers at once, caller i asking host i % hosts
// for the token over the sidecar's POST /v1/access-token. Per round: the refresh requests that
// reached the simulator (the fleet's single flight: must be 1), the callers answered 200, the
// distinct tokens handed out, and the callers' wait (p50/p99/max, ms). A last round asks for a
// token that is still fresh, for comparison. Exits 1 when a round made other than one refresh
// request or a caller failed.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "crypto/encoding.h"
#include "support/http.h"
#include "support/serve_process.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "support/wait.h"

using nlohmann::json;
using namespace fb::test;
using Steady = std::chrono::steady_clock;

namespace {

const std::string kToken = "bench-token";

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

int64_t counter(const json& c, const char* group, const char* key) {
  return c.contains(group) && c[group].contains(key) ? c[group][key].get<int64_t>() : 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The throwaway PostgreSQL of tests/support/pg_server.sh, stopped at the end.
struct PgServer {
  std::string dir;
  PgServer() {
    char tmpl[] = "/tmp/fb-bench-pg-XXXXXX";
    if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    const std::string script = std::string(FB_SOURCE_DIR) + "/tests/support/pg_server.sh";
    if (std::system((script + " start " + dir).c_str()) != 0) throw std::runtime_error("pg_server.sh start failed");
    setenv("FB_TEST_POSTGRES", dir.c_str(), 1);  // TempDir::store() now makes PostgreSQL databases
  }
  ~PgServer() {
    std::string cmd = std::string(FB_SOURCE_DIR) + "/tests/support/pg_server.sh stop " + dir;
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "pg_server.sh stop %s failed\n", dir.c_str());
  }
};

struct Round {
  std::string what;
  int64_t refreshes = 0, invalid_grant = 0;
  int ok = 0;
  size_t tokens = 0;
  std::vector<double> waits_ms;
};

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5, callers = 50, nhosts = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (a == "--callers") callers = std::atoi(argv[i + 1]);
    else if (a == "--hosts") nhosts = std::atoi(argv[i + 1]);
  }
  const std::string load_before = load_average();
  PgServer pg;
  TempDir dir;
  std::vector<int> ports;
  for (int i = 0; i < nhosts; ++i) ports.push_back(free_port());
  auto base = [&](int h) { return "http://127.0.0.1:" + std::to_string(ports[static_cast<size_t>(h)]); };
  const std::string callback = base(std::min(1, nhosts - 1)) + "/oauth/callback";
  SimProcess sim({"--revoke-grant-on-reuse", "--token-ttl", "2", "--redirect-uri", callback});
  const std::string url = dir.store("fleet");
  std::vector<std::unique_ptr<ServeProcess>> hosts;
  for (int i = 0; i < nhosts; ++i) {
    const std::string config = dir.file("host" + std::to_string(i + 1) + ".json");
    std::ofstream(config) << json{
        {"fathom", sim.fathom_settings(callback)},
        {"frontend", {{"url", base(0)}}},
        {"tokens", {{"key", fb::detail::base64_encode(std::string(32, 'b'))}}},
        {"store", {{"url", url}, {"pool_size", 4}}},
        {"scripts", {{"dir", std::string(FB_SOURCE_DIR) + "/scripts"}}},
        {"sync", {{"scheduler", false}}},
        {"server", {{"port", ports[static_cast<size_t>(i)]}, {"api_token", kToken}, {"threads", 24}}},
        {"log_level", "warn"}}.dump();
    hosts.push_back(std::make_unique<ServeProcess>(config, dir.file("host" + std::to_string(i + 1) + ".log")));
  }
  for (int i = 0; i < nhosts; ++i) {
    if (!eventually([&] { return http_get(base(i) + "/healthz").status == 200; })) {
      std::fprintf(stderr, "host %d did not start:\n%s\n", i + 1, read_file(dir.file("host" + std::to_string(i + 1) + ".log")).c_str());
      return 1;
    }
  }
  const HeaderMap auth{{"Authorization", "Bearer " + kToken}};

  // 50 callers released at once, caller i on host i % hosts; returns what the round measured.
  auto run_callers = [&](const std::string& user, int64_t id, const std::string& what) {
    json before = sim.counters();
    std::vector<HttpReply> replies(static_cast<size_t>(callers));
    std::vector<double> waits(static_cast<size_t>(callers));
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < callers; ++i) {
      threads.emplace_back([&, i] {
        while (!go) std::this_thread::yield();
        auto t0 = Steady::now();
        replies[static_cast<size_t>(i)] = http_post_json(
            base(i % nhosts) + "/v1/access-token", {{"tenant_id", "bench"}, {"user_id", user}, {"integration_id", id}}, auth);
        waits[static_cast<size_t>(i)] = std::chrono::duration<double, std::milli>(Steady::now() - t0).count();
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    json after = sim.counters();
    Round r;
    r.what = what;
    r.refreshes = counter(after, "token_requests", "refresh_token") - counter(before, "token_requests", "refresh_token");
    r.invalid_grant = counter(after, "token_errors", "invalid_grant") - counter(before, "token_errors", "invalid_grant");
    std::set<std::string> tokens;
    for (const HttpReply& rep : replies) {
      if (rep.status != 200) continue;
      ++r.ok;
      tokens.insert(rep.json()["access_token"].get<std::string>());
    }
    r.tokens = tokens.size();
    r.waits_ms = waits;
    return r;
  };

  std::vector<Round> results;
  std::vector<double> all_expired;
  int64_t last_id = 0;
  std::string last_user;
  for (int round = 1; round <= rounds; ++round) {
    const std::string email = "bench" + std::to_string(round) + "@example.com";
    sim.admin("POST", "/_sim/users", {{"email", email}, {"team", "Sales"}});
    sim.config({{"token_ttl_s", 2}});
    const std::string user = "u" + std::to_string(round);
    HttpReply started = http_post_json(base(0) + "/v1/connect/start",
                                       {{"tenant_id", "bench"}, {"user_id", user}, {"mode", "redirect"}}, auth);
    std::string location = sim.authorize_as(started.json()["authorize_url"], email);
    HttpReply cb = http_get(location);  // the callback lands on host 2
    HttpReply health = http_get(base(nhosts - 1) + "/v1/token-health?tenant_id=bench&user_id=" + user, auth);
    json list = health.json();
    if (cb.status != 302 || !list.is_array() || list.size() != 1) {
      std::fprintf(stderr, "round %d: connect failed (%d): %s\n", round, cb.status, health.body.c_str());
      return 1;
    }
    const int64_t id = list[0]["integration_id"].get<int64_t>();
    std::this_thread::sleep_for(std::chrono::milliseconds(3000));  // the 2 s token has expired
    sim.config({{"token_ttl_s", 86400}});                          // one refresh is enough
    Round r = run_callers(user, id, "expired token, round " + std::to_string(round));
    all_expired.insert(all_expired.end(), r.waits_ms.begin(), r.waits_ms.end());
    results.push_back(r);
    last_id = id;
    last_user = user;
  }
  results.push_back(run_callers(last_user, last_id, "fresh token (no refresh)"));
  const std::string load_after = load_average();

  bool good = true;
  std::printf("%d callers over %d hosts (fathom-bridge serve) on one PostgreSQL; load average before %s, after %s\n",
              callers, nhosts, load_before.c_str(), load_after.c_str());
  std::printf("%-28s %9s %13s %5s %6s %8s %8s %8s\n", "round", "refreshes", "invalid_grant", "ok", "tokens", "p50 ms",
              "p99 ms", "max ms");
  for (const Round& r : results) {
    std::printf("%-28s %9lld %13lld %5d %6zu %8.1f %8.1f %8.1f\n", r.what.c_str(), static_cast<long long>(r.refreshes),
                static_cast<long long>(r.invalid_grant), r.ok, r.tokens, percentile(r.waits_ms, 0.5),
                percentile(r.waits_ms, 0.99), percentile(r.waits_ms, 1.0));
    const bool expired = r.what.rfind("expired", 0) == 0;
    good = good && r.ok == callers && r.tokens == 1 && r.invalid_grant == 0 && r.refreshes == (expired ? 1 : 0);
  }
  std::printf("%-28s %9s %13s %5s %6s %8.1f %8.1f %8.1f\n", "all expired rounds", "", "", "", "",
              percentile(all_expired, 0.5), percentile(all_expired, 0.99), percentile(all_expired, 1.0));
  if (!good) std::printf("FAILED: a round made other than one refresh request, or a caller was refused\n");
  return good ? 0 : 1;
}

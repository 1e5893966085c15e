// Two bridge instances in two real processes (fork), each with its own SQLite connection to one
// database file, share one integration whose refresh tokens rotate (each works once). Every
// credential() call of either process wants a refresh (refresh buffer = token lifetime), and the
// test process keeps expiring the access tokens at Fathom so 401s force refreshes too. Through
// many refresh cycles nobody ever spends a spent refresh token: zero invalid_grant at the
// simulator, every API call eventually answered 200, and every refresh Fathom performed is the
// one stored in the database.
#define BOOST_TEST_MODULE fb_oauth_process
#include <boost/test/unit_test.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "core/log.h"
#include "oauth_fixture.h"
#include "support/http.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

using namespace fb;
using namespace fb::detail;
using fb::test::OAuthStack;
using fb::test::SimProcess;

namespace {

constexpr int kTokenTtl = 3600;

Config process_config(const std::string& base) {
  Config c = fb::test::oauth_test_config(base);
  c.tokens.refresh_lock_ttl_s = 10;
  c.tokens.failure_cooldown_s = 1;
  return c;
}

int api_status(const std::string& api_base, const Credential& c) {
  fb::test::HeaderMap h;
  h.emplace("Authorization", "Bearer " + c.value.reveal());
  return fb::test::http_get(api_base + "/teams", h).status;
}

// The body of one bridge process. Returns the exit code; writes "failures refreshes lease_waits".
int run_instance(const std::string& db_path, const std::string& base, const std::string& api_base, int64_t id,
                 int iterations, const std::string& report_path) {
  set_log_level(LogLevel::kWarn);
  int failures = 0;
  TokenManagerStats stats;
  try {
    HttplibTransport transport;
    OAuthStack s(db_path, process_config(base), transport);
    for (int i = 0; i < iterations; ++i) {
      // A refresh on every call, racing the other process (a buffer as long as the token's life
      // no longer does that: it is capped at half the lifetime).
      auto c = s.tokens->force_refresh(id);
      if (!c.ok()) {
        std::fprintf(stderr, "pid %d: credential: %s\n", ::getpid(), c.status().to_string().c_str());
        ++failures;
        continue;
      }
      int status = api_status(api_base, *c);
      // The other process may refresh between our credential() and our call; and the test
      // process expires tokens at Fathom. A 401 gets a refresh_after_unauthorized, as in FathomClient.
      for (int retry = 0; status == 401 && retry < 5; ++retry) {
        c = s.tokens->refresh_after_unauthorized(id, *c);
        if (!c.ok()) break;
        status = api_status(api_base, *c);
      }
      if (status != 200) {
        std::fprintf(stderr, "pid %d: API call ended with %d (%s)\n", ::getpid(), status,
                     c.ok() ? "ok" : c.status().to_string().c_str());
        ++failures;
      }
    }
    stats = s.tokens->stats();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pid %d: %s\n", ::getpid(), e.what());
    return 3;
  }
  std::ofstream(report_path) << failures << " " << stats.refreshes << " " << stats.lease_waits << "\n";
  return failures == 0 ? 0 : 1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(two_processes_share_rotating_refresh_tokens_without_invalid_grant) {
  fb::test::TempDir dir;
  SimProcess sim({"--token-ttl", std::to_string(kTokenTtl)});
  sim.config({{"rate_limit", 1000000}, {"token_rate_limit", 1000000}});
  const std::string db_path = dir.store("shared.db");
  int64_t id = 0;
  {
    // Connect in this process, then close every connection before forking: SQLite connections
    // must not cross fork().
    HttplibTransport transport;
    OAuthStack s(db_path, process_config(sim.base_url()), transport);
    auto start = s.flow->start({"acme", "u-alice"}, CallbackMode::kPopup);
    BOOST_REQUIRE(start.ok());
    std::string loc = sim.authorize_as(start->url, "alice@example.com");
    CallbackResult r = s.flow->complete(loc.substr(loc.find('?') + 1));
    BOOST_REQUIRE_MESSAGE(r.ok, r.reason);
    id = r.integration_id;
  }
  sim.admin("POST", "/_sim/counters/reset");

  constexpr int kProcesses = 2;
  constexpr int kIterations = 40;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcesses; ++p) {
    std::fflush(nullptr);
    pid_t pid = ::fork();
    BOOST_REQUIRE(pid >= 0);
    if (pid == 0) {
      int rc = run_instance(db_path, sim.base_url(), sim.api_base(), id, kIterations,
                            dir.file("report-" + std::to_string(p)));
      std::fflush(nullptr);
      ::_exit(rc);
    }
    pids.push_back(pid);
  }
  // Meanwhile Fathom keeps killing access tokens, so calls in flight get 401s.
  std::atomic<bool> running{true};
  std::thread expirer([&] {
    while (running) {
      try {
        sim.admin("POST", "/_sim/tokens/expire", {{"user", "alice@example.com"}});
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  std::vector<int> codes;
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    codes.push_back(WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status));
  }
  running = false;
  expirer.join();

  int64_t refreshes = 0, waits = 0;
  for (int p = 0; p < kProcesses; ++p) {
    BOOST_TEST(codes[p] == 0, "process " << p << " exit code " << codes[p]);
    std::ifstream in(dir.file("report-" + std::to_string(p)));
    int64_t f = -1, r = 0, w = 0;
    in >> f >> r >> w;
    BOOST_TEST(f == 0);
    BOOST_TEST(r > 0, "process " << p << " refreshed " << r << " times");
    refreshes += r;
    waits += w;
  }
  auto counters = sim.counters();
  const int64_t at_fathom = counters["token_requests"].value("refresh_token", int64_t{0});
  const int64_t invalid = counters["token_errors"].value("invalid_grant", int64_t{0});
  BOOST_TEST_MESSAGE("refresh cycles: " << at_fathom << ", committed by the two processes: " << refreshes
                                        << ", lease waits: " << waits);
  BOOST_TEST(invalid == 0);
  BOOST_TEST(at_fathom >= kProcesses * kIterations / 2);  // many cycles
  BOOST_TEST(at_fathom == refreshes);  // every pair Fathom issued was committed by its process

  // The database agrees, and the last pair works.
  HttplibTransport transport;
  OAuthStack s(db_path, process_config(sim.base_url()), transport);
  auto row = s.store->load(id);
  BOOST_TEST(row->status == "active");
  BOOST_TEST(row->token_version == 1 + refreshes);
  auto c = s.tokens->force_refresh(id);
  BOOST_REQUIRE_MESSAGE(c.ok(), c.status().to_string());
  BOOST_TEST(api_status(sim.api_base(), *c) == 200);
  BOOST_TEST(sim.counters()["token_errors"].value("invalid_grant", int64_t{0}) == 0);
}

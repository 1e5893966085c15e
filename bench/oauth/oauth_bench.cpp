// fb_bench_oauth: how much the oauth layer costs a caller.
//   1. credential() while the stored token is fresh (the path of every API call): a SQLite read
//      and an AES-256-GCM open, 1 and 4 threads.
//   2. force_refresh() against fathom-sim: token request + sealed compare-and-swap commit.
//   3. 50 threads asking for an expired token at once: wall time and token requests.
#include <barrier>
#include <chrono>
#include <cstdio>
#include <thread>

#include "core/log.h"
#include "oauth_fixture.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"

using namespace fb;
using namespace fb::detail;
using Steady = std::chrono::steady_clock;

namespace {

// fathom-sim answers a reused keep-alive connection only after ~40 ms (see the Sync section of
// bench/README.md); "--close" measures the bridge without that stall.
class CloseTransport final : public HttpTransport {
 public:
  Result<HttpResponse> send(const HttpRequest& req) override {
    HttpRequest r = req;
    r.headers.emplace_back("Connection", "close");
    return inner_.send(r);
  }

 private:
  HttplibTransport inner_;
};

double seconds_since(Steady::time_point t0) { return std::chrono::duration<double>(Steady::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  bool close = argc > 1 && std::string(argv[1]) == "--close";
  int calls = 20000, refreshes = 200;
  set_log_level(LogLevel::kWarn);
  fb::test::TempDir dir;
  fb::test::SimProcess sim({"--token-rate-limit", "1000000"});
  HttplibTransport keepalive;
  CloseTransport closing;
  HttpTransport& transport = close ? static_cast<HttpTransport&>(closing) : keepalive;
  FakeClock fake(system_clock().now_ms());
  fb::test::OAuthStack s(dir.file("bench.db"), fb::test::oauth_test_config(sim.base_url()), transport, fake);
  auto start = s.flow->start({"acme", "u1"}, CallbackMode::kPopup);
  std::string loc = sim.authorize_as(start->url, "alice@example.com");
  CallbackResult r = s.flow->complete(loc.substr(loc.find('?') + 1));
  if (!r.ok) {
    std::fprintf(stderr, "connect failed: %s\n", r.reason.c_str());
    return 1;
  }
  const int64_t id = r.integration_id;

  for (int threads : {1, 4}) {
    auto t0 = Steady::now();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&] {
        for (int i = 0; i < calls / threads; ++i) {
          if (!s.tokens->credential(id).ok()) std::abort();
        }
      });
    }
    for (auto& t : ts) t.join();
    double el = seconds_since(t0);
    std::printf("credential() fresh token, %d thread(s): %d calls in %.3f s = %.0f calls/s, %.1f us/call\n", threads,
                calls, el, calls / el, el * 1e6 / calls);
  }

  auto t0 = Steady::now();
  for (int i = 0; i < refreshes; ++i) {
    if (!s.tokens->force_refresh(id).ok()) std::abort();
  }
  double el = seconds_since(t0);
  std::printf("force_refresh() against fathom-sim: %d in %.3f s = %.2f ms per refresh (token_version %lld, %lld "
              "refresh requests at the simulator)\n",
              refreshes, el, el * 1e3 / refreshes, static_cast<long long>(s.store->load(id)->token_version),
              static_cast<long long>(sim.counters()["token_requests"].value("refresh_token", 0)));

  fake.advance_ms(86400 * 1000);
  sim.admin("POST", "/_sim/counters/reset");
  std::barrier go(50);
  std::vector<std::thread> ts;
  t0 = Steady::now();
  for (int t = 0; t < 50; ++t) {
    ts.emplace_back([&] {
      go.arrive_and_wait();
      if (!s.tokens->credential(id).ok()) std::abort();
    });
  }
  for (auto& t : ts) t.join();
  el = seconds_since(t0);
  std::printf("50 callers, expired token: all served in %.1f ms with %lld token request(s)\n", el * 1e3,
              static_cast<long long>(sim.counters()["token_requests"].value("refresh_token", 0)));
  return 0;
}

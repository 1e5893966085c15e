// Sync in a fleet (issue 12): several hosts on one store, each with its own connections, Fathom
// client, engine and scheduler (what a Bridge runs for sync), against one fathom-sim. Scheduled
// work runs once per due time in the fleet; one sync per integration at a time across hosts.
// Runs on both engines (fb_sync_test and fb_sync_test_postgresql).
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "fathom/sim_credentials.h"
#include "support/sim_process.h"
#include "support/temp_dir.h"
#include "sync/scheduler.h"
#include "sync/sync_test_env.h"

using namespace fb;
using namespace fb::detail;

namespace {

constexpr int64_t kAlice = 1;

// A directory whose get() can hold the first caller once armed: where a sync has decided to run
// and has not started yet.
class GatedDirectory : public test::TestDirectory {
 public:
  Result<IntegrationInfo> get(int64_t id) override {
    {
      std::unique_lock lock(mu_);
      if (armed_) {
        armed_ = false;
        entered_ = true;
        cv_.notify_all();
        cv_.wait_for(lock, std::chrono::seconds(30), [&] { return released_; });
      }
    }
    return TestDirectory::get(id);
  }
  void arm() {
    std::lock_guard lock(mu_);
    armed_ = true;
  }
  bool wait_entered() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return entered_; });
  }
  void release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, entered_ = false, released_ = false;
};

struct Host {
  test::ApiKeyCredentials creds;
  GatedDirectory directory;
  test::CountingPipeline pipeline;
  std::unique_ptr<test::SyncEnv> env;
  SyncEngine& engine() { return *env->engine; }
};

// n hosts on one store (TempDir::store: one SQLite file, or one PostgreSQL database).
struct Fleet {
  Fleet(int n, std::vector<std::string> sim_args, SyncOptions options = {}, Clock* clock = nullptr)
      : sim(std::move(sim_args)) {
    const std::string store = dir.store("fleet.db");
    for (int i = 0; i < n; ++i) {
      auto h = std::make_unique<Host>();
      h->creds.set(kAlice, sim.api_key("alice@example.com"));
      h->directory.add(kAlice);
      h->env = std::make_unique<test::SyncEnv>(sim.api_base(), h->creds, h->directory, store, &h->pipeline, options,
                                               RateLimitOptions{}, FathomClientOptions{}, nullptr, clock);
      hosts.push_back(std::move(h));
    }
  }
  int scheduled_jobs() {
    int n = 0;
    const std::vector<JobRecord> jobs = hosts[0]->engine().recent_jobs({kAlice, "", "", "", 0, 1000}).value();
    for (const JobRecord& j : jobs) {
      n += j.trigger == "scheduler";
    }
    return n;
  }

  test::SimProcess sim;
  test::TempDir dir;
  std::vector<std::unique_ptr<Host>> hosts;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(fleet_sync)

// Three schedulers tick at the same due time. Host B decides first and is held between that
// decision and its sync's start while A and C tick; then every due time once more with all three
// ticking at once. Each due time is one scheduled sync in the fleet, not one per host.
BOOST_AUTO_TEST_CASE(a_due_integration_is_synced_once_per_due_time_by_a_fleet_of_schedulers) {
  FakeClock clock(system_clock().now_ms());
  Fleet f(3, {"--meetings", "12"}, {}, &clock);
  SchedulerOptions so;
  so.interval_s = 3600;
  std::vector<std::unique_ptr<SyncScheduler>> scheds;
  for (auto& h : f.hosts) scheds.push_back(std::make_unique<SyncScheduler>(h->engine(), h->directory, clock, so));

  const int64_t now = clock.now_s();
  f.hosts[1]->directory.arm();
  TickReport rb;
  std::thread b([&] { rb = scheds[1]->tick(now); });
  BOOST_REQUIRE(f.hosts[1]->directory.wait_entered());
  TickReport ra = scheds[0]->tick(now);
  TickReport rc = scheds[2]->tick(now);
  f.hosts[1]->directory.release();
  b.join();
  BOOST_TEST_MESSAGE("first due time: host A ran " << ra.syncs_run << ", B " << rb.syncs_run << ", C " << rc.syncs_run);
  BOOST_TEST(ra.syncs_run + rb.syncs_run + rc.syncs_run == 1);
  BOOST_TEST(rb.syncs_run == 1);  // the host that claimed it, though the others were faster to sync
  BOOST_TEST(f.scheduled_jobs() == 1);
  // One listing at Fathom: the calls the one job made.
  auto first = f.hosts[0]->engine().recent_jobs({kAlice}).value();
  BOOST_REQUIRE_EQUAL(first.size(), 1u);
  BOOST_TEST(f.sim.counters()["api_calls_total"].get<int64_t>() == first[0].api_calls);

  for (int round = 1; round <= 3; ++round) {
    clock.advance_ms(3600 * 1000);
    const int64_t due = clock.now_s();
    std::vector<TickReport> reports(scheds.size());
    std::vector<std::thread> ticking;
    for (size_t i = 0; i < scheds.size(); ++i) ticking.emplace_back([&, i] { reports[i] = scheds[i]->tick(due); });
    for (auto& t : ticking) t.join();
    int run = 0, failed = 0;
    for (const auto& r : reports) run += r.syncs_run, failed += r.syncs_failed;
    BOOST_TEST_INFO("round " << round);
    BOOST_TEST(run == 1);
    BOOST_TEST(failed == 0);
    BOOST_TEST(f.scheduled_jobs() == 1 + round);
  }
  // Between due times nothing runs, on any host.
  clock.advance_ms(60 * 1000);
  for (auto& s : scheds) BOOST_TEST(s->tick(clock.now_s()).syncs_run == 0);
  BOOST_TEST(f.scheduled_jobs() == 4);
}

// Host A's sync waits 14 s on its first page (longer than its lease's 6 s to live); host B asks for
// the same integration meanwhile and is told it is already running, by which host. A's lease is
// renewed while it waits, so B does not take it over; once A is done, B's sync runs.
BOOST_AUTO_TEST_CASE(concurrent_sync_requests_on_two_hosts_one_runs_the_other_is_told_it_is_already_running) {
  SyncOptions short_lease;
  // Renewed every 2 s to 6 s ahead, in whole seconds: a renewal may come 3 s late (a starved
  // thread, TSan) before B could take the lease over. B asks 7 s into A's wait, past the time to
  // live: 7 s to spare for a thread woken late.
  short_lease.lease_ttl_s = 6;
  Fleet f(2, {"--meetings", "6", "--latency", "14000"}, short_lease);
  Result<JobRecord> a = Status::Internal("not run");
  std::mutex mu;
  std::condition_variable cv;
  bool started = false;
  std::thread ta([&] {
    a = f.hosts[0]->engine().run({kAlice, SyncMode::kBackfill, 0, 0, 0, "host-a"}, [&](int64_t) {
      std::lock_guard lock(mu);
      started = true;
      cv.notify_all();
    });
  });
  {
    std::unique_lock lock(mu);
    BOOST_REQUIRE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return started; }));
  }
  // Past A's lease time to live, while its first page is still on its way.
  std::this_thread::sleep_for(std::chrono::milliseconds(7000));
  auto b = f.hosts[1]->engine().backfill(kAlice, "host-b");
  BOOST_TEST(b.code() == Code::kConflict);
  BOOST_TEST(b.status().message().find("a sync of integration 1 is already running") != std::string::npos,
             b.status().message());
  ta.join();
  BOOST_REQUIRE_MESSAGE(a.ok(), a.status().to_string());
  BOOST_TEST(a->status == "succeeded", a->message);
  f.sim.config({{"latency_ms", 0}});
  auto after = f.hosts[1]->engine().incremental(kAlice, "host-b");
  BOOST_REQUIRE_MESSAGE(after.ok(), after.status().to_string());
  BOOST_TEST(after->status == "succeeded");
  auto jobs = f.hosts[1]->engine().recent_jobs({kAlice}).value();
  BOOST_TEST(jobs.size() == 2u);  // A's and B's later one: the refused request logged no job
}

BOOST_AUTO_TEST_SUITE_END()

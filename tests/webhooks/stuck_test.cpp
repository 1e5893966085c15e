// Issue 10, point 1: a webhook worker stuck in a CRM call that never returns (the script budget
// cannot stop host code). Over real parts: a SQLite file with the inbox's body log, the
// MeetingEventHandler with MeetingStore + MeetingDispatcher, real Lua scripts (ScriptHost +
// LuaPipeline) calling a CRM operation that blocks on a latch the test controls, and WorkerPool
// threads. Time past the deadline is a FakeClock step, so nothing depends on the machine's speed;
// the waits are generous bounds on things that happen as soon as the threads get to run.
#define BOOST_TEST_MODULE fb_webhooks_stuck
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/event_bus.h"
#include "fixture.h"
#include "meeting_stack.h"
#include "scripting/lua_pipeline.h"
#include "scripting/script_host.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/meeting_handler.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

// Integration 1 is tenant "a", integration 2 tenant "b".
class TwoTenants final : public IntegrationDirectory {
 public:
  std::vector<IntegrationInfo> list_active() override { return {*get(1), *get(2)}; }
  Result<IntegrationInfo> get(int64_t id) override {
    if (id != 1 && id != 2) return Status::NotFound("no integration " + std::to_string(id));
    IntegrationInfo i;
    i.id = id;
    i.tenant_id = id == 1 ? "a" : "b";
    i.user_id = "u" + std::to_string(id);
    i.status = "active";
    i.active = true;
    return i;
  }
  Status record_sync(int64_t, int64_t) override { return Status::Ok(); }
};

const char* const kMapping = R"LUA(function on_meeting(meeting, ctx)
  crm.log_activity({ recording_id = meeting.recording_id, tenant = ctx.tenant_id })
end
)LUA";

// The CRM: counts operations per idempotency key; tenant "a"'s operations block while the latch
// is closed (a CRM that never answers, until the test says so).
class BlockingCrm {
 public:
  Result<std::string> call(const CrmCall& c) {
    int64_t rec = nlohmann::json::parse(c.args_json).value("recording_id", int64_t{0});
    std::unique_lock lk(mu_);
    ++by_key_[c.idempotency_key];
    ++by_recording_[rec];
    if (c.tenant_id == "a" && ++a_calls_ >= block_from_) {
      ++a_entered_;
      cv_.notify_all();
      cv_.wait(lk, [&] { return open_; });
    }
    return std::string(R"({"id":"act"})");
  }
  // Tenant a's calls block from the n-th on (1: all of them).
  void block_from(int n) {
    std::lock_guard lk(mu_);
    block_from_ = n;
  }
  void open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool wait_a_entered(double timeout_s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return a_entered_ > 0; });
  }
  int a_entered() {
    std::lock_guard lk(mu_);
    return a_entered_;
  }
  int calls_for(int64_t rec) {
    std::lock_guard lk(mu_);
    auto it = by_recording_.find(rec);
    return it == by_recording_.end() ? 0 : it->second;
  }
  std::map<std::string, int> by_key() {
    std::lock_guard lk(mu_);
    return by_key_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int a_calls_ = 0, block_from_ = 1;
  int a_entered_ = 0;
  std::map<std::string, int> by_key_;
  std::map<int64_t, int> by_recording_;
};

struct Stack {
  Stack() : meetings(clock), web(meetings.web), store(meetings.store), dispatcher(meetings.dispatcher) {
    std::filesystem::create_directories(web.dir.file("scripts"));
    std::ofstream(web.dir.file("scripts/mapping.lua")) << kMapping;
    ScriptHostOptions so;
    so.config.dir = web.dir.file("scripts");
    so.config.reload_interval_ms = 0;
    // One Lua state for the one worker; the pool grows by one per stuck thread (as in the Bridge).
    so.config.pool_size = 1;
    auto h = ScriptHost::open(std::move(so));
    BOOST_REQUIRE_MESSAGE(h.ok(), h.status());
    scripts = std::move(*h);
    BOOST_REQUIRE(scripts->register_crm_operation("log_activity", [this](const CrmCall& c) { return crm.call(c); }).ok());
    pipeline = std::make_unique<LuaPipeline>(*scripts);
    handler = std::make_unique<MeetingEventHandler>(*store, *dispatcher, directory, *pipeline);
    bus.subscribe([this](const Event& e) {
      std::lock_guard lk(mu);
      events.push_back(e);
    });
    options.workers = 1;
    options.reclaim_on_start = false;
    options.event_deadline_ms = 300'000;
    options.on_stuck_threads = [this](int n) { scripts->set_extra_states(n); };
  }
  int64_t append(int64_t integration, int64_t rec) {
    std::string b = meeting_body(rec);
    std::string id = "msg_" + std::to_string(rec);
    auto r = web.inbox->append({integration, integration, id, rec, b});
    BOOST_REQUIRE_MESSAGE(r.ok(), r.status());
    return r->event_id;
  }
  int64_t count(const std::string& status) {
    return scalar(*web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='" + status + "'");
  }
  std::vector<Event> of_type(const std::string& type) {
    std::lock_guard lk(mu);
    std::vector<Event> out;
    for (const Event& e : events) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }

  FakeClock clock;
  MeetingStack meetings;
  WebhookStack& web;
  std::unique_ptr<MeetingStore>& store;
  std::unique_ptr<MeetingDispatcher>& dispatcher;
  TwoTenants directory;
  BlockingCrm crm;
  std::unique_ptr<ScriptHost> scripts;
  std::unique_ptr<LuaPipeline> pipeline;
  std::unique_ptr<MeetingEventHandler> handler;
  EventBus bus;
  WorkerOptions options;
  std::mutex mu;
  std::vector<Event> events;  // guarded by mu
};

}  // namespace

BOOST_AUTO_TEST_SUITE(stuck)

BOOST_AUTO_TEST_CASE(a_crm_call_that_never_returns_does_not_stop_other_tenants_webhooks) {
  Stack s;
  // One batch (claim_batch 32) holding both tenants' events, tenant a's first.
  const int64_t a1 = s.append(1, 100);
  s.append(2, 200);
  s.append(1, 101);
  s.append(2, 201);
  s.append(2, 202);
  const std::vector<int64_t> b_recordings = {200, 201, 202};
  auto b_mapped = [&] {
    for (int64_t r : b_recordings) {
      if (s.crm.calls_for(r) == 0) return false;
    }
    return true;
  };

  WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options, &s.bus, &s.directory);
  BOOST_REQUIRE(pool.start().ok());
  BOOST_REQUIRE_MESSAGE(s.crm.wait_a_entered(60), "tenant a's first CRM call never started");
  // The one worker is in tenant a's CRM call. Past the deadline (fake time) it is stuck.
  s.clock.advance_ms(s.options.event_deadline_ms + 1000);
  pool.notify();

  // Tenant b's events are mapped while a's call is still blocked.
  bool flowed = wait_until(b_mapped, 60);
  BOOST_CHECK_MESSAGE(flowed, "tenant b's events were not mapped while tenant a's CRM call was blocked");
  BOOST_CHECK_EQUAL(s.crm.a_entered(), 1);  // a's second event waits behind its stuck call
  std::vector<Event> stuck = s.of_type("worker_stuck");
  BOOST_CHECK_EQUAL(stuck.size(), 1u);
  if (!stuck.empty()) {
    const Event& e = stuck.front();
    BOOST_CHECK_EQUAL(e.integration_id, 1);
    BOOST_CHECK_EQUAL(e.tenant_id, "a");
    BOOST_CHECK_EQUAL(e.user_id, "u1");
    auto data = nlohmann::json::parse(e.data_json);
    BOOST_CHECK_EQUAL(data.value("event_id", int64_t{0}), a1);
    BOOST_CHECK_GE(data.value("busy_s", int64_t{0}), s.options.event_deadline_ms / 1000);
    BOOST_CHECK_EQUAL(data.value("released", 0), 3);  // tenant b's three events
    BOOST_CHECK(e.data_json.find("secret") == std::string::npos);
  }

  // The CRM answers: the stuck worker finishes what it still owns (tenant a's events), nothing else.
  s.crm.open();
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.count("done") == 5; }, 60), "the inbox did not drain");
  pool.stop();
  BOOST_CHECK_EQUAL(s.count("pending") + s.count("processing") + s.count("dead"), 0);
  // Every meeting mapped exactly once: one CRM operation per idempotency key, five keys.
  auto keys = s.crm.by_key();
  BOOST_CHECK_EQUAL(keys.size(), 5u);
  for (const auto& [key, n] : keys) BOOST_CHECK_MESSAGE(n == 1, key << " was called " << n << " times");
  for (int64_t rec : {100, 101, 200, 201, 202}) BOOST_CHECK_EQUAL(s.crm.calls_for(rec), 1);
  BOOST_CHECK_EQUAL(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings WHERE mapped_version=1"), 5);
  // Reported once per stuck occurrence, not on every later check.
  BOOST_CHECK_EQUAL(s.of_type("worker_stuck").size(), 1u);
}

// A batch whose record failed is recorded event by event (worker.cpp, record_one_by_one). When the
// thread is found stuck on one of them meanwhile, the events after it go back to pending for the
// replacement worker once the stuck call returns (their attempt not counted), instead of waiting
// for this surplus thread; the refused one alone is retried.
BOOST_AUTO_TEST_CASE(a_thread_stuck_while_recording_a_batch_event_by_event_gives_the_rest_back) {
  Stack s;
  refuse_meetings(*s.web.db, "301");
  s.crm.block_from(2);  // tenant a's call passes in the batch and blocks when its event runs alone
  s.append(1, 300);
  for (int64_t rec : {301, 302, 303}) s.append(2, rec);
  WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options, &s.bus, &s.directory);
  BOOST_REQUIRE(pool.start().ok());
  BOOST_REQUIRE_MESSAGE(s.crm.wait_a_entered(60), "recording 300 never ran alone");
  s.clock.advance_ms(s.options.event_deadline_ms + 1000);
  pool.notify();
  BOOST_REQUIRE(wait_until([&] { return s.of_type("worker_stuck").size() == 1; }, 60));
  BOOST_TEST(s.count("done") == 0);  // the others wait for the stuck thread: it holds them
  s.crm.open();
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return s.count("done") == 3; }, 60), "the inbox did not drain");
  BOOST_REQUIRE(wait_until([&] { return s.count("pending") == 1; }, 60));
  pool.stop();
  BOOST_TEST(pool.stats().released == 3);  // 301-303, back to pending: then 302 and 303 done, 301 retried alone
  for (int64_t rec : {300, 301, 302, 303}) {
    const std::string where = " FROM webhook_inbox WHERE recording_id=" + std::to_string(rec);
    BOOST_TEST(scalar(*s.web.db, "SELECT attempts" + where) == 1, "recording " << rec);
  }
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='pending' AND recording_id=301") == 1);
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings WHERE mapped_version=1") == 3);
}

// A thread written off in a batch that the store then refuses does not split it: the events it
// still holds go toward a retry with their attempt counted, as before splits existed (given back
// uncounted instead, a batch both stuck and refused would go round and never become a dead letter).
BOOST_AUTO_TEST_CASE(a_thread_written_off_in_a_batch_the_store_refuses_retries_it_whole) {
  Stack s;
  refuse_meetings(*s.web.db, "401");
  s.append(2, 401);  // refused when the batch is recorded
  s.append(1, 400);  // tenant a: its CRM call blocks
  WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options, &s.bus, &s.directory);
  BOOST_REQUIRE(pool.start().ok());
  BOOST_REQUIRE_MESSAGE(s.crm.wait_a_entered(60), "recording 400's CRM call never started");
  s.clock.advance_ms(s.options.event_deadline_ms + 1000);
  pool.notify();
  BOOST_REQUIRE(wait_until([&] { return s.of_type("worker_stuck").size() == 1; }, 60));
  s.crm.open();
  BOOST_REQUIRE(wait_until([&] { return s.count("pending") == 2; }, 60));
  pool.stop();
  BOOST_TEST(pool.stats().released == 0);
  for (int64_t rec : {400, 401}) {
    const std::string where = " FROM webhook_inbox WHERE recording_id=" + std::to_string(rec);
    BOOST_TEST(scalar(*s.web.db, "SELECT attempts" + where) == 1, "recording " << rec);
    BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*)" + where + " AND last_error LIKE '%refuses%'") == 1,
               "recording " << rec);
  }
}

// A handler whose every event blocks until the latch opens (a host call that never returns).
class BlockingHandler final : public InboxEventHandler {
 public:
  Status handle(const InboxEvent&) override {
    std::unique_lock lk(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return open_; });
    ++returned_;
    cv_.notify_all();
    return Status::Ok();
  }
  bool wait_entered(double timeout_s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return entered_ > 0; });
  }
  bool open_and_wait_returned(double timeout_s) {
    std::unique_lock lk(mu_);
    open_ = true;
    cv_.notify_all();
    return cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return returned_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
  int entered_ = 0, returned_ = 0;
};

// One worker, no reclaim at start, the given deadline: the pool of the BlockingHandler cases.
WorkerOptions one_blocked_worker(int64_t event_deadline_ms) {
  WorkerOptions o;
  o.workers = 1;
  o.reclaim_on_start = false;
  o.event_deadline_ms = event_deadline_ms;
  return o;
}

BOOST_AUTO_TEST_CASE(stop_does_not_wait_forever_for_a_thread_stuck_in_a_host_call) {
  FakeClock clock;
  WebhookStack web(clock);
  // Outlives the pool on purpose: the abandoned thread returns into it after the pool is gone.
  static BlockingHandler handler;
  BOOST_REQUIRE(web.inbox->append({1, 1, "msg_1", 1, meeting_body(1)}).ok());
  WorkerOptions o = one_blocked_worker(300'000);
  o.stuck_stop_wait_ms = 100;
  EventBus bus;
  std::atomic<int> stuck_events{0};
  bus.subscribe([&](const Event& e) {
    if (e.type == "worker_stuck") stuck_events.fetch_add(1);
  });
  {
    WorkerPool pool(*web.inbox, handler, clock, system_random(), o, &bus);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(handler.wait_entered(60));
    clock.advance_ms(o.event_deadline_ms + 1);
    pool.notify();
    BOOST_REQUIRE(wait_until([&] { return pool.stats().stuck == 1; }, 60));
    BOOST_TEST(pool.stats().stuck_threads == 1);
    pool.stop();  // returns: the stuck thread is abandoned after stuck_stop_wait_ms
  }
  BOOST_TEST(stuck_events.load() == 1);
  // Its event stays in processing (the next start reclaims it); nothing was marked.
  BOOST_TEST(scalar(*web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='processing'") == 1);
  // The call returns after the pool is gone: the thread must touch nothing of it (ASan would say).
  BOOST_REQUIRE(handler.open_and_wait_returned(60));
  BOOST_TEST(scalar(*web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='processing'") == 1);
}

// While the store is down, the claim of an event in a long CRM call is renewed every poll interval:
// the log gets the first failure, then a line a minute with the count (and one when the store
// answers again), not a WARN line per renewal (3,600 an hour per held claim with the defaults).
BOOST_AUTO_TEST_CASE(failing_lease_renewals_are_logged_once_a_minute_not_once_a_renewal) {
  FakeClock clock(1'700'000'000'000);  // moves only when the test says so
  WebhookStack web(clock);
  BlockingHandler handler;
  BOOST_REQUIRE(web.inbox->append({1, 1, "msg_1", 1, meeting_body(1)}).ok());
  WorkerOptions o = one_blocked_worker(3'600'000);
  o.poll_interval_ms = 1000;
  WorkerPool pool(*web.inbox, handler, clock, system_random(), o);
  BOOST_REQUIRE(pool.start().ok());
  BOOST_REQUIRE(handler.wait_entered(60));
  LogCapture logs;
  auto exec = [&](const char* sql) { return web.db->with([&] { return web.db->exec(sql); }); };
  auto lines = [&] { return logs.matching("cannot renew the claim lease"); };
  BOOST_REQUIRE(exec("ALTER TABLE webhook_inbox RENAME TO webhook_inbox_away").ok());
  for (int i = 0; i < 50; ++i) {  // fifty renewal intervals
    clock.advance_ms(1001);
    pool.notify();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  BOOST_TEST(wait_until([&] { return !lines().empty(); }));
  // A line per distinct reason (PostgreSQL may fail running, then preparing the statement).
  const size_t first = lines().size();
  BOOST_TEST(first <= 2u, logs.all());

  // A minute later the next failure is written with how many were left out. A round in which the
  // supervisor did not get to run between two lines (a starved thread on a loaded machine) has none
  // left out; the next round has.
  bool counted = false;
  for (int round = 0; round < 5 && !counted; ++round) {
    const size_t before = lines().size();
    clock.advance_ms(60'000);
    pool.notify();
    BOOST_REQUIRE(wait_until([&] { return lines().size() > before; }));
    counted = lines().at(before).find("more since the last report") != std::string::npos;
    for (int i = 0; i < 20 && !counted; ++i) {
      clock.advance_ms(1001);
      pool.notify();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  BOOST_TEST(counted, logs.all());

  BOOST_REQUIRE(exec("ALTER TABLE webhook_inbox_away RENAME TO webhook_inbox").ok());
  clock.advance_ms(1001);
  pool.notify();
  BOOST_TEST(wait_until([&] { return !logs.matching("claim leases can be kept again").empty(); }), logs.all());
  BOOST_REQUIRE(handler.open_and_wait_returned(60));
  pool.stop();
}

BOOST_AUTO_TEST_SUITE_END()

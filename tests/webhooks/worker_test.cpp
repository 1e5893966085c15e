// Inbox workers: success, retries with backoff, dead letters with their error and the host event,
// replay once fixed, and reclaiming events abandoned in processing.
#include <boost/test/unit_test.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/event_bus.h"
#include "fixture.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

// Fails while `failing` is set, with a message naming the event; records every call.
class FlakyHandler final : public InboxEventHandler {
 public:
  Status handle(const InboxEvent& e) override {
    std::lock_guard lk(mu_);
    calls_.push_back(e.id);
    bodies_.push_back(e.body);
    if (failing_) return Status::Unavailable("CRM said 503 for recording " + std::to_string(e.recording_id));
    done_.insert(e.id);
    return Status::Ok();
  }
  void set_failing(bool f) {
    std::lock_guard lk(mu_);
    failing_ = f;
  }
  int calls_for(int64_t id) {
    std::lock_guard lk(mu_);
    int n = 0;
    for (auto c : calls_) n += c == id;
    return n;
  }
  size_t done_count() {
    std::lock_guard lk(mu_);
    return done_.size();
  }
  std::vector<std::string> bodies() {
    std::lock_guard lk(mu_);
    return bodies_;
  }

 private:
  std::mutex mu_;
  bool failing_ = false;
  std::vector<int64_t> calls_;
  std::vector<std::string> bodies_;
  std::set<int64_t> done_;
};

struct Events {
  void attach(EventBus& bus) {
    bus.subscribe([this](const Event& e) {
      std::lock_guard lk(mu);
      got.push_back(e);
    });
  }
  std::vector<Event> of(const std::string& type) {
    std::lock_guard lk(mu);
    std::vector<Event> out;
    for (auto& e : got) {
      if (e.type == type) out.push_back(e);
    }
    return out;
  }
  std::mutex mu;
  std::vector<Event> got;
};

WorkerOptions fast_options(int workers = 2, int max_attempts = 3) {
  WorkerOptions o;
  o.workers = workers;
  o.max_attempts = max_attempts;
  o.backoff_base_ms = 20;
  o.backoff_max_ms = 80;
  o.poll_interval_ms = 50;
  return o;
}

int64_t deliver(WebhookStack& s, const std::string& path, const std::string& id, int64_t recording) {
  std::string body = meeting_body(recording);
  auto r = s.receiver->handle(path, signed_headers(kSecretA, id, s.clock.now_s(), body), body);
  BOOST_REQUIRE(r.http_status == 200);
  return r.event_id;
}

std::string status_of(WebhookStack& s, int64_t id) {
  auto e = s.inbox->get(id);
  return e.ok() ? e->status : "?";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(worker)

BOOST_AUTO_TEST_CASE(events_are_processed_once_with_their_body) {
  SystemClock clock;
  WebhookStack s(clock);
  std::string path = s.add_endpoint(1, kSecretA);
  FlakyHandler handler;
  WorkerOptions o = fast_options();
  o.poll_interval_ms = 600'000;  // only the inbox's commit notification can wake the workers in time
  WorkerPool pool(*s.inbox, handler, clock, system_random(), o);
  BOOST_REQUIRE(pool.start().ok());
  std::vector<int64_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(deliver(s, path, "msg_" + std::to_string(i), 100 + i));
  BOOST_TEST(wait_until([&] { return handler.done_count() == 20; }));
  BOOST_TEST(wait_until([&] { return pool.stats().processed == 20; }));
  for (int64_t id : ids) {
    BOOST_TEST(status_of(s, id) == "done");
    BOOST_TEST(handler.calls_for(id) == 1);
    auto e = s.inbox->get(id);
    BOOST_TEST(e->processed_at_ms > 0);
    BOOST_TEST(e->attempts == 1);
  }
  BOOST_TEST(handler.bodies().front().find("\"recording_id\":1") != std::string::npos);
  // A repeated delivery of a processed message is acknowledged and not processed again.
  deliver(s, path, "msg_3", 103);
  pool.stop();
  BOOST_TEST(handler.calls_for(ids[3]) == 1);
  BOOST_TEST(s.inbox_rows() == 20);
}

BOOST_AUTO_TEST_CASE(failing_handler_is_retried_dead_lettered_then_replayed) {
  SystemClock clock;
  WebhookStack s(clock);
  std::string path = s.add_endpoint(7, kSecretA);
  FlakyHandler handler;
  handler.set_failing(true);
  EventBus bus;
  Events events;
  events.attach(bus);
  WorkerPool pool(*s.inbox, handler, clock, system_random(), fast_options(2, 3), &bus);
  BOOST_REQUIRE(pool.start().ok());
  int64_t id = deliver(s, path, "msg_fail", 4242);

  BOOST_REQUIRE(wait_until([&] { return status_of(s, id) == "dead"; }));
  auto e = s.inbox->get(id);
  BOOST_REQUIRE(e.ok());
  BOOST_TEST(e->attempts == 3);
  BOOST_TEST(handler.calls_for(id) == 3);  // every attempt ran the handler: retried, not dropped
  BOOST_TEST(e->last_error.find("CRM said 503 for recording 4242") != std::string::npos);
  // The pool counts a retry or a dead letter after its transaction commits, so the row can say
  // "dead" first (seen under ASan: 0 != 1): a worker that committed attempt 2 can be off the CPU
  // while another runs attempt 3.
  BOOST_TEST(wait_until([&] { return pool.stats().retried == 2; }), pool.stats().retried);
  BOOST_TEST(wait_until([&] { return pool.stats().dead_lettered == 1; }));
  auto dead_events = events.of("webhook_dead_lettered");
  BOOST_REQUIRE(dead_events.size() == 1u);
  BOOST_TEST(dead_events[0].integration_id == 7);
  BOOST_TEST(dead_events[0].data_json.find("\"event_id\":" + std::to_string(id)) != std::string::npos);
  BOOST_TEST(dead_events[0].detail.find("CRM said 503") != std::string::npos);

  // The dead letter is listed as such.
  auto dead = pool.list({"dead", 0, 10});
  BOOST_REQUIRE(dead.ok());
  BOOST_REQUIRE(dead->size() == 1u);
  BOOST_TEST(dead->at(0).id == id);
  BOOST_TEST(events_to_json(*dead).find("CRM said 503") != std::string::npos);

  // Fixed: replaying it processes it successfully.
  handler.set_failing(false);
  BOOST_REQUIRE(pool.replay(id).ok());
  BOOST_REQUIRE(wait_until([&] { return status_of(s, id) == "done"; }));
  BOOST_TEST(handler.calls_for(id) == 4);
  BOOST_TEST(s.inbox->get(id)->attempts == 1);
  BOOST_TEST(pool.list({"dead", 0, 10})->empty());
  BOOST_TEST((pool.replay(999999).code() == Code::kNotFound));
}

// Found with a CRM that echoed an invitee's name in its error: the stored message (cut at 1,000
// bytes) ended inside a character, writing the batch's outcome threw (JSON refuses bytes that are
// not UTF-8; PostgreSQL refuses them as text), and the event stayed in 'processing' forever,
// reclaimed and mapped again every lease, never dead-lettered, with the others of its batch. Now
// the message is cut on a character and ill-formed bytes become U+FFFD: retried, then dead.
BOOST_AUTO_TEST_CASE(an_error_cut_inside_a_character_or_not_utf8_is_recorded_and_retried) {
  struct EchoingCrm final : InboxEventHandler {
    Status handle(const InboxEvent&) override {
      // A lone 0xFF (stored as the 3-byte U+FFFD), then ASCII up to a 2-byte character across the
      // 1,000-byte cut.
      const std::string head = "J\xFFrg ";
      const std::string shown = Status::Unavailable(head).to_string();
      return Status::Unavailable(head + std::string(999 - 2 - shown.size(), 'x') + "\xC3\xA9 end");
    }
  } crm;
  SystemClock clock;
  WebhookStack s(clock);
  std::string path = s.add_endpoint(7, kSecretA);
  WorkerPool pool(*s.inbox, crm, clock, system_random(), fast_options(2, 3));
  BOOST_REQUIRE(pool.start().ok());
  const int64_t id = deliver(s, path, "msg_utf8", 4343);
  BOOST_REQUIRE_MESSAGE(wait_until([&] { return status_of(s, id) == "dead"; }), "status " << status_of(s, id));
  auto e = s.inbox->get(id);
  BOOST_REQUIRE(e.ok());
  BOOST_TEST(e->attempts == 3);
  BOOST_TEST(e->last_error.size() <= 1000u);
  BOOST_TEST(e->last_error.find("\xC3") == std::string::npos, "the cut character's first byte was kept");
  BOOST_TEST(e->last_error.find("J\xEF\xBF\xBDrg") != std::string::npos, e->last_error.substr(0, 40));
  BOOST_TEST(e->last_error.rfind(std::string(20, 'x')) != std::string::npos);
  BOOST_TEST(nlohmann::json(e->last_error).dump().size() > 0u);  // would throw on bytes that are not UTF-8
  BOOST_TEST(wait_until([&] { return pool.stats().retried == 2; }), pool.stats().retried);  // counted after commit
}

BOOST_AUTO_TEST_CASE(replay_all_dead_letters) {
  SystemClock clock;
  WebhookStack s(clock);
  std::string path = s.add_endpoint(3, kSecretA);
  std::string other = s.add_endpoint(4, kSecretA);
  FlakyHandler handler;
  handler.set_failing(true);
  WorkerPool pool(*s.inbox, handler, clock, system_random(), fast_options(1, 1));
  BOOST_REQUIRE(pool.start().ok());
  std::vector<int64_t> ids = {deliver(s, path, "a", 1), deliver(s, path, "b", 2), deliver(s, other, "c", 3)};
  BOOST_REQUIRE(wait_until([&] { return pool.stats().dead_lettered == 3; }));
  handler.set_failing(false);
  auto n = pool.replay_dead_letters(3);  // one integration first
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(*n == 2);
  BOOST_REQUIRE(wait_until([&] { return status_of(s, ids[0]) == "done" && status_of(s, ids[1]) == "done"; }));
  BOOST_TEST(status_of(s, ids[2]) == "dead");
  BOOST_TEST(*pool.replay_dead_letters() == 1);
  BOOST_TEST(wait_until([&] { return status_of(s, ids[2]) == "done"; }));
}

BOOST_AUTO_TEST_CASE(backoff_grows_exponentially_with_jitter_and_is_capped) {
  SystemClock clock;
  WebhookStack s(clock);
  FlakyHandler handler;
  WorkerOptions o;
  o.backoff_base_ms = 1000;
  o.backoff_max_ms = 60'000;
  WorkerPool pool(*s.inbox, handler, clock, system_random(), o);
  for (int attempt = 1; attempt <= 12; ++attempt) {
    int64_t full = std::min<int64_t>(60'000, 1000LL << (attempt - 1));
    for (int k = 0; k < 50; ++k) {
      int64_t d = pool.backoff_ms(attempt);
      BOOST_TEST(d >= full / 2);
      BOOST_TEST(d <= full);
    }
  }
  std::set<int64_t> seen;
  for (int k = 0; k < 50; ++k) seen.insert(pool.backoff_ms(5));
  BOOST_TEST(seen.size() > 1u);  // jittered
}

BOOST_AUTO_TEST_CASE(events_abandoned_in_processing_are_reclaimed_on_start) {
  SystemClock clock;
  WebhookStack s(clock);
  std::string path = s.add_endpoint(1, kSecretA);
  int64_t id = deliver(s, path, "msg_crash", 1);
  {
    // A worker of a process that then crashed claimed it (an inbox of its own, with a short claim
    // lease: on PostgreSQL the other hosts' claims are alive, so only an expired lease returns).
    InboxOptions io;
    io.claim_lease_ms = 300;
    Inbox crashed(*s.db, clock, io);
    auto claimed = crashed.claim(10);
    BOOST_REQUIRE(claimed.ok());
    BOOST_REQUIRE(claimed->size() == 1u);
    BOOST_TEST(status_of(s, id) == "processing");
  }
  FlakyHandler handler;
  WorkerPool pool(*s.inbox, handler, clock, system_random(), fast_options());
  BOOST_REQUIRE(pool.start().ok());
  BOOST_TEST(wait_until([&] { return status_of(s, id) == "done"; }));
  BOOST_TEST(s.inbox->get(id)->attempts == 2);
}

// While the store cannot be read (PostgreSQL down) each worker's claim fails every poll: the log
// gets the first failure, then one line a minute with the count, and one line once claims work
// again, not an ERROR line per worker per poll interval (7,200 an hour with the defaults).
BOOST_AUTO_TEST_CASE(failing_claims_are_logged_once_a_minute_not_once_a_poll) {
  FakeClock clock(1'700'000'000'000);  // stands still: no minute passes unless the test says so
  WebhookStack s(clock);
  std::string path = s.add_endpoint(1, kSecretA);
  FlakyHandler handler;
  WorkerOptions o = fast_options(/*workers=*/2);
  o.poll_interval_ms = 2;
  WorkerPool pool(*s.inbox, handler, clock, system_random(), o);
  BOOST_REQUIRE(pool.start().ok());
  LogCapture logs;
  auto exec = [&](const char* sql) { return s.db->with([&] { return s.db->exec(sql); }); };
  BOOST_REQUIRE(exec("ALTER TABLE webhook_inbox RENAME TO webhook_inbox_away").ok());
  BOOST_TEST(wait_until([&] { return !logs.matching("cannot claim webhook events").empty(); }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a hundred polls or so
  // A line per distinct reason, not per poll: on PostgreSQL the first claim fails running its
  // prepared statement and the next ones preparing it again (two reasons, two lines).
  BOOST_TEST(logs.matching("cannot claim webhook events").size() <= 2u, logs.all());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // as many polls again: nothing new
  // (At most the two reasons still: workers starved during the first sleep may meet the second
  // reason only now.)
  const size_t first = logs.matching("cannot claim webhook events").size();
  BOOST_TEST(first <= 2u, logs.all());

  // A minute later the next failure is written with how many were left out. A round in which no
  // worker got to poll between two lines (threads starved on a loaded machine) has none left out;
  // the next round has.
  bool counted = false;
  for (int round = 0; round < 5 && !counted; ++round) {
    const size_t before = logs.matching("cannot claim webhook events").size();
    clock.advance_ms(60'000);
    BOOST_REQUIRE(wait_until([&] { return logs.matching("cannot claim webhook events").size() > before; }));
    counted = logs.matching("cannot claim webhook events").at(before).find("more since the last report") !=
              std::string::npos;
    if (!counted) std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  BOOST_TEST(counted, logs.all());

  BOOST_REQUIRE(exec("ALTER TABLE webhook_inbox_away RENAME TO webhook_inbox").ok());
  BOOST_TEST(wait_until([&] { return !logs.matching("webhook events can be claimed again").empty(); }));
  int64_t id = deliver(s, path, "msg_after_outage", 7);
  BOOST_TEST(wait_until([&] { return status_of(s, id) == "done"; }));
  pool.stop();
  BOOST_TEST(logs.matching("cannot claim webhook events").size() <= first + 6);  // the rounds', one racing the rename
}

BOOST_AUTO_TEST_CASE(run_once_without_threads_and_list_filters) {
  FakeClock clock(1'700'000'000'000);
  WebhookStack s(clock);
  std::string path = s.add_endpoint(1, kSecretA);
  std::string other = s.add_endpoint(2, kSecretA);
  FlakyHandler handler;
  WorkerOptions o = fast_options(0, 5);
  o.backoff_base_ms = 10'000;
  WorkerPool pool(*s.inbox, handler, clock, system_random(), o);
  BOOST_REQUIRE(pool.start().ok());
  int64_t a = deliver(s, path, "a", 1);
  int64_t b = deliver(s, other, "b", 2);
  handler.set_failing(true);
  BOOST_TEST(*pool.run_once() == 2);
  BOOST_TEST(*pool.run_once() == 0);  // not due yet: the fake clock has not moved
  BOOST_TEST(pool.list({"pending", 1, 10})->size() == 1u);
  BOOST_TEST(pool.list({"", 2, 10})->at(0).id == b);
  BOOST_TEST((pool.list({"bogus", 0, 10}).code() == Code::kInvalidArgument));
  clock.advance_ms(10'001);
  handler.set_failing(false);
  BOOST_TEST(*pool.run_once() == 2);
  BOOST_TEST(status_of(s, a) == "done");
  BOOST_TEST(status_of(s, b) == "done");
  auto counts = s.inbox->counts();
  BOOST_REQUIRE(counts.ok());
  BOOST_TEST(counts->at(2).second == 2);  // done
}

BOOST_AUTO_TEST_CASE(done_events_past_retention_are_deleted_dead_letters_kept) {
  FakeClock clock(1'700'000'000'000);
  Config cfg;
  cfg.webhooks.retention_days = 2;
  WebhookStack s(clock, cfg);
  std::string path = s.add_endpoint(1, kSecretA);
  FlakyHandler handler;
  WorkerOptions o = WorkerOptions::from(cfg.webhooks);
  o.workers = 0;
  o.max_attempts = 1;
  BOOST_TEST(o.retention_ms == 2 * 86'400'000LL);
  WorkerPool pool(*s.inbox, handler, clock, system_random(), o);
  int64_t old_done = deliver(s, path, "old", 1);
  BOOST_REQUIRE(*pool.run_once() == 1);
  handler.set_failing(true);
  int64_t dead = deliver(s, path, "dead", 2);
  BOOST_REQUIRE(*pool.run_once() == 1);
  BOOST_REQUIRE(s.inbox->get(dead)->status == "dead");
  handler.set_failing(false);
  clock.advance_ms(86'400'000);
  int64_t recent = deliver(s, path, "recent", 3);
  BOOST_REQUIRE(*pool.run_once() == 1);
  clock.advance_ms(86'400'000 + 1000);  // old is now past 2 days, recent is not
  auto n = pool.purge_expired();
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(*n == 1);
  BOOST_TEST((s.inbox->get(old_done).code() == Code::kNotFound));
  BOOST_TEST(s.inbox->get(recent)->status == "done");
  BOOST_TEST(s.inbox->get(dead)->status == "dead");
  // A purged webhook-id is no longer remembered: Fathom stops retrying long before retention.
  BOOST_TEST(s.inbox_rows() == 2);
}

BOOST_AUTO_TEST_SUITE_END()

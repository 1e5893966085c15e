// Inbox claims shared by several hosts (issue 12): claim leases with a fencing claim token,
// takeover of a dead host's events, dedupe of one webhook-id delivered to two hosts at once, and on
// PostgreSQL: SKIP LOCKED claims outside the fleet's write lock, LISTEN/NOTIFY wake-ups, and a
// stopped server answered with 503 at once and reconnected to by itself. A "host" here is an Inbox
// on a Db of its own, as another process has.
#include <boost/test/unit_test.hpp>
#include <atomic>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fixture.h"
#include "support/pg_server.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

// Another host on the stack's store: a Db (connection or pool) and an Inbox of its own.
struct OtherHost {
  OtherHost(WebhookStack& s, Clock& clock, InboxOptions io = {}) {
    auto opened = Db::open(s.dir.store("bridge.db"));
    BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status());
    db = std::move(*opened);
    inbox = std::make_unique<Inbox>(*db, clock, io);
  }
  std::unique_ptr<Db> db;
  std::unique_ptr<Inbox> inbox;
};

Delivery delivery_of(int64_t integration, const std::string& webhook_id, int64_t recording, const std::string& body) {
  Delivery d;
  d.integration_id = integration;
  d.registration_id = 1;
  d.webhook_id = webhook_id;
  d.recording_id = recording;
  d.body = body;
  return d;
}

// Counts its calls; done() waits for a count.
class CountingHandler final : public InboxEventHandler {
 public:
  Status handle(const InboxEvent& e) override {
    std::lock_guard lk(mu_);
    ++calls_[e.id];
    return Status::Ok();
  }
  size_t distinct() {
    std::lock_guard lk(mu_);
    return calls_.size();
  }

 private:
  std::mutex mu_;
  std::map<int64_t, int> calls_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(claims)

// A host that stops renewing (dead, or cut off longer than the lease) loses its events to another
// host; when it comes back, its outcome and its batch's writes are refused: the new owner's stand.
BOOST_AUTO_TEST_CASE(an_expired_lease_is_taken_over_and_the_old_owners_outcome_is_refused) {
  FakeClock clock(1'700'000'000'000);
  WebhookStack s(clock);
  InboxOptions io;
  io.claim_lease_ms = 5'000;
  OtherHost a(s, clock, io), b(s, clock, io);
  const std::string body = meeting_body(1);
  auto appended = a.inbox->append(delivery_of(1, "msg_lease", 1, body));
  BOOST_REQUIRE(appended.ok());
  const int64_t id = appended->event_id;

  auto first = a.inbox->claim(10);
  BOOST_REQUIRE(first.ok());
  BOOST_REQUIRE_EQUAL(first->size(), 1u);
  const std::string a_claim = first->at(0).claim_token;
  BOOST_TEST(!a_claim.empty());
  BOOST_TEST(b.inbox->claim(10)->empty());          // held: nobody else gets it
  BOOST_TEST(*b.inbox->reclaim_expired() == 0);     // the lease still runs
  clock.advance_ms(4'000);
  BOOST_TEST(*a.inbox->renew({a_claim}) == 1);      // renewed at 4 s: now good until 9 s
  clock.advance_ms(4'000);
  BOOST_TEST(*b.inbox->reclaim_expired() == 0);
  clock.advance_ms(1'000);                          // 9 s: A stopped renewing
  BOOST_TEST(*b.inbox->reclaim_expired() == 1);
  auto second = b.inbox->claim(10);
  BOOST_REQUIRE(second.ok());
  BOOST_REQUIRE_EQUAL(second->size(), 1u);
  BOOST_TEST(second->at(0).attempts == 2);
  BOOST_TEST(second->at(0).claim_token != a_claim);

  // A comes back and tries to record its batch: nothing of it is written.
  bool recorded = false;
  auto late = a.inbox->finish_batch({{id, EventOutcome::kDone, {}, 0, a_claim}}, [&] {
    recorded = true;
    return Status::Ok();
  }, 0);
  BOOST_TEST(late.code() == Code::kConflict);
  BOOST_TEST(late.status().message().find("taken over") != std::string::npos, late.status().message());
  BOOST_TEST(!recorded);
  // ...and its marks alone change nothing either (a retry of the worker's bookkeeping).
  BOOST_REQUIRE(a.inbox->finish_batch({{id, EventOutcome::kRetry, "late", clock.now_ms(), a_claim}}, nullptr, 0).ok());
  BOOST_TEST(*a.inbox->renew({a_claim}) == 0);
  auto now = s.inbox->get(id);
  BOOST_TEST(now->status == "processing");
  BOOST_TEST(now->last_error == "");
  // B, the owner, records its outcome.
  BOOST_REQUIRE(b.inbox->finish_batch({{id, EventOutcome::kDone, {}, 0, second->at(0).claim_token}}, [&] {
                  return Status::Ok();
                }, 0).ok());
  BOOST_TEST(s.inbox->get(id)->status == "done");
  BOOST_TEST(s.inbox->get(id)->attempts == 2);
}

// The same webhook-id delivered to two hosts at the same moment (Fathom retrying on another app
// server): one event, the other host answers "duplicate" with its id.
BOOST_AUTO_TEST_CASE(one_webhook_id_delivered_to_two_hosts_at_once_is_one_event) {
  SystemClock clock;
  WebhookStack s(clock);
  OtherHost a(s, clock), b(s, clock);
  constexpr int kIds = 300;
  std::vector<std::string> ids, bodies;
  for (int i = 0; i < kIds; ++i) {
    ids.push_back("msg_both_" + std::to_string(i));
    bodies.push_back(meeting_body(1000 + i));
  }
  std::vector<Result<Appended>> got_a(kIds, Status::Internal("not run")), got_b(kIds, Status::Internal("not run"));
  std::atomic<bool> go{false};
  // Several senders per host, so that both hosts' group commits carry many of the ids at once.
  auto send = [&](Inbox& inbox, std::vector<Result<Appended>>& out, int from, int step) {
    while (!go) std::this_thread::yield();
    for (int i = from; i < kIds; i += step) out[i] = inbox.append(delivery_of(1, ids[i], 1000 + i, bodies[i]));
  };
  std::vector<std::thread> senders;
  for (int k = 0; k < 4; ++k) {
    senders.emplace_back(send, std::ref(*a.inbox), std::ref(got_a), k, 4);
    senders.emplace_back(send, std::ref(*b.inbox), std::ref(got_b), 3 - k, 4);
  }
  go = true;
  for (auto& t : senders) t.join();
  int fresh = 0, duplicates = 0;
  for (int i = 0; i < kIds; ++i) {
    BOOST_REQUIRE_MESSAGE(got_a[i].ok() && got_b[i].ok(), i << ": " << got_a[i].status() << " / " << got_b[i].status());
    BOOST_TEST(got_a[i]->event_id == got_b[i]->event_id, "webhook-id " << ids[i]);
    BOOST_TEST(got_a[i]->duplicate != got_b[i]->duplicate, "webhook-id " << ids[i]);
    fresh += !got_a[i]->duplicate + !got_b[i]->duplicate;
    duplicates += got_a[i]->duplicate + got_b[i]->duplicate;
  }
  BOOST_TEST(fresh == kIds);
  BOOST_TEST(duplicates == kIds);
  BOOST_TEST(s.inbox_rows() == kIds);
}

// PostgreSQL: hosts claiming at once never share an event, and claims go on while another
// connection holds the fleet's write lock (they do not take it).
BOOST_AUTO_TEST_CASE(concurrent_claims_never_share_an_event_and_skip_the_write_lock) {
  if (!store_engine_is_postgres()) return;  // SQLite has one writer: its claims take the lock
  SystemClock clock;
  WebhookStack s(clock);
  OtherHost a(s, clock), b(s, clock);
  constexpr int kEvents = 400;
  for (int i = 0; i < kEvents; ++i) {
    const std::string body = meeting_body(i + 1);
    BOOST_REQUIRE(a.inbox->append(delivery_of(1, "msg_claim_" + std::to_string(i), i + 1, body)).ok());
  }
  // Another host holds the fleet's write lock for the whole race.
  std::promise<void> holding, release;
  std::thread locker([&] {
    (void)s.db->transaction([&] {
      holding.set_value();
      release.get_future().wait_for(std::chrono::seconds(60));
      return Status::Ok();
    });
  });
  holding.get_future().wait();
  std::mutex mu;
  std::vector<int64_t> claimed;
  std::vector<std::string> errors;
  auto worker = [&](Inbox& inbox) {
    for (;;) {
      auto got = inbox.claim(7);
      std::lock_guard lk(mu);
      if (!got.ok()) {
        errors.push_back(got.status().message());
        return;
      }
      if (got->empty()) return;
      for (const InboxEvent& e : *got) claimed.push_back(e.id);
    }
  };
  auto started = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int k = 0; k < 3; ++k) {
    workers.emplace_back(worker, std::ref(*a.inbox));
    workers.emplace_back(worker, std::ref(*b.inbox));
  }
  for (auto& t : workers) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  release.set_value();
  locker.join();
  BOOST_TEST(errors.empty(), errors.size() << " claim(s) failed, first: " << (errors.empty() ? "" : errors[0]));
  std::set<int64_t> distinct(claimed.begin(), claimed.end());
  BOOST_TEST(claimed.size() == static_cast<size_t>(kEvents));  // none twice...
  BOOST_TEST(distinct.size() == static_cast<size_t>(kEvents));  // ...none left
  // Far below the 10 s the write lock would have made each claim wait (store.busy_timeout_ms).
  BOOST_TEST(seconds < 9.0, "claims took " << seconds << " s");
}

// PostgreSQL: a delivery stored by one host wakes another host's idle workers through
// LISTEN/NOTIFY, long before their poll (60 s here) would have found it.
BOOST_AUTO_TEST_CASE(a_delivery_on_one_host_wakes_the_workers_of_another) {
  if (!store_engine_is_postgres()) return;  // one SQLite process wakes its own workers
  SystemClock clock;
  WebhookStack s(clock);
  OtherHost a(s, clock), b(s, clock);
  CountingHandler handler;
  WorkerOptions o;
  o.workers = 2;
  o.poll_interval_ms = 60'000;
  WorkerPool pool(*b.inbox, handler, clock, system_random(), o);
  BOOST_REQUIRE(pool.start().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the workers are asleep on their poll
  auto started = std::chrono::steady_clock::now();
  for (int i = 0; i < 5; ++i) {
    const std::string body = meeting_body(50 + i);
    BOOST_REQUIRE(a.inbox->append(delivery_of(1, "msg_wake_" + std::to_string(i), 50 + i, body)).ok());
  }
  BOOST_TEST(wait_until([&] { return handler.distinct() == 5u; }, 30));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  BOOST_TEST(seconds < 30.0, "woken after " << seconds << " s");
  pool.stop();
}

// PostgreSQL stopped: deliveries are answered 503 at once (so Fathom retries), nothing is
// half-written, and when the server is back the same inbox stores again without a restart. A server
// of this test's own, so that stopping it leaves the other suites' server alone.
BOOST_AUTO_TEST_CASE(a_stopped_postgresql_answers_503_at_once_and_is_reconnected_to) {
  if (!store_engine_is_postgres()) return;
  PrivatePostgres pg;
  SystemClock clock;
  Config cfg;
  auto opened = Db::open(pg.url());
  BOOST_REQUIRE_MESSAGE(opened.ok(), opened.status());
  std::unique_ptr<Db> db = std::move(*opened);
  BOOST_REQUIRE(migrate_webhooks(*db).ok());
  Sealer sealer;
  add_test_key(sealer);
  Registry registry(*db, sealer, clock, system_random(), cfg.webhooks);
  Inbox inbox(*db, clock);
  Receiver receiver(registry, inbox, clock, cfg.webhooks);
  auto reg = registry.add_manual(1, SecretString(kSecretA));
  BOOST_REQUIRE(reg.ok());
  const std::string path = registry.path_for(reg->path_token);
  auto post = [&](const std::string& id) {
    const std::string body = meeting_body(77);
    return receiver.handle(path, signed_headers(kSecretA, id, clock.now_s(), body), body);
  };
  BOOST_REQUIRE(post("msg_before").http_status == 200);

  pg.halt();
  for (int i = 0; i < 3; ++i) {
    auto started = std::chrono::steady_clock::now();
    ReceiveResult r = post("msg_down_" + std::to_string(i));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    BOOST_TEST(r.http_status == 503);
    BOOST_TEST(r.reason == "storage unavailable");
    BOOST_TEST(seconds < 5.0, "answered after " << seconds << " s");
  }
  // The error names the store (and never a password).
  auto failed = inbox.counts();
  BOOST_REQUIRE(!failed.ok());
  BOOST_TEST(failed.status().message().find("store postgresql://") != std::string::npos, failed.status().message());
  BOOST_TEST(failed.status().message().find("unreachable") != std::string::npos, failed.status().message());

  pg.resume();
  BOOST_TEST(wait_until([&] { return post("msg_down_0").http_status == 200; }, 30));  // Fathom's retry
  BOOST_TEST(post("msg_after").http_status == 200);
  auto counts = inbox.counts();
  BOOST_REQUIRE_MESSAGE(counts.ok(), counts.status());
  BOOST_TEST(counts->at(0).second == 3);  // msg_before, msg_down_0 (once), msg_after: nothing else
}

BOOST_AUTO_TEST_SUITE_END()

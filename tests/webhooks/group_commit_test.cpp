// One group commit of many deliveries, with bodies in the rows (the Inbox without a body log: the
// PostgreSQL mode, and SQLite ":memory:"-style stores). On PostgreSQL the batch's rows go in one
// multi-row INSERT per 512 (issue 12); each delivery must still be answered as if it were written
// alone: its own event id, "duplicate" for a webhook-id already stored or given twice in the batch,
// an unprocessable one stored as a dead letter, every body back byte for byte.
#include <boost/test/unit_test.hpp>
#include <future>
#include <set>

#include "fixture.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {

// Queues `deliveries` while the writer is held after a first batch, so that they all go into the
// next group commit; returns each one's answer, in order.
std::vector<Result<Appended>> one_group_commit(Inbox& inbox, const std::vector<Delivery>& deliveries) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> held{false};
  inbox.set_commit_listener([&] {
    if (!held.exchange(true)) released.wait();
  });
  Delivery hold = deliveries.front();
  hold.webhook_id = "msg_hold_the_writer";
  inbox.append_async(hold, [](Result<Appended>) {});
  BOOST_REQUIRE(wait_until([&] { return held.load(); }));
  Answers<Result<Appended>> answers(deliveries.size());
  for (size_t i = 0; i < deliveries.size(); ++i) {
    inbox.append_async(deliveries[i], [&answers, i](Result<Appended> r) { answers.put(i, std::move(r)); });
  }
  release.set_value();
  auto out = answers.wait();
  inbox.set_commit_listener(nullptr);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(group_commit)

// 600 deliveries in one commit (more than one 512-row statement on PostgreSQL, the second padded):
// the new ones, two twins, a repeat of a stored event and an unprocessable one.
BOOST_AUTO_TEST_CASE(every_delivery_of_a_large_group_commit_is_answered_as_if_written_alone) {
  SystemClock clock;
  WebhookStack s(clock);
  InboxOptions io;
  io.max_batch = 1000;
  Inbox inbox(*s.db, clock, io);
  constexpr int kNew = 596;
  std::vector<std::string> ids, bodies;
  for (int i = 0; i < kNew; ++i) {
    ids.push_back("msg_group_" + std::to_string(i));
    bodies.push_back(meeting_body(5000 + i, "Group " + std::to_string(i)) + std::string(i % 7, ' '));
  }
  const std::string stored_body = meeting_body(4999);
  auto stored = inbox.append({1, 1, "msg_stored", 4999, stored_body, {}});
  BOOST_REQUIRE(stored.ok());

  std::vector<Delivery> batch;
  // Not in key order: the inbox sorts them (two hosts' batches never wait for each other in a cycle).
  for (int i = kNew - 1; i >= 0; --i) batch.push_back({1, 1, ids[i], 5000 + i, bodies[i], {}});
  batch.push_back({1, 1, ids[7], 5007, bodies[7], {}});                  // a twin of a new one
  batch.push_back({1, 1, "msg_stored", 4999, stored_body, {}});          // a repeat of a stored one
  batch.push_back({1, 1, "msg_no_meeting", 0, "{\"x\":1}", "not a Meeting: recording_id is missing"});
  batch.push_back({2, 1, ids[3], 6003, bodies[3], {}});                  // same id, another integration
  auto got = one_group_commit(inbox, batch);

  std::set<int64_t> distinct;
  for (int k = 0; k < kNew; ++k) {
    const int i = kNew - 1 - k;
    BOOST_REQUIRE_MESSAGE(got[k].ok(), ids[i] << ": " << got[k].status());
    BOOST_TEST(!got[k]->duplicate, ids[i]);
    distinct.insert(got[k]->event_id);
    auto e = inbox.get(got[k]->event_id, true);
    BOOST_REQUIRE(e.ok());
    BOOST_TEST(e->webhook_id == ids[i]);
    BOOST_TEST(e->recording_id == 5000 + i);
    BOOST_TEST(e->status == "pending");
    BOOST_TEST(e->body == bodies[i], ids[i] << ": the body came back different");
  }
  BOOST_TEST(distinct.size() == static_cast<size_t>(kNew));
  const auto& twin = got[kNew];
  BOOST_REQUIRE(twin.ok());
  BOOST_TEST(twin->duplicate);
  BOOST_TEST(twin->event_id == got[kNew - 1 - 7]->event_id);
  const auto& repeat = got[kNew + 1];
  BOOST_REQUIRE(repeat.ok());
  BOOST_TEST(repeat->duplicate);
  BOOST_TEST(repeat->event_id == stored->event_id);
  const auto& dead = got[kNew + 2];
  BOOST_REQUIRE(dead.ok());
  BOOST_TEST(!dead->duplicate);
  auto d = inbox.get(dead->event_id);
  BOOST_TEST(d->status == "dead");
  BOOST_TEST(d->last_error == "not a Meeting: recording_id is missing");
  const auto& other = got[kNew + 3];
  BOOST_REQUIRE(other.ok());
  BOOST_TEST(!other->duplicate);
  BOOST_TEST(inbox.get(other->event_id)->integration_id == 2);
  // The held first batch, the stored one, the new ones, the dead letter and the other integration's.
  BOOST_TEST(s.inbox_rows() == 1 + 1 + kNew + 1 + 1);
  BOOST_TEST(scalar(*s.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='pending'") == 1 + 1 + kNew + 1);
}

BOOST_AUTO_TEST_SUITE_END()

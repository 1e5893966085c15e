// The batched processing path (issue 11) over real parts: a real SQLite file with the inbox's body
// log, the MeetingEventHandler with MeetingStore + MeetingDispatcher on the inbox's connection, a
// WorkerPool thread. Shows that a batch's bookkeeping is one write transaction (commits counted by
// the store seam, Db::commits) and that a meeting's content is on disk once.
#define BOOST_TEST_MODULE fb_webhooks_batch
#include <sys/stat.h>

#include <atomic>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <mutex>
#include <set>

#include "fixture.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"
#include "webhooks/meeting_handler.h"
#include "webhooks/worker.h"
#include "one_integration.h"
#include "meeting_stack.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

namespace {


// Counts what the worker hands over: meetings mapped (by recording), reactions, and batches.
class CountingPipeline final : public MeetingPipeline {
 public:
  Status on_meeting(const MeetingEvent& e) override {
    std::lock_guard lk(mu);
    if (e.raw_json.find("\"recording_id\":" + std::to_string(e.recording_id)) == std::string_view::npos) {
      return Status::Internal("the meeting handed to the pipeline is not recording " + std::to_string(e.recording_id));
    }
    ++mapped[e.recording_id];
    return Status::Ok();
  }
  Status on_webhook(const MeetingEvent&) override {
    reactions.fetch_add(1);
    return Status::Ok();
  }
  Status begin_batch(size_t) override {
    batches_begun.fetch_add(1);
    return Status::Ok();
  }
  Status end_batch(bool ok) override {
    if (ok) batches_ended.fetch_add(1);
    return Status::Ok();
  }
  std::mutex mu;
  std::map<int64_t, int> mapped;
  std::atomic<int> reactions{0}, batches_begun{0}, batches_ended{0};
};

// A 20 KB meeting whose transcript carries a marker no other meeting has.
std::string big_meeting(int64_t recording_id, const std::string& marker) {
  std::string items;
  for (int i = 0; items.size() < 20000; ++i) {
    if (!items.empty()) items += ",";
    items += R"({"speaker":{"display_name":"Alice","matched_calendar_invitee_email":"alice@example.com"},"text":")" +
             (i == 7 ? marker : std::string("We talked about the quarterly plan and the next steps, item ") +
                                    std::to_string(i)) +
             R"(","timestamp":"00:00:01"})";
  }
  std::string body = meeting_body(recording_id);
  size_t at = body.find(R"("transcript":[)");
  BOOST_REQUIRE(at != std::string::npos);
  return body.substr(0, at) + R"("transcript":[)" + items + "]}";
}

struct Stack {
  explicit Stack(int claim_batch)
      : meetings(clock), web(meetings.web), store(meetings.store), dispatcher(meetings.dispatcher) {
    handler = std::make_unique<MeetingEventHandler>(*store, *dispatcher, directory, pipeline);
    options.workers = 1;
    options.claim_batch = claim_batch;
    options.reclaim_on_start = false;
    options.on_batch_committed = [this] {
      std::lock_guard lk(mu);
      commits_at_batch.push_back(web.db->commits());
    };
  }
  // Deliveries appended through the inbox (as the receiver does), none processed yet.
  void append(int64_t first_recording, int n, const std::function<std::string(int64_t)>& body) {
    for (int i = 0; i < n; ++i) {
      int64_t rec = first_recording + i;
      std::string b = body(rec);
      std::string id = "msg_" + std::to_string(rec);
      auto r = web.inbox->append({1, 1, id, rec, b});
      BOOST_REQUIRE_MESSAGE(r.ok(), r.status());
    }
  }
  int64_t done() { return scalar(*web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='done'"); }

  SystemClock clock;
  MeetingStack meetings;
  WebhookStack& web;
  std::unique_ptr<MeetingStore>& store;
  std::unique_ptr<MeetingDispatcher>& dispatcher;
  fb::test::OneIntegration directory;
  CountingPipeline pipeline;
  std::unique_ptr<MeetingEventHandler> handler;
  WorkerOptions options;
  std::mutex mu;
  std::vector<int64_t> commits_at_batch;  // guarded by mu: Db::commits() after each batch's commit
};

// Bytes in the files of a directory (the body log).
uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) n += f.file_size();
  return n;
}

size_t occurrences(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(batch)

BOOST_AUTO_TEST_CASE(a_batch_of_events_is_one_write_transaction) {
  constexpr int kBatch = 8, kEvents = 40;
  Stack s(kBatch);
  s.append(5000, kEvents, [](int64_t rec) { return meeting_body(rec); });
  const int64_t before = s.web.db->commits();
  {
    WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] { return s.done() == kEvents; }, 30));
    pool.stop();
  }
  std::vector<int64_t> at;
  {
    std::lock_guard lk(s.mu);
    at = s.commits_at_batch;
  }
  // 40 events in batches of 8: five batches, each committed once (its meetings, mapped versions,
  // event outcomes and the next batch's claim); only the very first claim is a commit of its own
  // (before it the starting worker's housekeeping may commit: reclaim, purge).
  // On PostgreSQL the next batch's claim is a statement of its own, outside the fleet's write lock
  // (inbox.h, "Claims and leases"): two commits per batch there.
  const int64_t per_batch = store_engine_is_postgres() ? 2 : 1;
  BOOST_REQUIRE_EQUAL(at.size(), 5u);
  BOOST_TEST(at.front() - before >= 2);
  for (size_t i = 1; i < at.size(); ++i) BOOST_TEST(at[i] - at[i - 1] == per_batch, "batch " << i);
  // Every event was mapped once, reacted to once, and its meeting recorded as mapped.
  BOOST_TEST(s.pipeline.mapped.size() == static_cast<size_t>(kEvents));
  for (const auto& [rec, n] : s.pipeline.mapped) BOOST_TEST(n == 1, "recording " << rec);
  BOOST_TEST(s.pipeline.reactions.load() == kEvents);
  BOOST_TEST(s.pipeline.batches_begun.load() == 5);
  BOOST_TEST(s.pipeline.batches_ended.load() == 5);
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings WHERE mapped_version=1 AND content_version=1") ==
             kEvents);
}

BOOST_AUTO_TEST_CASE(meeting_content_is_on_disk_once, *boost::unit_test::precondition(sqlite_only)) {
  constexpr int kEvents = 16;
  Stack s(8);
  s.append(7000, kEvents, [](int64_t rec) { return big_meeting(rec, "marker-of-" + std::to_string(rec) + "-x"); });
  // Only what processing adds is measured: the WAL from here on (no checkpoint runs meanwhile:
  // the inbox checkpoints in the background every second, so the WAL is truncated first and the
  // interval is long enough for the run).
  BOOST_REQUIRE(s.web.db->with([&] { return s.web.db->exec("PRAGMA wal_checkpoint(TRUNCATE)"); }).ok());
  const std::string wal = s.web.db->path() + "-wal";
  const std::string bodies = default_body_dir(s.web.db->path());
  const uint64_t log_before = dir_bytes(bodies);
  const uint64_t body_bytes = big_meeting(7000, "marker-of-7000-x").size();
  {
    WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] { return s.done() == kEvents; }, 30));
    pool.stop();
  }
  struct stat st {};
  uint64_t wal_bytes = ::stat(wal.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  // Processing wrote nothing to the body log and, per event, far less than the meeting to SQLite
  // (the old path wrote ~43 KB per 20 KB event: the meeting again, the transcript again).
  BOOST_TEST(dir_bytes(bodies) == log_before);
  BOOST_TEST(wal_bytes / kEvents < body_bytes / 4, "WAL bytes per event: " << wal_bytes / kEvents);
  // Each meeting's transcript marker is in exactly one place on disk: its delivery's body.
  std::string disk = read_file(s.web.db->path()) + read_file(wal);
  for (const auto& f : std::filesystem::directory_iterator(bodies)) disk += read_file(f.path().string());
  for (int64_t rec = 7000; rec < 7000 + kEvents; ++rec) {
    BOOST_TEST(occurrences(disk, "marker-of-" + std::to_string(rec) + "-x") == 1u, "recording " << rec);
  }
  // ...and still readable through the store: the meeting, and a part of it.
  auto m = s.store->get(1, 7003);
  BOOST_REQUIRE_MESSAGE(m.ok(), m.status());
  BOOST_TEST(m->content_event_id > 0);
  BOOST_TEST(m->raw_json.find("marker-of-7003-x") != std::string::npos);
  auto t = s.store->cached_content(1, 7003, ContentKind::kTranscript);
  BOOST_REQUIRE(t.ok());
  BOOST_REQUIRE(t->has_value());
  BOOST_TEST(t->value().find("marker-of-7003-x") != std::string::npos);
  // Retention keeps the event whose body is the meeting's content.
  BOOST_TEST(*s.web.inbox->purge_done(s.clock.now_ms() + 1) == 0);
  BOOST_TEST(s.store->get(1, 7003)->raw_json.find("marker-of-7003-x") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

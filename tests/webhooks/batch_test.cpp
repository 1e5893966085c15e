// The batched processing path (issue 11) over real parts: a real SQLite file with the inbox's body
// log, the MeetingEventHandler with MeetingStore + MeetingDispatcher on the inbox's connection, a
// WorkerPool thread. Shows that a batch's bookkeeping is one write transaction (commits counted by
// the store seam, Db::commits) and that a meeting's content is on disk once.
#define BOOST_TEST_MODULE fb_webhooks_batch
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <mutex>
#include <set>

#include "fixture.h"
#include "scripting/lua_pipeline.h"
#include "scripting/script_host.h"
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
    // The pool's lease upkeep (renew, reclaim expired claims) is a commit of its own, run at most
    // every min(poll interval, lease / 3): with the default 1 s, a run slower than that (a loaded
    // machine) counted it between two batches. The events are all appended before a pool starts,
    // so nothing here needs the poll; the upkeep then runs once, at the start.
    options.poll_interval_ms = 60'000;
    // The stuck-batch supervisor runs that same upkeep too, on its own thread: whichever of it and
    // the worker comes first at the start does it. A supervisor scheduled late (a loaded machine)
    // renewed the first batch's claim after that batch had committed, one commit more before
    // batch 1 (failed so in a CI run). No batch here can be stuck, so there is no supervisor.
    options.event_deadline_ms = 0;
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
  // After the run: `batches` batches, each one commit of web.db; only the very first claim is a
  // commit of its own (before it the starting worker's housekeeping may commit: reclaim, purge).
  void check_one_commit_per_batch(int64_t commits_before, size_t batches) {
    std::vector<int64_t> at;
    {
      std::lock_guard lk(mu);
      at = commits_at_batch;
    }
    // On PostgreSQL the next batch's claim is a statement of its own, outside the fleet's write lock
    // (inbox.h, "Claims and leases"): two commits per batch there.
    const int64_t per_batch = store_engine_is_postgres() ? 2 : 1;
    BOOST_REQUIRE_EQUAL(at.size(), batches);
    BOOST_TEST(at.front() - commits_before >= 2);
    for (size_t i = 1; i < at.size(); ++i) BOOST_TEST(at[i] - at[i - 1] == per_batch, "batch " << i);
  }

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

// Writes the stack's scripts (mapping.lua, reactions.lua) and opens a ScriptHost on them; db: the
// scripts' own store connection (null: the host opens none).
Result<std::unique_ptr<ScriptHost>> open_scripts(Stack& s, const std::string& mapping,
                                                 const std::string& reactions, Db* db = nullptr) {
  std::filesystem::create_directories(s.web.dir.file("scripts"));
  std::ofstream(s.web.dir.file("scripts/mapping.lua")) << mapping;
  std::ofstream(s.web.dir.file("scripts/reactions.lua")) << reactions;
  ScriptHostOptions so;
  so.config.dir = s.web.dir.file("scripts");
  so.config.reload_interval_ms = 0;
  so.db = db;
  return ScriptHost::open(std::move(so));
}

// Bytes in the files of a directory (the body log).
uint64_t dir_bytes(const std::string& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(dir, ec)) n += f.file_size();
  return n;
}

std::string scalar_text(Db& db, const std::string& sql) {
  std::string out;
  Status s = db.with([&]() -> Status {
    Stmt& q = db.prepare(sql);
    return each_row(q, [&](const Stmt& r) { out = r.text(0); });
  });
  BOOST_REQUIRE_MESSAGE(s.ok(), s);
  return out;
}

// The CRM operation "note": each call's args into *seen, by their "rec" (called from the workers).
void register_notes(ScriptHost& scripts, std::map<int64_t, nlohmann::json>& seen) {
  auto mu = std::make_shared<std::mutex>();
  BOOST_REQUIRE(scripts
                    .register_crm_operation("note",
                                            [mu, &seen](const CrmCall& c) -> Result<std::string> {
                                              auto args = nlohmann::json::parse(c.args_json);
                                              std::lock_guard lk(*mu);
                                              seen[args["rec"].get<int64_t>()] = args;
                                              return std::string("{}");
                                            })
                    .ok());
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
  // 40 events in batches of 8: five batches, each committed once (its meetings, mapped versions,
  // event outcomes and the next batch's claim).
  s.check_one_commit_per_batch(before, 5);
  // Every event was mapped once, reacted to once, and its meeting recorded as mapped.
  BOOST_TEST(s.pipeline.mapped.size() == static_cast<size_t>(kEvents));
  for (const auto& [rec, n] : s.pipeline.mapped) BOOST_TEST(n == 1, "recording " << rec);
  BOOST_TEST(s.pipeline.reactions.load() == kEvents);
  BOOST_TEST(s.pipeline.batches_begun.load() == 5);
  BOOST_TEST(s.pipeline.batches_ended.load() == 5);
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings WHERE mapped_version=1 AND content_version=1") ==
             kEvents);
}

// reactions.lua's store.set (issue 11): was a write transaction of its own per event, on the
// scripts' connection, competing with the inbox writer for SQLite's one write lock. Now a batch's
// store writes are made in the batch's own transaction: the scripts' connection commits nothing,
// the batch is still one commit, and each event of a batch reads what the earlier ones wrote.
BOOST_AUTO_TEST_CASE(the_scripts_store_writes_of_a_batch_are_part_of_its_one_transaction) {
  constexpr int kBatch = 8, kEvents = 40;
  Stack s(kBatch);
  // The scripts' own connection to the same file, as the Bridge opens it (db_scripts).
  auto scripts_db = Db::open(s.web.db->path());
  BOOST_REQUIRE(scripts_db.ok());
  auto scripts = open_scripts(s, "function on_meeting(m, ctx) end\n",
                              "function on_webhook(m, ctx)\n"
                              "  local n = store.get('seen') or 0\n"
                              "  assert(store.set('seen', n + 1))\n"
                              "  assert(store.set('last', m.recording_id))\n"
                              "  if n == 0 then assert(store.set('first', m.recording_id)) end\n"
                              "  assert(store.delete('first_gone'))\n"
                              "  crm.note({ n = n })\n"
                              "end\n",
                              scripts_db->get());
  BOOST_REQUIRE_MESSAGE(scripts.ok(), scripts.status());
  std::mutex mu;
  std::vector<int64_t> seen;
  BOOST_REQUIRE((*scripts)->register_crm_operation("note", [&](const CrmCall& c) -> Result<std::string> {
                      auto n = nlohmann::json::parse(c.args_json)["n"].get<int64_t>();
                      std::lock_guard lk(mu);
                      seen.push_back(n);
                      return std::string("{}");
                    }).ok());
  LuaPipeline pipeline(**scripts);
  MeetingEventHandler handler(*s.store, *s.dispatcher, s.directory, pipeline);
  // A key to delete, there before the batch.
  BOOST_REQUIRE(s.web.db->with([&] {
    return s.web.db->exec("INSERT INTO script_store VALUES (1, 'first_gone', '1', 0)");
  }).ok());
  s.append(9000, kEvents, [](int64_t rec) { return meeting_body(rec); });
  const int64_t before = s.web.db->commits();
  const int64_t scripts_before = (*scripts_db)->commits();
  {
    WorkerPool pool(*s.web.inbox, handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] { return s.done() == kEvents; }, 30));
    pool.stop();
  }
  s.check_one_commit_per_batch(before, 5);
  BOOST_TEST((*scripts_db)->commits() - scripts_before == 0);
  // Every event read the count the one before it wrote, in its batch and across batches.
  std::sort(seen.begin(), seen.end());
  BOOST_REQUIRE_EQUAL(seen.size(), static_cast<size_t>(kEvents));
  for (int i = 0; i < kEvents; ++i) BOOST_TEST(seen[static_cast<size_t>(i)] == i);
  auto value = [&](const std::string& key) {
    return scalar_text(*s.web.db, "SELECT value FROM script_store WHERE integration_id=1 AND key='" + key + "'");
  };
  BOOST_TEST(value("seen") == std::to_string(kEvents));
  BOOST_TEST(value("last") == std::to_string(9000 + kEvents - 1));
  BOOST_TEST(value("first") == "9000");
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM script_store WHERE key='first_gone'") == 0);
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

// The mapping and the reactions of a webhook event each see the meeting as Fathom sent it, whatever
// the other wrote into its `meeting` table: at the top level, in nested tables (the recorder, the
// attendees, the transcript, short or built on read), with rawset or setmetatable. (Both hooks run
// in one call of the Lua pipeline, on one Lua state.)
BOOST_AUTO_TEST_CASE(what_the_mapping_writes_into_its_meeting_is_not_what_the_reaction_sees) {
  constexpr int kKinds = 10, kEvents = 2 * kKinds;
  Stack s(8);
  auto scripts = open_scripts(
      s,
      "function on_meeting(m, ctx)\n"
      "  local kind = m.recording_id % 10\n"
      "  if kind == 1 then m.title = 'changed by the mapping'\n"
      "  elseif kind == 2 then m.recorded_by.email = 'mapping@changed.test'\n"
      "  elseif kind == 3 then m.calendar_invitees[1].email = 'mapping@changed.test'\n"
      "  elseif kind == 4 then table.insert(m.calendar_invitees, { email = 'added@changed.test' })\n"
      "  elseif kind == 5 or kind == 6 then m.transcript[1].text = 'changed by the mapping'\n"
      "  elseif kind == 7 then m.share_url = nil; m.added = true\n"
      "  elseif kind == 8 then setmetatable(m.recorded_by, { __index = function() return 'phantom' end })\n"
      "  elseif kind == 9 then rawset(m, 'title', 'changed by rawset')\n"
      "  end\n"
      "end\n",
      "function on_webhook(m, ctx)\n"
      "  crm.note({ rec = m.recording_id, title = m.title, email = m.recorded_by.email,\n"
      "             invitee = m.calendar_invitees[1].email, invitees = #m.calendar_invitees,\n"
      "             line = m.transcript[1].text, share_url = m.share_url, added = m.added,\n"
      "             phantom = m.recorded_by.phantom })\n"
      "  m.title = 'changed by the reaction'\n"
      "end\n");
  BOOST_REQUIRE_MESSAGE(scripts.ok(), scripts.status());
  std::map<int64_t, nlohmann::json> seen;  // what each crm.note call passed, by its args' rec
  register_notes(**scripts, seen);
  LuaPipeline pipeline(**scripts);
  MeetingEventHandler handler(*s.store, *s.dispatcher, s.directory, pipeline);
  s.append(8000, kEvents, [](int64_t rec) {
    // kind 6: a transcript long enough to be built only when read
    std::string body = rec % 10 == 6 ? big_meeting(rec, "marker") : meeting_body(rec);
    const std::string none = R"("calendar_invitees":[])";
    return body.replace(body.find(none), none.size(),
                        R"("calendar_invitees":[{"name":"Bob","email":"bob@acme.test","is_external":true}])");
  });
  {
    WorkerPool pool(*s.web.inbox, handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] { return s.done() == kEvents; }, 30));
    pool.stop();
  }
  BOOST_REQUIRE_EQUAL(seen.size(), static_cast<size_t>(kEvents));
  for (const auto& [rec, m] : seen) {
    BOOST_TEST_CONTEXT("recording " << rec) {
      BOOST_TEST(m.value("title", "") == "Weekly sync");
      BOOST_TEST(m.value("email", "") == "alice@example.com");
      BOOST_TEST(m.value("invitee", "") == "bob@acme.test");
      BOOST_TEST(m.value("invitees", 0) == 1);
      BOOST_TEST(m.value("line", "") ==
                 (rec % 10 == 6 ? "We talked about the quarterly plan and the next steps, item 0" : "Hello"));
      BOOST_TEST(m.value("share_url", "") == "https://fathom.video/share/x");
      BOOST_TEST(!m.contains("added"));
      BOOST_TEST(!m.contains("phantom"));
    }
  }
}

// A delivery whose meeting text holds a NUL (JSON's \u0000; PostgreSQL text cannot hold one) is
// mapped on both engines like any other, and its batch with it: the mapping gets the text whole,
// the meeting's query columns hold U+FFFD for the NUL. Before, on PostgreSQL, the meeting's write
// failed and the event was retried until it was a dead letter.
BOOST_AUTO_TEST_CASE(a_meeting_whose_text_holds_a_nul_is_mapped_with_its_batch_on_both_engines) {
  constexpr int kEvents = 6;
  Stack s(8);
  auto scripts = open_scripts(s,
                              "function on_meeting(m, ctx)\n"
                              "  crm.note({ rec = m.recording_id, title = m.title, name = m.recorded_by.name })\n"
                              "end\n",
                              "function on_webhook(m, ctx) end\n");
  BOOST_REQUIRE_MESSAGE(scripts.ok(), scripts.status());
  std::map<int64_t, nlohmann::json> seen;  // what each crm.note call passed, by its args' rec
  register_notes(**scripts, seen);
  LuaPipeline pipeline(**scripts);
  MeetingEventHandler handler(*s.store, *s.dispatcher, s.directory, pipeline);
  s.append(8100, kEvents, [](int64_t rec) {
    if (rec % 2 == 0) return meeting_body(rec);
    std::string body = meeting_body(rec, "Weekly\\u0000sync");
    const std::string name = R"("name":"Alice")";
    BOOST_REQUIRE(body.find(name) != std::string::npos);
    return body.replace(body.find(name), name.size(), R"("name":"Al\u0000ice")");
  });
  {
    WorkerPool pool(*s.web.inbox, handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] { return s.done() == kEvents; }, 30));
    pool.stop();
  }
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status<>'done'") == 0);
  BOOST_REQUIRE_EQUAL(seen.size(), static_cast<size_t>(kEvents));
  for (const auto& [rec, m] : seen) {
    const bool nul = rec % 2 == 1;
    BOOST_TEST(m.value("title", "") == (nul ? std::string("Weekly\0sync", 11) : std::string("Weekly sync")),
               "recording " << rec);
    BOOST_TEST(m.value("name", "") == (nul ? std::string("Al\0ice", 6) : std::string("Alice")), "recording " << rec);
    auto stored = s.store->get(1, rec);
    BOOST_REQUIRE_MESSAGE(stored.ok(), stored.status());
    BOOST_TEST(stored->title == (nul ? "Weekly\xEF\xBF\xBDsync" : "Weekly sync"), "recording " << rec);
    BOOST_TEST(stored->mapped_version == 1, "recording " << rec);
  }
}

// Runs a pool over the stack's appended events until `done` of them are done (and no more).
void run_until_done(Stack& s, int64_t done) {
  s.options.backoff_base_ms = 600'000;  // no retry within the test, however slow the machine
  WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options);
  BOOST_REQUIRE(pool.start().ok());
  BOOST_REQUIRE(wait_until([&] { return s.done() == done; }, 30));
  pool.stop();
}

// One event whose writes the store refuses (here a trigger; in life, a meeting an engine cannot
// hold) does not take its batch with it: the batch's record fails as a whole, its events are then
// handled and recorded one by one, and only the refused ones go toward a retry, with the store's
// error. Before, every event of the batch was retried with that error, and could end a dead letter
// by sharing batches with it. Two refused in a row look like the store, not an event: the events
// after them are one batch again.
BOOST_AUTO_TEST_CASE(an_event_the_store_refuses_does_not_take_its_batch_with_it) {
  constexpr int kEvents = 6;
  constexpr int64_t kFirst = 8201;
  const std::set<int64_t> refused = {8203, 8204};
  Stack s(8);
  refuse_meetings(*s.web.db, "8203, 8204");
  s.append(kFirst, kEvents, [](int64_t rec) { return meeting_body(rec); });
  run_until_done(s, kEvents - 2);
  for (int64_t rec = kFirst; rec < kFirst + kEvents; ++rec) {
    const std::string where = " FROM webhook_inbox WHERE recording_id=" + std::to_string(rec);
    BOOST_TEST_CONTEXT("recording " << rec) {
      BOOST_TEST(scalar(*s.web.db, "SELECT attempts" + where) == 1);  // none is retried for another's error
      if (refused.count(rec)) {
        BOOST_TEST(scalar_text(*s.web.db, "SELECT status" + where) == "pending");
        BOOST_TEST(scalar_text(*s.web.db, "SELECT last_error" + where).find("the store refuses") != std::string::npos);
      } else {
        BOOST_TEST(scalar_text(*s.web.db, "SELECT status" + where) == "done");
        BOOST_TEST(scalar(*s.web.db, "SELECT mapped_version FROM sync_meetings WHERE recording_id=" +
                                         std::to_string(rec)) == 1);
      }
      // Handled twice: in the batch, then alone (8201-8204) or in the batch of those after the two
      // refused in a row (8205, 8206).
      BOOST_TEST(s.pipeline.mapped[rec] == 2);
    }
  }
  // The batch, four events alone, the last two together.
  BOOST_TEST(s.pipeline.batches_begun.load() == 6);
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings") == kEvents - 2);
}

// A store that refuses every event's writes (full, say) is not taken for bad events: after two
// events failed alone, the rest are recorded together once more, and then all go toward a retry
// with the store's error, each handled twice in all (not once per event of its batch).
BOOST_AUTO_TEST_CASE(a_store_that_refuses_every_event_is_not_tried_event_by_event) {
  constexpr int kEvents = 6;
  constexpr int64_t kFirst = 8301;
  Stack s(8);
  refuse_meetings(*s.web.db, "");
  s.append(kFirst, kEvents, [](int64_t rec) { return meeting_body(rec); });
  s.options.backoff_base_ms = 600'000;  // no retry within the test, however slow the machine
  {
    WorkerPool pool(*s.web.inbox, *s.handler, s.clock, system_random(), s.options);
    BOOST_REQUIRE(pool.start().ok());
    BOOST_REQUIRE(wait_until([&] {
      return scalar(*s.web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE status='pending' AND last_error IS NOT NULL") ==
             kEvents;
    }, 30));
    pool.stop();
  }
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM webhook_inbox WHERE attempts=1") == kEvents);
  for (int64_t rec = kFirst; rec < kFirst + kEvents; ++rec) BOOST_TEST(s.pipeline.mapped[rec] == 2, "recording " << rec);
  BOOST_TEST(s.pipeline.batches_begun.load() == 4);  // the batch, two events alone, the other four together
  BOOST_TEST(scalar(*s.web.db, "SELECT COUNT(*) FROM sync_meetings") == 0);
}

BOOST_AUTO_TEST_SUITE_END()

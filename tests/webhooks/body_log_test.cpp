// The webhook body log: bodies round-trip byte for byte outside SQLite, segments rotate, two
// writers share a directory, the collector deletes what nothing needs and moves dead letters into
// their rows, a damaged segment dead-letters only the events it damaged, and full_sync works.
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <fstream>
#include <future>

#include <boost/test/unit_test.hpp>
#include <filesystem>
#include <map>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include "fixture.h"
#include "webhooks/worker.h"

using namespace fb;
using namespace fb::detail;
using namespace fb::test;

// fsync/fdatasync are interposed for this test binary (forwarded to libc) so that a test can see
// which files and directories were synced: the durability order cannot be observed otherwise
// without a power cut.
namespace {
std::mutex g_sync_mu;
std::vector<std::string>* g_synced = nullptr;  // guarded by g_sync_mu; set while a test records

void note_sync(int fd) {
  std::lock_guard lk(g_sync_mu);
  if (!g_synced) return;
  char link[64];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char path[PATH_MAX];
  ssize_t n = ::readlink(link, path, sizeof path);
  if (n > 0) g_synced->emplace_back(path, static_cast<size_t>(n));
}

// Records the paths synced while it lives.
struct SyncRecorder {
  SyncRecorder() {
    std::lock_guard lk(g_sync_mu);
    g_synced = &paths;
  }
  ~SyncRecorder() {
    std::lock_guard lk(g_sync_mu);
    g_synced = nullptr;
  }
  bool synced(const std::string& path) {
    std::string want = std::filesystem::canonical(path);
    std::lock_guard lk(g_sync_mu);
    return std::find(paths.begin(), paths.end(), want) != paths.end();
  }
  std::vector<std::string> paths;
};
}  // namespace

extern "C" int fsync(int fd) {
  static auto real = reinterpret_cast<int (*)(int)>(::dlsym(RTLD_NEXT, "fsync"));
  note_sync(fd);
  return real(fd);
}

extern "C" int fdatasync(int fd) {
  static auto real = reinterpret_cast<int (*)(int)>(::dlsym(RTLD_NEXT, "fdatasync"));
  note_sync(fd);
  return real(fd);
}

namespace {

// A database file and its body directory in a temp dir; inboxes over connections of their own.
struct LogStack {
  explicit LogStack(DbOptions dbo = {}) : db_options(dbo) {
    db = connect();
    BOOST_REQUIRE(migrate_webhooks(*db).ok());
  }
  std::unique_ptr<Db> connect() {
    auto opened = Db::open(db_path(), db_options);
    BOOST_REQUIRE(opened.ok());
    return std::move(*opened);
  }
  std::unique_ptr<Inbox> inbox(Db& on, InboxOptions o = {}) {
    o.body_dir = body_dir();
    return std::make_unique<Inbox>(on, clock, o);
  }
  std::string db_path() const { return dir.file("bridge.db"); }
  std::string body_dir() const { return default_body_dir(db_path()); }
  std::vector<std::string> segments() const {
    std::vector<std::string> out;
    if (!std::filesystem::exists(body_dir())) return out;
    for (const auto& f : std::filesystem::directory_iterator(body_dir())) out.push_back(f.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string segments_text() const {
    std::string all;
    for (const auto& s : segments()) all += read_file(body_dir() + "/" + s);
    return all;
  }
  std::string row_text(int64_t id, const std::string& column) {
    std::string v;
    BOOST_REQUIRE(db->with([&]() -> Status {
                      Stmt& q = db->prepare("SELECT " + column + " FROM webhook_inbox WHERE id=?");
                      q.bind(1, id);
                      FB_ASSIGN(bool row, q.step());
                      if (row) v = q.text(0);
                      q.reset();
                      return Status::Ok();
                    }).ok());
    return v;
  }

  TempDir dir;
  SystemClock clock;
  DbOptions db_options;
  std::unique_ptr<Db> db;
};

int64_t append(Inbox& inbox, const std::string& webhook_id, const std::string& body, int64_t integration = 1) {
  Delivery d;
  d.integration_id = integration;
  d.registration_id = 1;
  d.webhook_id = webhook_id;
  d.recording_id = 42;
  d.body = body;
  auto r = inbox.append(d);
  BOOST_REQUIRE_MESSAGE(r.ok(), r.status());
  BOOST_REQUIRE(!r->duplicate);
  return r->event_id;
}

std::string body_of(Inbox& inbox, int64_t id) {
  auto e = inbox.get(id, true);
  BOOST_REQUIRE_MESSAGE(e.ok(), e.status());
  return e->body;
}

// Every byte value, a NUL in the middle, and the id so that bodies differ.
std::string binary_body(int i, size_t size) {
  std::string b = "BIN-" + std::to_string(i) + '\0';
  while (b.size() < size) b.push_back(static_cast<char>((b.size() * 31 + static_cast<size_t>(i)) & 0xff));
  b.resize(size);
  return b;
}

// Remembers what each event looked like when handled.
class Recorder final : public InboxEventHandler {
 public:
  Status handle(const InboxEvent& e) override {
    std::lock_guard lk(mu);
    bodies[e.id] = e.body;
    return Status::Ok();
  }
  std::mutex mu;
  std::map<int64_t, std::string> bodies;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(body_log, *boost::unit_test::precondition(sqlite_only))

BOOST_AUTO_TEST_CASE(bodies_round_trip_byte_exactly_outside_sqlite) {
  LogStack s;
  // A row written before the body log existed keeps its body inline and stays readable.
  int64_t old_id = 0;
  {
    Inbox inline_inbox(*s.db, s.clock);
    old_id = append(inline_inbox, "msg_inline", "{\"inline\":\"INLINE-BODY-7f3a\"}");
  }
  BOOST_TEST(s.segments().empty());

  auto inbox = s.inbox(*s.db);
  const std::string marker = "BODY-MARKER-c0ffee-5eb1";
  std::string json = "{\"title\":\"" + marker + "\"}";
  std::string big(1 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i / 4096);
  big.replace(big.size() / 2, marker.size(), marker);
  std::vector<std::pair<int64_t, std::string>> sent = {
      {append(*inbox, "msg_json", json), json},
      {append(*inbox, "msg_bin", binary_body(1, 5000)), binary_body(1, 5000)},
      {append(*inbox, "msg_big", big), big},
      {append(*inbox, "msg_empty", ""), ""},
  };
  for (auto& [id, body] : sent) {
    BOOST_TEST(body_of(*inbox, id) == body, "event " << id);
    BOOST_TEST(s.row_text(id, "length(body)") == "0");
    BOOST_TEST(!s.row_text(id, "body_segment").empty());
  }
  BOOST_TEST(body_of(*inbox, old_id) == "{\"inline\":\"INLINE-BODY-7f3a\"}");
  auto claimed = inbox->claim(10);
  BOOST_REQUIRE(claimed.ok());
  BOOST_REQUIRE(claimed->size() == 5u);
  for (const InboxEvent& e : *claimed) {
    BOOST_TEST(e.body_status.ok());
    for (auto& [id, body] : sent) {
      if (id == e.id) BOOST_TEST(e.body == body, "claimed event " << id);
    }
  }
  // The bytes are in a segment, not in the database file nor its WAL.
  std::string sqlite_bytes = read_file(s.db_path()) + read_file(s.db_path() + "-wal");
  BOOST_TEST(sqlite_bytes.find("INLINE-BODY-7f3a") != std::string::npos);  // the grep itself works
  BOOST_TEST(sqlite_bytes.find(marker) == std::string::npos);
  BOOST_TEST(sqlite_bytes.find("BIN-1") == std::string::npos);
  std::string segs = s.segments_text();
  BOOST_TEST(segs.find(json) != std::string::npos);
  BOOST_TEST(segs.find(big) != std::string::npos);
}

BOOST_AUTO_TEST_CASE(segments_rotate_and_every_body_stays_readable) {
  LogStack s;
  InboxOptions o;
  o.segment_bytes = 4096;
  auto inbox = s.inbox(*s.db, o);
  std::vector<std::pair<int64_t, std::string>> sent;
  for (int i = 0; i < 120; ++i) {
    std::string body = binary_body(i, 700 + static_cast<size_t>(i) * 13);
    sent.emplace_back(append(*inbox, "msg_" + std::to_string(i), body), body);
  }
  BOOST_TEST(s.segments().size() >= 20u);
  for (auto& [id, body] : sent) BOOST_TEST(body_of(*inbox, id) == body, "event " << id);
  std::set<std::string> used;
  for (auto& [id, body] : sent) used.insert(s.row_text(id, "body_segment"));
  BOOST_TEST(used.size() == s.segments().size());
}

BOOST_AUTO_TEST_CASE(a_body_directory_removed_while_running_is_made_again) {
  LogStack s;
  InboxOptions o;
  o.segment_bytes = 1;  // every delivery opens a new segment
  auto inbox = s.inbox(*s.db, o);
  append(*inbox, "msg_before", "{\"n\":1}");
  std::filesystem::remove_all(s.body_dir());  // an operator "cleans up"
  std::string body = binary_body(9, 2000);
  int64_t id = append(*inbox, "msg_after", body);  // not a 5xx until a restart
  BOOST_TEST(body_of(*inbox, id) == body);
  BOOST_TEST(s.segments().size() == 1u);
}

BOOST_AUTO_TEST_CASE(two_inboxes_on_two_connections_append_concurrently) {
  LogStack s;
  auto db2 = s.connect();
  InboxOptions o;
  o.segment_bytes = 256 << 10;  // some rotations while both append
  auto a = s.inbox(*s.db, o);
  auto b = s.inbox(*db2, o);
  constexpr int kThreads = 4, kEach = 150;
  std::mutex mu;
  std::map<int64_t, std::string> sent;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads * 2; ++t) {
    threads.emplace_back([&, t] {
      Inbox& inbox = t % 2 ? *a : *b;
      for (int i = 0; i < kEach; ++i) {
        int n = t * kEach + i;
        std::string body = binary_body(n, 100 + static_cast<size_t>(n % 97) * 211);
        Delivery d;
        d.integration_id = 1 + t % 3;
        d.registration_id = 1;
        std::string wid = "msg_" + std::to_string(n);
        d.webhook_id = wid;
        d.body = body;
        auto r = inbox.append(d);
        std::lock_guard lk(mu);
        if (r.ok()) sent[r->event_id] = body;  // asserted on the main thread: Boost.Test is not thread-safe
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_REQUIRE(sent.size() == static_cast<size_t>(kThreads * 2 * kEach));
  for (auto& [id, body] : sent) BOOST_TEST(body_of(*a, id) == body, "event " << id);
  auto claimed = b->claim(kThreads * 2 * kEach);
  BOOST_REQUIRE(claimed.ok());
  BOOST_TEST(claimed->size() == sent.size());
  for (const InboxEvent& e : *claimed) {
    BOOST_TEST(e.body_status.ok());
    BOOST_TEST(e.body == sent[e.id], "claimed event " << e.id);
  }
  BOOST_TEST(s.segments().size() >= 2u);  // each writer has its own
}

BOOST_AUTO_TEST_CASE(collector_deletes_unreferenced_segments_but_never_an_active_one) {
  LogStack s;
  InboxOptions o;
  o.segment_bytes = 1;  // every group commit starts a new segment
  auto inbox = s.inbox(*s.db, o);
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(append(*inbox, "msg_" + std::to_string(i), binary_body(i, 3000)));
  BOOST_TEST(s.segments().size() == 5u);
  // Nothing to do while the rows need them.
  auto c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->deleted == 0);
  BOOST_TEST(s.segments().size() == 5u);

  std::string active = s.row_text(ids.back(), "body_segment");  // the writer's active segment
  BOOST_REQUIRE(inbox->claim(10).ok());
  for (int64_t id : ids) BOOST_REQUIRE(inbox->mark_done(id).ok());
  BOOST_REQUIRE(*inbox->purge_done(s.clock.now_ms() + 1) == 5);
  c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->deleted == 4);
  BOOST_TEST(c->kept == 1);
  BOOST_REQUIRE(s.segments().size() == 1u);
  BOOST_TEST(s.segments().front() == active);  // unreferenced, but its writer still owns it

  // The next commit moves to a new segment: the old active one can go, the new one cannot.
  int64_t next = append(*inbox, "msg_next", "{\"next\":1}");
  c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->deleted == 1);
  BOOST_REQUIRE(s.segments().size() == 1u);
  BOOST_TEST(s.segments().front() != active);
  BOOST_TEST(body_of(*inbox, next) == "{\"next\":1}");

  // Once its writer is gone, an unreferenced segment goes too.
  BOOST_REQUIRE(inbox->claim(10).ok());
  BOOST_REQUIRE(inbox->mark_done(next).ok());
  BOOST_REQUIRE(*inbox->purge_done(s.clock.now_ms() + 1) == 1);
  inbox.reset();
  auto other = s.inbox(*s.db, o);
  c = other->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->deleted == 1);
  BOOST_TEST(s.segments().empty());
}

BOOST_AUTO_TEST_CASE(collector_moves_dead_letters_of_old_segments_into_their_rows) {
  LogStack s;
  InboxOptions o;
  o.segment_bytes = 1;
  o.inline_after_ms = 0;  // every closed segment counts as old
  auto inbox = s.inbox(*s.db, o);
  std::string dead_body = binary_body(7, 9000);
  int64_t dead = append(*inbox, "msg_dead", dead_body);
  int64_t done = append(*inbox, "msg_done", "{\"done\":true}");
  int64_t pending = append(*inbox, "msg_pending", "{\"pending\":true}");  // in the active segment
  BOOST_REQUIRE(s.segments().size() == 3u);
  auto claimed = inbox->claim(2);
  BOOST_REQUIRE(claimed.ok() && claimed->size() == 2u);
  BOOST_REQUIRE(inbox->mark_dead(dead, "CRM rejected it").ok());
  BOOST_REQUIRE(inbox->mark_done(done).ok());

  // A collector with the default bound (an hour) leaves young segments alone.
  {
    auto db2 = s.connect();
    auto young = s.inbox(*db2);
    auto c = young->collect_body_segments();
    BOOST_REQUIRE(c.ok());
    BOOST_TEST(c->inlined == 0);
    BOOST_TEST(c->deleted == 0);
  }
  auto c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->inlined == 1);  // the dead letter; the done event keeps its segment until purged
  BOOST_TEST(c->deleted == 1);
  BOOST_TEST(c->kept == 2);
  BOOST_TEST(s.segments().size() == 2u);
  BOOST_TEST(s.row_text(dead, "body_segment").empty());
  BOOST_TEST(s.row_text(dead, "length(body)") == std::to_string(dead_body.size()));
  BOOST_TEST(!s.row_text(pending, "body_segment").empty());

  // The dead letter replays with its body.
  BOOST_REQUIRE(inbox->replay(dead).ok());
  claimed = inbox->claim(10);
  BOOST_REQUIRE(claimed.ok());
  bool seen = false;
  for (const InboxEvent& e : *claimed) {
    if (e.id != dead) continue;
    seen = true;
    BOOST_TEST(e.body_status.ok());
    BOOST_TEST(e.body == dead_body);
  }
  BOOST_TEST(seen);

  // Purging the done event frees its segment.
  BOOST_REQUIRE(inbox->purge_done(s.clock.now_ms() + 1).ok());
  c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_TEST(c->deleted == 1);
  BOOST_TEST(s.segments().size() == 1u);  // the active one, with the pending event's body
  BOOST_TEST(body_of(*inbox, pending) == "{\"pending\":true}");
}

BOOST_AUTO_TEST_CASE(damaged_segment_dead_letters_only_the_damaged_events) {
  LogStack s;
  auto inbox = s.inbox(*s.db);
  const std::string secret_marker = "PAYLOAD-SECRET-9d2e";
  std::vector<int64_t> ids;
  std::vector<std::string> bodies;
  for (int i = 0; i < 5; ++i) {
    bodies.push_back("{\"n\":" + std::to_string(i) + ",\"x\":\"" + secret_marker + std::string(2000, 'a') + "\"}");
    ids.push_back(append(*inbox, "msg_" + std::to_string(i), bodies.back()));
  }
  BOOST_REQUIRE(s.segments().size() == 1u);
  std::string seg_name = s.segments().front();
  std::string seg = s.body_dir() + "/" + seg_name;
  // Event 1: its header overwritten. Event 4 (the last record): cut short.
  int fd = ::open(seg.c_str(), O_WRONLY);
  BOOST_REQUIRE(fd >= 0);
  int64_t off1 = std::stoll(s.row_text(ids[1], "body_offset"));
  BOOST_REQUIRE(::pwrite(fd, "garbage!", 8, off1) == 8);
  int64_t off4 = std::stoll(s.row_text(ids[4], "body_offset"));
  BOOST_REQUIRE(::ftruncate(fd, off4 + 100) == 0);
  ::close(fd);

  auto e1 = inbox->get(ids[1], true);
  BOOST_TEST(e1.status().is(Code::kIo));
  BOOST_TEST(inbox->get(ids[1]).ok());  // without its body the event is fine

  Recorder handler;
  EventBus bus;
  std::vector<Event> dead_events;
  bus.subscribe([&](const Event& e) {
    if (e.type == "webhook_dead_lettered") dead_events.push_back(e);
  });
  WorkerOptions wo;
  wo.workers = 0;
  auto pool = std::make_unique<WorkerPool>(*inbox, handler, s.clock, system_random(), wo, &bus);
  auto n = pool->run_once(10);
  BOOST_REQUIRE(n.ok());
  BOOST_TEST(*n == 5);
  for (int i : {0, 2, 3}) {
    auto e = inbox->get(ids[i]);
    BOOST_TEST(e->status == "done");
    BOOST_TEST(handler.bodies[ids[i]] == bodies[i]);
  }
  for (int i : {1, 4}) {
    auto e = inbox->get(ids[i]);
    BOOST_TEST(e->status == "dead", "event " << ids[i]);
    BOOST_TEST(e->attempts == 1);  // at once, not after max_attempts
    BOOST_TEST(handler.bodies.count(ids[i]) == 0u);  // the handler never saw a wrong body
    BOOST_TEST(e->last_error.find("webhook event " + std::to_string(ids[i])) != std::string::npos, e->last_error);
    BOOST_TEST(e->last_error.find(seg_name) != std::string::npos, e->last_error);
    BOOST_TEST(e->last_error.find(secret_marker) == std::string::npos);
  }
  BOOST_TEST(inbox->get(ids[1])->last_error.find("damaged") != std::string::npos);
  BOOST_TEST(inbox->get(ids[4])->last_error.find("cut short") != std::string::npos);
  BOOST_TEST(dead_events.size() == 2u);
  BOOST_TEST(pool->stats().processed == 3);

  // A segment deleted behind the inbox's back: the body is lost, said so, dead-lettered.
  BOOST_REQUIRE(inbox->replay(ids[0]).ok());
  BOOST_REQUIRE(std::filesystem::remove(seg));
  pool.reset();
  inbox = s.inbox(*s.db);  // no cached descriptor of the deleted file
  pool = std::make_unique<WorkerPool>(*inbox, handler, s.clock, system_random(), wo);
  BOOST_REQUIRE(pool->run_once(10).ok());
  auto e0 = inbox->get(ids[0]);
  BOOST_TEST(e0->status == "dead");
  BOOST_TEST(e0->last_error.find("lost") != std::string::npos, e0->last_error);
}

BOOST_AUTO_TEST_CASE(full_sync_batches_work) {
  // What this cannot show: that the segment is fdatasync'ed before the rows commit. That order is
  // in Inbox::write_batch / BodyLog::append; only a power cut would tell.
  LogStack s(DbOptions{.full_sync = true});
  BOOST_REQUIRE(s.db->full_sync());
  auto inbox = s.inbox(*s.db);
  std::mutex mu;
  std::map<int64_t, std::string> sent;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        int n = t * 100 + i;
        std::string body = binary_body(n, 20000);
        std::string wid = "msg_" + std::to_string(n);
        Delivery d;
        d.integration_id = 1;
        d.webhook_id = wid;
        d.body = body;
        auto r = inbox->append(d);
        std::lock_guard lk(mu);
        if (r.ok()) sent[r->event_id] = body;  // asserted on the main thread: Boost.Test is not thread-safe
      }
    });
  }
  for (auto& t : threads) t.join();
  BOOST_TEST(sent.size() == 100u);
  for (auto& [id, body] : sent) BOOST_TEST(body_of(*inbox, id) == body, "event " << id);
}

BOOST_AUTO_TEST_CASE(full_sync_syncs_the_parent_of_a_body_directory_it_did_not_create) {
  // A previous run created the directory and died before it synced its parent (or that sync
  // failed, or it ran without full_sync): the directory entry may still be only in memory, and a
  // power cut would take every segment with it although their rows are committed.
  LogStack s(DbOptions{.full_sync = true});
  BOOST_REQUIRE(std::filesystem::create_directory(s.body_dir()));
  auto inbox = s.inbox(*s.db);
  SyncRecorder rec;
  int64_t id = append(*inbox, "msg_1", "{\"n\":1}");
  BOOST_TEST(rec.synced(s.dir.file("")), "the database directory (the body directory's parent) was not synced");
  BOOST_TEST(rec.synced(s.body_dir()));
  BOOST_TEST(body_of(*inbox, id) == "{\"n\":1}");
}

BOOST_AUTO_TEST_CASE(inlined_bodies_are_durable_before_their_segment_is_deleted) {
  // synchronous=NORMAL: a power cut may lose the latest commits, never older ones. The collector
  // must not make it lose an old dead letter's body: its inlining commit is synced before the
  // segment is unlinked, else the row could come back pointing at a deleted segment.
  LogStack s;
  BOOST_REQUIRE(!s.db->full_sync());
  InboxOptions o;
  o.segment_bytes = 1;
  o.inline_after_ms = 0;
  o.background_checkpoint = false;  // no checkpointer syncing the WAL behind the test's back
  auto inbox = s.inbox(*s.db, o);
  std::string body = binary_body(3, 5000);
  int64_t dead = append(*inbox, "msg_dead", body);
  append(*inbox, "msg_next", "{}");  // moves the writer to a new segment
  BOOST_REQUIRE(inbox->claim(1).ok());
  BOOST_REQUIRE(inbox->mark_dead(dead, "rejected").ok());
  SyncRecorder rec;
  auto c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_REQUIRE(c->inlined == 1);
  BOOST_REQUIRE(c->deleted == 1);
  BOOST_TEST(rec.synced(s.db_path() + "-wal"), "the inlining commit was not synced before the segment was deleted");
  BOOST_TEST(body_of(*inbox, dead) == body);
}

BOOST_AUTO_TEST_CASE(a_purge_is_durable_before_the_segments_it_freed_are_deleted) {
  // synchronous=NORMAL: the purge of processed events may be the latest commit, which a power cut
  // may undo. If their segment were deleted meanwhile, the rows would come back pointing at it.
  LogStack s;
  BOOST_REQUIRE(!s.db->full_sync());
  InboxOptions o;
  o.segment_bytes = 1;
  o.background_checkpoint = false;
  auto inbox = s.inbox(*s.db, o);
  int64_t done = append(*inbox, "msg_done", binary_body(4, 3000));
  append(*inbox, "msg_next", "{}");  // moves the writer to a new segment
  BOOST_REQUIRE(inbox->claim(1).ok());
  BOOST_REQUIRE(inbox->mark_done(done).ok());
  auto purged = inbox->purge_done(std::numeric_limits<int64_t>::max());
  BOOST_REQUIRE(purged.ok());
  BOOST_REQUIRE(*purged == 1);
  SyncRecorder rec;
  auto c = inbox->collect_body_segments();
  BOOST_REQUIRE(c.ok());
  BOOST_REQUIRE(c->deleted == 1);
  BOOST_TEST(rec.synced(s.db_path() + "-wal"), "the purge was not made durable before its segment was deleted");
}

BOOST_AUTO_TEST_CASE(a_row_with_an_impossible_length_fails_to_read_instead_of_throwing) {
  LogStack s;
  auto inbox = s.inbox(*s.db);
  int64_t id = append(*inbox, "msg_1", "{\"n\":1}");
  for (const char* length : {"4611686018427387904", "9223372036854775000"}) {
    BOOST_REQUIRE(s.db->with([&] {
                      return s.db->exec(std::string("UPDATE webhook_inbox SET body_length=") + length +
                                        " WHERE id=" + std::to_string(id));
                    }).ok());
    Result<InboxEvent> e = Status::Internal("not read");
    BOOST_CHECK_NO_THROW(e = inbox->get(id, true));
    BOOST_TEST(e.status().is(Code::kIo), e.status());
  }
}

// Issue 10, point 15: the database, its -wal and -shm, the body directory and its segments were
// created world-readable (0644 under the usual umask 022), meeting content in clear.
BOOST_AUTO_TEST_CASE(files_holding_meeting_content_are_private) {
  const mode_t old_umask = ::umask(022);
  auto mode = [](const std::string& path) {
    struct stat st {};
    BOOST_REQUIRE_MESSAGE(::stat(path.c_str(), &st) == 0, path);
    return static_cast<unsigned>(st.st_mode & 0777);
  };
  {
    LogStack s;
    auto inbox = s.inbox(*s.db);
    append(*inbox, "msg_private", "{\"recording_id\":1}");
    BOOST_TEST(mode(s.db_path()) == 0600u);
    BOOST_TEST(mode(s.db_path() + "-wal") == 0600u);
    BOOST_TEST(mode(s.db_path() + "-shm") == 0600u);
    BOOST_TEST(mode(s.body_dir()) == 0700u);
    BOOST_REQUIRE(!s.segments().empty());
    for (const auto& seg : s.segments()) BOOST_TEST(mode(s.body_dir() + "/" + seg) == 0600u, seg);
  }
  // A file its owner made (and gave a mode) keeps that mode, and so do its -wal and -shm.
  TempDir dir;
  const std::string path = dir.file("shared.db");
  BOOST_REQUIRE(std::ofstream(path).good());
  BOOST_REQUIRE(::chmod(path.c_str(), 0640) == 0);
  {
    auto db = Db::open(path);
    BOOST_REQUIRE(db.ok());
    BOOST_REQUIRE(migrate_webhooks(**db).ok());
    BOOST_TEST(mode(path) == 0640u);
    BOOST_TEST(mode(path + "-wal") == 0640u);
  }
  ::umask(old_umask);
}

// Issue 10, point 18: a repeat's body was appended to the log although no row refers to it.
BOOST_AUTO_TEST_CASE(a_repeated_delivery_writes_no_body) {
  LogStack s;
  auto inbox = s.inbox(*s.db);
  const std::string body = binary_body(1, 5000);
  int64_t id = append(*inbox, "msg_once", body);
  const size_t written = s.segments_text().size();
  BOOST_TEST(written == BodyLog::kHeaderBytes + body.size());
  Delivery d;
  d.integration_id = 1;
  d.registration_id = 1;
  d.webhook_id = "msg_once";
  d.recording_id = 42;
  d.body = body;
  auto again = inbox->append(d);
  BOOST_REQUIRE_MESSAGE(again.ok(), again.status());
  BOOST_TEST(again->duplicate);
  BOOST_TEST(again->event_id == id);
  BOOST_TEST(s.segments_text().size() == written);

  // Two deliveries of one id in the same group commit: one body. The commit listener holds the
  // writer after a first batch while both are queued, so they share the next one.
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> held{false};
  inbox->set_commit_listener([&] {
    if (!held.exchange(true)) released.wait();
  });
  std::string hold_id = "msg_hold", twin_id = "msg_twin";
  Delivery hold = d, twin = d;
  hold.webhook_id = hold_id;
  twin.webhook_id = twin_id;
  Answers<Result<Appended>> answers(2);
  inbox->append_async(hold, [](Result<Appended>) {});
  BOOST_REQUIRE(wait_until([&] { return held.load(); }));
  for (size_t i = 0; i < 2; ++i) {
    inbox->append_async(twin, [&answers, i](Result<Appended> r) { answers.put(i, std::move(r)); });
  }
  release.set_value();
  auto twins = answers.wait();
  inbox->set_commit_listener(nullptr);
  BOOST_REQUIRE(twins[0].ok());
  BOOST_REQUIRE(twins[1].ok());
  BOOST_TEST(twins[0]->duplicate != twins[1]->duplicate);
  BOOST_TEST(twins[0]->event_id == twins[1]->event_id);
  BOOST_TEST(s.segments_text().size() == written + 2 * (BodyLog::kHeaderBytes + body.size()));  // hold + one twin
  BOOST_TEST(body_of(*inbox, twins[0]->event_id) == body);
}

// Issue 10, point 18: on a full disk every failed write left an empty segment file behind. The
// full disk is RLIMIT_FSIZE here (writes past the limit fail with EFBIG, SIGXFSZ ignored).
BOOST_AUTO_TEST_CASE(a_failed_write_on_a_full_disk_leaves_no_empty_segment) {
  TempDir dir;
  BodyLogOptions o;
  o.dir = dir.file("bodies");
  BodyLog log(o);
  const std::string body = binary_body(3, 1000);
  std::vector<BodyRecord> records = {{{1, "msg_full"}, body}};
  std::string segment;
  std::vector<int64_t> offsets;
  rlimit normal{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &normal) == 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  auto append_with_limit = [&](rlim_t limit) {
    rlimit full = normal;
    full.rlim_cur = limit;
    ::setrlimit(RLIMIT_FSIZE, &full);
    Status st = log.append(records, &segment, &offsets);
    ::setrlimit(RLIMIT_FSIZE, &normal);
    return st;
  };
  std::vector<Status> failed;
  for (int i = 0; i < 3; ++i) failed.push_back(append_with_limit(0));
  for (const Status& st : failed) BOOST_TEST((st.code() == Code::kIo), st);
  auto names = log.segments();
  BOOST_REQUIRE(names.ok());
  BOOST_TEST(names->empty(), names->size() << " segment(s) left behind");

  // Room again: a segment with a record in it survives a later failure, its record readable.
  BOOST_REQUIRE(log.append(records, &segment, &offsets).ok());
  const std::string first = segment;
  const int64_t first_offset = offsets[0];
  Status later = append_with_limit(static_cast<rlim_t>(BodyLog::kHeaderBytes + body.size()));
  std::signal(SIGXFSZ, old_handler);
  BOOST_TEST((later.code() == Code::kIo), later);
  names = log.segments();
  BOOST_REQUIRE(names.ok());
  BOOST_TEST((*names == std::vector<std::string>{first}));
  std::string back;
  BOOST_TEST(log.read({first, first_offset, static_cast<int64_t>(body.size())}, {1, "msg_full"}, 1, &back).ok());
  BOOST_TEST(back == body);
}

BOOST_AUTO_TEST_SUITE_END()

#include "webhooks/inbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <iterator>
#include <random>
#include <map>
#include <set>
#include <tuple>

#include "core/log.h"
#include "core/thread_name.h"
#include "store/pg_dialect.h"

namespace fb::detail {

namespace {

constexpr const char* kInsert =
    "INSERT INTO webhook_inbox(integration_id, webhook_id, registration_id, recording_id, received_at, body,"
    " next_attempt_at, body_segment, body_offset, body_length, status, last_error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(integration_id, webhook_id) DO NOTHING";  // no RETURNING: SQLite buffers it in a temporary b-tree
constexpr const char* kFindExisting = "SELECT id FROM webhook_inbox WHERE integration_id=? AND webhook_id=?";
constexpr const char* kColumns =
    "id, integration_id, registration_id, webhook_id, recording_id, received_at, status, attempts,"
    " next_attempt_at, last_error, processed_at";

// What a committed row adds to the WAL, roughly: the row and its index entries, plus the pages a
// commit rewrites whatever its size (table, unique index, due index, body index). Inline bodies
// come on top. Only the checkpoint trigger uses this.
constexpr size_t kRowWalBytes = 256;
constexpr size_t kCommitWalBytes = 4 * 4096;

bool on_disk(const std::string& path) {
  return !path.empty() && path != ":memory:" && path.rfind("file:", 0) != 0;
}

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Rows whose body the collector may copy into the row: pending and dead events, and done events
// whose body is a stored meeting's content (those are never purged).
constexpr const char* kMovable = "(status IN ('pending','dead'))";
constexpr const char* kMovableWithMeetings =
    "(status IN ('pending','dead') OR (status='done' AND EXISTS"
    " (SELECT 1 FROM sync_meetings WHERE content_event_id=webhook_inbox.id)))";

// The PostgreSQL channel of inbox wake-ups; the payload is the sending inbox's id.
constexpr const char* kChannel = "fb_webhook_inbox";

// A list bound as one JSON array, as rows of `value`: each engine unpacks it with its own function.
std::string json_values(const Db& db, bool integers) {
  if (db.engine() == Engine::kPostgres) {
    return integers ? "(SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(? AS JSON)))"
                    : "(SELECT value FROM json_array_elements_text(CAST(? AS JSON)))";
  }
  return "(SELECT value FROM json_each(?))";
}

// This inbox's id in claim tokens and notifications: random, so a restarted host is a new owner.
std::string new_owner_id() {
  std::random_device rd;
  char buf[24];
  std::snprintf(buf, sizeof buf, "%08x%08x", rd(), rd());
  return buf;
}

// The claim columns back to "no claim".
constexpr const char* kNoClaim = "claimed_at=NULL, claim_token=NULL, lease_until=NULL";

InboxEvent read_event(const Stmt& q) {
  InboxEvent e;
  e.id = q.int64(0);
  e.integration_id = q.int64(1);
  e.registration_id = q.int64(2);
  e.webhook_id = q.text(3);
  e.recording_id = q.int64(4);
  e.received_at_ms = q.int64(5);
  e.status = q.text(6);
  e.attempts = static_cast<int>(q.int64(7));
  e.next_attempt_at_ms = q.int64(8);
  e.last_error = q.text(9);
  e.processed_at_ms = q.opt_int64(10).value_or(0);
  return e;
}

}  // namespace

std::string default_body_dir(const std::string& db_path) {
  return on_disk(db_path) ? db_path + "-webhook-bodies" : std::string();
}

// One caller waiting for its delivery to be committed. A mutex and condition variable rather than
// std::binary_semaphore: libstdc++'s semaphore spins with sched_yield before it sleeps, which
// costs more CPU than the wait itself with dozens of waiting request threads.
// An asynchronous caller's Pending is owned by the queue instead: finish() calls back and deletes it.
struct Inbox::Pending {
  const Delivery* delivery = nullptr;
  Delivery copy;  // asynchronous callers: the delivery itself (its views stay the caller's)
  int64_t now_ms = 0;
  std::chrono::steady_clock::time_point deadline;  // answer (503) by then if the commit cannot start
  Appended result;
  Status status;
  AppendCallback callback;  // set: asynchronous
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu

  void finish() {
    if (callback) {
      AppendCallback cb = std::move(callback);
      Result<Appended> r = status.ok() ? Result<Appended>(result) : Result<Appended>(status);
      delete this;
      cb(std::move(r));
      return;
    }
    // Notified under the lock: the waiter cannot return (and destroy this) before we unlock.
    std::lock_guard lk(mu);
    done = true;
    cv.notify_one();
  }
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done; });
  }
};

Inbox::Inbox(Db& db, Clock& clock, InboxOptions options)
    : db_(db), clock_(clock), options_(options), owner_(new_owner_id()) {
  if (options_.max_batch == 0) options_.max_batch = 1;
  options_.claim_lease_ms = std::max<int64_t>(1, options_.claim_lease_ms);
  if (!options_.body_dir.empty()) {
    log_ = std::make_unique<BodyLog>(
        BodyLogOptions{.dir = options_.body_dir, .segment_bytes = options_.segment_bytes, .sync = db_.full_sync()});
  }
  // WAL checkpoints are SQLite's; a PostgreSQL server checkpoints by itself.
  if (options_.background_checkpoint && db_.engine() == Engine::kSqlite && on_disk(db_.path())) {
    auto ckpt = Db::open(db_.path());
    Status off = db_.with([&] { return db_.exec("PRAGMA wal_autocheckpoint=0"); });
    if (ckpt.ok() && off.ok()) {
      checkpoint_db_ = std::move(*ckpt);
      checkpointer_ = std::thread([this] {
        name_this_thread("fb-checkpoint");
        checkpoint_loop();
      });
    } else {
      (void)db_.with([&] { return db_.exec("PRAGMA wal_autocheckpoint=1000"); });
      FB_LOG(kWarn, "webhooks") << "no background WAL checkpoints (commits will checkpoint inline): "
                                << (ckpt.ok() ? off.message() : ckpt.status().message());
    }
  }
  writer_ = std::thread([this] {
    name_this_thread("fb-inbox");
    writer_loop();
  });
  // Other hosts' new events wake this host's workers through LISTEN/NOTIFY, not through polling:
  // with a fleet of hosts each polling often, the idle ones would load the shared server with
  // empty claims; a notification costs one message per commit that added events. The workers
  // keep their slow poll (WorkerOptions::poll_interval_ms) for retries coming due and for
  // notifications missed while this connection was down.
  notifications_ = db_.listen(kChannel);
  if (notifications_) {
    listener_thread_ = std::thread([this] {
      name_this_thread("fb-inbox-listen");
      listen_loop();
    });
  }
}

void Inbox::listen_loop() {
  while (!listen_stop_.load()) {
    bool others = false;
    for (const std::string& from : notifications_->wait(std::chrono::milliseconds(5000))) others |= from != owner_;
    if (!others) continue;  // our own commits woke our workers already
    std::lock_guard lk(listener_mu_);
    if (listener_) listener_();
  }
}

Status Inbox::notify_others() {
  if (db_.engine() != Engine::kPostgres) return Status::Ok();
  return db_.with([&] {
    Stmt& q = db_.prepare("SELECT pg_notify(?, ?)");
    return q.bind(1, kChannel).bind(2, owner_).run();
  });
}

Inbox::~Inbox() {
  if (listener_thread_.joinable()) {
    listen_stop_ = true;
    notifications_->interrupt();
    listener_thread_.join();
  }
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lk(ckpt_mu_);
    ckpt_stop_ = true;
  }
  ckpt_cv_.notify_all();
  if (checkpointer_.joinable()) {
    checkpointer_.join();
    // Leave the shared connection as we found it.
    (void)db_.with([&] { return db_.exec("PRAGMA wal_autocheckpoint=1000"); });
  }
}

void Inbox::checkpoint_loop() {
  std::unique_lock lk(ckpt_mu_);
  for (;;) {
    ckpt_cv_.wait_for(lk, std::chrono::milliseconds(options_.checkpoint_interval_ms),
                      [&] { return ckpt_stop_ || ckpt_bytes_ >= options_.checkpoint_bytes; });
    bool stopping = ckpt_stop_;
    ckpt_bytes_ = 0;
    lk.unlock();
    // PASSIVE never blocks the writer; it copies what no reader still needs, and the WAL restarts
    // from its beginning once a checkpoint has caught up.
    Status s = checkpoint_db_->with([&] { return checkpoint_db_->exec("PRAGMA wal_checkpoint(PASSIVE)"); });
    if (!s.ok() && !s.is(Code::kConflict)) FB_LOG(kWarn, "webhooks") << "WAL checkpoint failed: " << s.message();
    lk.lock();
    if (stopping) return;
  }
}

std::chrono::steady_clock::time_point Inbox::commit_deadline() const {
  return std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.commit_timeout_ms);
}

void Inbox::set_commit_listener(std::function<void()> listener) {
  std::lock_guard lk(listener_mu_);  // waits for a call in progress: then the old one is never called again
  listener_ = std::move(listener);
}

Result<Appended> Inbox::append(const Delivery& delivery) {
  Pending p;
  p.delivery = &delivery;
  p.now_ms = clock_.now_ms();
  p.deadline = commit_deadline();
  {
    std::lock_guard lk(mu_);
    if (stop_) return Status::Unavailable("webhook inbox is shutting down");
    queue_.push_back(&p);
  }
  cv_.notify_one();
  p.wait();
  if (!p.status.ok()) return p.status;
  return p.result;
}

void Inbox::append_async(const Delivery& delivery, AppendCallback done) {
  auto* p = new Pending;
  p->copy = delivery;
  p->delivery = &p->copy;
  p->now_ms = clock_.now_ms();
  p->deadline = commit_deadline();
  p->callback = std::move(done);
  {
    std::unique_lock lk(mu_);
    if (stop_) {
      lk.unlock();
      p->status = Status::Unavailable("webhook inbox is shutting down");
      p->finish();
      return;
    }
    queue_.push_back(p);
  }
  cv_.notify_one();
}

void Inbox::writer_loop() {
  std::vector<Pending*> batch;
  batch.reserve(options_.max_batch);
  for (;;) {
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      size_t n = std::min(queue_.size(), options_.max_batch);
      batch.assign(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    bool added = false;
    size_t bytes = 0;
    write_batch(batch);
    for (Pending* p : batch) {
      if (p->status.ok() && !p->result.duplicate) {
        added = true;
        bytes += kRowWalBytes + p->delivery->webhook_id.size() + (log_ ? 0 : p->delivery->body.size());
      }
    }
    if (added) bytes += kCommitWalBytes;
    // After finish() a Pending lives on a caller's stack that may already be gone.
    for (Pending* p : batch) p->finish();
    batch.clear();
    if (added) {
      std::lock_guard lk(listener_mu_);
      if (listener_) listener_();
    }
    if (bytes && checkpointer_.joinable()) {
      std::lock_guard lk(ckpt_mu_);
      ckpt_bytes_ += bytes;
      if (ckpt_bytes_ >= options_.checkpoint_bytes) ckpt_cv_.notify_one();
    }
  }
}

void Inbox::write_batch(std::vector<Pending*>& batch) {
  // A caller that waited out its commit timeout behind a batch stuck on a locked database gets its
  // 503 now; the others bound how long this batch may wait for the write lock.
  const auto now = std::chrono::steady_clock::now();
  auto deadline = std::chrono::steady_clock::time_point::max();
  for (Pending* p : batch) {
    if (p->deadline <= now) {
      p->status = Status::Unavailable("webhook inbox: the database stayed locked past the commit timeout");
    } else {
      deadline = std::min(deadline, p->deadline);
    }
  }
  if (deadline == std::chrono::steady_clock::time_point::max()) return;
  // On PostgreSQL without the fleet's write lock: hosts insert side by side, and the unique
  // (integration_id, webhook_id) with ON CONFLICT DO NOTHING settles a webhook-id delivered to two
  // hosts at once (the second waits for the first's commit and finds its row). Rows are inserted
  // in key order, so two hosts' batches never wait for each other in a cycle.
  const bool fleet = db_.engine() == Engine::kPostgres;
  Status s = fleet && !log_ ? db_.transaction_until(deadline, [&] { return insert_rows_postgres(batch); }, false)
                            : db_.transaction_until(deadline, [&]() -> Status {
    // Repeats are answered from the row already there before any body is written: a repeat's body
    // would be an orphan in the body log. We hold the write lock, so nothing can insert between.
    // (Without a body log the insert itself finds them.)
    // kRepeat: known already (or timed out); kTwin: an earlier delivery of this batch has its id.
    constexpr int kRepeat = -1, kTwin = -2;
    slots_.assign(batch.size(), kRepeat);
    records_.clear();
    std::set<std::pair<int64_t, std::string_view>> fresh;
    Stmt& find = db_.prepare(kFindExisting);
    auto find_existing = [&](Pending* p) -> Result<bool> {
      find.bind(1, p->delivery->integration_id).bind(2, p->delivery->webhook_id);
      auto found = find.step();
      if (found.ok() && *found) p->result = {find.int64(0), true};
      find.reset();
      return found;
    };
    for (size_t i = 0; i < batch.size(); ++i) {
      Pending* p = batch[i];
      if (!p->status.ok()) continue;
      if (log_) {
        FB_ASSIGN(bool known, find_existing(p));
        if (known) continue;
      }
      const Delivery& d = *p->delivery;
      if (!fresh.emplace(d.integration_id, d.webhook_id).second) {
        slots_[i] = kTwin;
        continue;
      }
      slots_[i] = static_cast<int>(records_.size());
      records_.push_back({{d.integration_id, d.webhook_id}, d.body});
    }
    // The bodies before the rows, so that a committed row never references bytes that are not
    // written (and synced, under full_sync).
    if (log_ && !records_.empty()) FB_TRY(log_->append(records_, &segment_, &offsets_));
    Stmt& ins = db_.prepare(kInsert);
    std::vector<size_t> order;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (slots_[i] >= 0) order.push_back(i);
    }
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      const Delivery &x = *batch[a]->delivery, &y = *batch[b]->delivery;
      return std::tie(x.integration_id, x.webhook_id) < std::tie(y.integration_id, y.webhook_id);
    });
    bool inserted = false;
    for (size_t i : order) {
      Pending* p = batch[i];
      const int slot = slots_[i];
      const Delivery& d = *p->delivery;
      ins.bind(1, d.integration_id).bind(2, d.webhook_id).bind(3, d.registration_id).bind(4, d.recording_id);
      ins.bind(5, p->now_ms).bind(7, p->now_ms);
      if (d.unprocessable.empty()) {
        ins.bind(11, "pending").bind(12, nullptr);
      } else {
        ins.bind(11, "dead").bind(12, d.unprocessable);
      }
      if (log_) {
        ins.bind_blob(6, std::string_view("", 0)).bind(8, segment_).bind(9, offsets_[static_cast<size_t>(slot)]);
        ins.bind(10, static_cast<int64_t>(d.body.size()));
      } else {
        ins.bind_blob(6, d.body).bind(8, nullptr).bind(9, nullptr).bind(10, nullptr);
      }
      FB_TRY(ins.run());
      if (db_.changes() == 1) {
        p->result = {db_.last_insert_rowid(), false};
        inserted = true;
      } else {
        FB_TRY(find_existing(p).status());
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (slots_[i] == kTwin) FB_TRY(find_existing(batch[i]).status());  // inserted above, by its twin
    }
    return inserted ? notify_others() : Status::Ok();
  }, /*immediate=*/!fleet);
  if (s.ok()) {
    if (int64_t failed = commit_failures_.end_run()) {
      FB_LOG(kInfo, "webhooks") << "webhook inbox commits work again after " << failed << " failed commits";
    }
  } else {
    // Every batch fails the same way while the store is down: the first failure, then a line a minute
    // (and at once when the reason changes: a locked table, then a read-only database).
    if (int64_t more = 0; commit_failures_.admit(clock_.mono_ms(), &more, s.message())) {
      FB_LOG(kError, "webhooks") << "inbox commit of " << batch.size() << " deliveries failed: " << s.message()
                                 << LogThrottle::left_out_note(more);
    }
    Status failed(s.is(Code::kUnavailable) ? Code::kUnavailable : Code::kIo,
                  "webhook inbox commit failed: " + s.message());
    for (Pending* p : batch) {
      if (p->status.ok()) p->status = failed;
    }
  }
}

namespace {

// The most rows insert_rows_postgres() puts in one statement (7 parameters each).
constexpr size_t kMaxRowsPerInsert = 512;

// PostgreSQL: an INSERT of up to `rows` deliveries (rows a power of two: a connection prepares at
// most ten of these); parameters 7k+1..7k+7 are row k's integration_id, webhook_id,
// registration_id, recording_id, received_at (also its first due time), body, and why it is
// unprocessable (NULL: pending, else a dead letter with that reason); a row with a NULL
// integration_id is padding and left out. Rows go in VALUES order (the caller's key order). It
// returns (id, integration_id, webhook_id) of each row it inserted and pg_notify()s the last two
// parameters' channel and payload for them (PostgreSQL sends one notification per transaction).
std::string postgres_insert_sql(size_t rows) {
  std::string sql =
      "WITH ins AS (INSERT INTO webhook_inbox(integration_id, webhook_id, registration_id, recording_id, received_at,"
      " body, next_attempt_at, status, last_error) SELECT i, w, r, rec, t, b, t,"
      " CASE WHEN e IS NULL THEN 'pending' ELSE 'dead' END, e FROM (VALUES ";
  for (size_t k = 0; k < rows; ++k) {
    sql += k ? ", " : "";
    sql += "(CAST(? AS BIGINT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT),"
           " CAST(? AS BYTEA), CAST(? AS TEXT))";
  }
  sql += ") AS v(i, w, r, rec, t, b, e) WHERE i IS NOT NULL ON CONFLICT(integration_id, webhook_id) DO NOTHING"
         " RETURNING id, integration_id, webhook_id) SELECT id, integration_id, webhook_id, pg_notify(?, ?) FROM ins";
  return sql;
}

}  // namespace

Status Inbox::insert_rows_postgres(std::vector<Pending*>& batch) {
  using Key = std::pair<int64_t, std::string_view>;
  auto key = [](const Pending* p) { return Key(p->delivery->integration_id, p->delivery->webhook_id); };
  std::vector<Pending*> sorted;
  for (Pending* p : batch) {
    if (p->status.ok()) sorted.push_back(p);
  }
  std::stable_sort(sorted.begin(), sorted.end(), [&](const Pending* a, const Pending* b) { return key(a) < key(b); });
  std::vector<Pending*> rows;  // one per webhook-id, in key order; a twin is answered from its row
  for (Pending* p : sorted) {
    if (rows.empty() || key(rows.back()) != key(p)) rows.push_back(p);
  }
  std::map<std::pair<int64_t, std::string>, int64_t> ids;  // what the statements inserted
  for (size_t first = 0; first < rows.size(); first += kMaxRowsPerInsert) {
    const size_t n = std::min(rows.size() - first, kMaxRowsPerInsert);
    const size_t padded = std::bit_ceil(n);
    Stmt& ins = db_.prepare(postgres_insert_sql(padded));
    for (size_t k = 0; k < n; ++k) {
      const Pending* p = rows[first + k];
      const Delivery& d = *p->delivery;
      const int at = static_cast<int>(7 * k);
      ins.bind(at + 1, d.integration_id).bind(at + 2, d.webhook_id).bind(at + 3, d.registration_id);
      ins.bind(at + 4, d.recording_id).bind(at + 5, p->now_ms).bind_blob(at + 6, d.body);
      if (!d.unprocessable.empty()) ins.bind(at + 7, d.unprocessable);
    }
    ins.bind(static_cast<int>(7 * padded + 1), kChannel).bind(static_cast<int>(7 * padded + 2), owner_);
    FB_TRY(each_row(ins, [&](const Stmt& row) { ids[{row.int64(1), row.text(2)}] = row.int64(0); }));
  }
  // The others: a webhook-id already in the inbox (committed by another host, which this insert
  // waited for) or given twice in this batch.
  Stmt& find = db_.prepare(kFindExisting);
  for (Pending* p : sorted) {
    auto it = ids.find({p->delivery->integration_id, std::string(p->delivery->webhook_id)});
    if (it != ids.end() && it->second != 0) {
      p->result = {it->second, false};
      it->second = 0;  // a twin later in the batch is a duplicate of this one
      continue;
    }
    find.bind(1, p->delivery->integration_id).bind(2, p->delivery->webhook_id);
    FB_TRY(each_row(find, [&](const Stmt& row) { p->result = {row.int64(0), true}; }));
  }
  return Status::Ok();
}

Status Inbox::claim_rows(int max, std::vector<InboxEvent>* out, std::vector<BodyAt>* refs) {
  if (max <= 0) return Status::Ok();
  const int64_t now = clock_.now_ms();
  const std::string token = owner_ + "." + std::to_string(++claims_);
  const size_t first = out->size();
  auto read = [&](const Stmt& row) {
    out->push_back(read_event(row));
    out->back().body = row.blob(11);
    out->back().claimed_at_ms = now;
    out->back().claim_token = token;
    if (!row.is_null(12)) refs->push_back({out->size() - 1, row.text(12), row.int64(13), row.int64(14)});
  };
  // One statement on both engines: the due rows, marked and returned with their bodies. On
  // PostgreSQL without the write lock: rows another host is claiming at this moment are skipped,
  // not waited for, and a row is claimed by one host only. (On SQLite the statement journal of a
  // multi-row UPDATE stays in memory below 64 KiB, SQLITE_STMTJRNL_SPILL: a claim's rows and index
  // entries fit in it.)
  Stmt& take = db_.prepare(
      std::string("UPDATE webhook_inbox SET status='processing', attempts=attempts+1, claimed_at=?1, claim_token=?2,"
                  " lease_until=?3 WHERE id IN (SELECT id FROM webhook_inbox WHERE status='pending' AND"
                  " next_attempt_at<=?1 ORDER BY next_attempt_at, id LIMIT ?4") +
      (db_.engine() == Engine::kPostgres ? " FOR UPDATE SKIP LOCKED)" : ")") +
      " RETURNING id, integration_id, registration_id, webhook_id, recording_id, received_at, status, attempts,"
      " next_attempt_at, last_error, processed_at, body, body_segment, body_offset, body_length");
  take.bind(1, now).bind(2, token).bind(3, now + options_.claim_lease_ms).bind(4, max);
  FB_TRY(each_row(take, read));
  // RETURNING has no order: oldest due first.
  std::vector<size_t> idx(out->size() - first);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = first + i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    const InboxEvent &x = (*out)[a], &y = (*out)[b];
    return std::tie(x.next_attempt_at_ms, x.id) < std::tie(y.next_attempt_at_ms, y.id);
  });
  std::vector<size_t> where(out->size(), 0);  // where each row goes: refs follow their events
  std::vector<InboxEvent> got;
  for (size_t k = 0; k < idx.size(); ++k) {
    where[idx[k]] = first + k;
    got.push_back(std::move((*out)[idx[k]]));
  }
  out->resize(first);
  std::move(got.begin(), got.end(), std::back_inserter(*out));
  for (BodyAt& r : *refs) {
    if (r.index >= first) r.index = where[r.index];
  }
  return Status::Ok();
}

void Inbox::load_bodies(std::vector<InboxEvent>& events, const std::vector<BodyAt>& refs) {
  // Outside the transaction: the events are in processing now, so the collector leaves their
  // segments alone.
  for (const BodyAt& r : refs) {
    InboxEvent& e = events[r.index];
    e.body_status = load_body(e, r.segment, r.offset, r.length);
    if (!e.body_status.ok()) {
      FB_LOG(kError, "webhooks") << "cannot load the body of webhook event " << e.id << ": " << e.body_status.message();
    }
  }
}

Result<std::vector<InboxEvent>> Inbox::claim(int max) {
  std::vector<InboxEvent> out;
  std::vector<BodyAt> refs;
  auto take = [&] { return claim_rows(max, &out, &refs); };
  if (db_.engine() == Engine::kPostgres) {
    // One statement, atomic on its own, outside the write lock; an idle poll's empty UPDATE writes
    // nothing.
    FB_TRY(db_.with(take));
    return out;  // no body log on PostgreSQL
  }
  // SQLite: an idle worker polls: look before taking the write lock, so that polling commits nothing.
  bool due = false;
  FB_TRY(db_.with([&] {
    Stmt& q = db_.prepare("SELECT 1 FROM webhook_inbox WHERE status='pending' AND next_attempt_at<=? LIMIT 1");
    q.bind(1, clock_.now_ms());
    return each_row(q, [&](const Stmt&) { due = true; });
  }));
  if (!due) return out;
  FB_TRY(db_.transaction(take));
  load_bodies(out, refs);
  return out;
}

Result<std::vector<InboxEvent>> Inbox::finish_batch(const std::vector<EventOutcome>& outcomes,
                                                    const std::function<Status()>& record, int claim_next) {
  std::vector<InboxEvent> out;
  std::vector<BodyAt> refs;
  const bool fleet = db_.engine() == Engine::kPostgres;
  // PostgreSQL: the marks are fenced by the claim token and need no lock of the fleet. The
  // handler's writes (the batch's meetings: a read-modify-write of each) are made under the fleet's
  // write lock held SHARED, which holds off every immediate transaction (a sync page writing the
  // same meetings), plus a lock per recording of the batch, taken in key order, so that two hosts
  // recording batches of other meetings do not wait for each other, and two with a meeting in
  // common do it one after the other without a deadlock. A batch with a dead letter takes the
  // write lock itself: dead letters are told on the event feed, whose ids must commit in order.
  // The next claim is a transaction of its own.
  bool dead_letters = false;
  for (const EventOutcome& o : outcomes) dead_letters |= o.kind == EventOutcome::kDead;
  const bool immediate = !fleet || (record && dead_letters);
  auto book = [&]() -> Status {
    // The marks first (with the recordings' locks on PostgreSQL): a row the handler's writes lock
    // that every batch writes (a script's store key) is then held only until the commit, not while
    // the marks run too.
    FB_ASSIGN(size_t lost, mark_all(outcomes, fleet && record && !immediate));
    if (record) {
      // The handler's writes cover the whole batch: if another host took some of its events over
      // (this host's lease ran out), it records them itself, so this batch records nothing (the
      // marks roll back with it). The worker then gives its remaining events back for retry.
      if (lost > 0) {
        return Status::Conflict(std::to_string(lost) + " of the batch's " + std::to_string(outcomes.size()) +
                                " webhook event(s) were taken over by another worker after their claim lease (" +
                                std::to_string(options_.claim_lease_ms) + " ms) ran out");
      }
      FB_TRY(record());
    }
    return fleet ? Status::Ok() : claim_rows(claim_next, &out, &refs);
  };
  FB_TRY(db_.transaction(book, immediate));
  if (!fleet) {
    load_bodies(out, refs);
    return out;
  }
  if (claim_next > 0) {
    Status claimed = db_.with([&] { return claim_rows(claim_next, &out, &refs); });
    if (!claimed.ok()) {
      FB_LOG(kError, "webhooks") << "cannot claim webhook events: " << claimed.message();
      out.clear();
    }
  }
  return out;
}

Result<size_t> Inbox::mark_all(const std::vector<EventOutcome>& outcomes, bool lock_recordings) {
  if (outcomes.empty() && !lock_recordings) return 0;
  // Every outcome in one UPDATE, from a JSON list: k the new status, e last_error, n the retry's
  // due time, t the claim token ("": unconditional). With a claim token an outcome applies only
  // while that claim still holds the event (a fencing token: a host whose lease was taken over
  // changes nothing).
  nlohmann::json list = nlohmann::json::array();
  std::set<int64_t> fenced;
  for (const EventOutcome& o : outcomes) {
    const char* kind = o.kind == EventOutcome::kDone ? "done" : o.kind == EventOutcome::kRetry ? "pending" : "dead";
    list.push_back({{"id", o.event_id},
                    {"k", kind},
                    {"e", o.kind == EventOutcome::kDone ? nlohmann::json(nullptr) : nlohmann::json(o.error)},
                    {"n", o.next_attempt_at_ms},
                    {"t", o.claim_token},
                    {"v", o.script_versions.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.script_versions)}});
    if (!o.claim_token.empty()) fenced.insert(o.event_id);
  }
  constexpr const char* kSet =
      " SET status=o.k, processed_at=CASE WHEN o.k='done' THEN ?1 ELSE processed_at END,"
      " next_attempt_at=CASE WHEN o.k='pending' THEN o.n ELSE next_attempt_at END, last_error=o.e,"
      " script_versions=COALESCE(o.v, webhook_inbox.script_versions), ";
  constexpr const char* kFence = " AND (o.t='' OR (webhook_inbox.claim_token=o.t AND webhook_inbox.status='processing'))";
  std::string sql;
  if (db_.engine() == Engine::kPostgres) {
    sql = "WITH o AS (SELECT * FROM json_to_recordset(CAST(?2 AS JSON)) AS o(id BIGINT, k TEXT, e TEXT, n BIGINT, t TEXT, v TEXT))";
    std::string gate;
    if (lock_recordings) {
      // The fleet's write lock shared, then the lock of each recording of these events (advisory
      // locks of the two-key space: the fleet's lock is a one-key lock, they never meet), one by
      // one in key order by the aggregate. A condition on no row: the planner makes it a one-time
      // filter evaluated before the UPDATE reads (and locks) any row, so a recording's locks are
      // always taken before its events' rows.
      sql += ", l AS (SELECT pg_advisory_xact_lock_shared(" + std::to_string(kFleetWriteLockKey) +
             ") AS f, (SELECT COUNT(pg_advisory_xact_lock(k1, k2)) FROM (SELECT DISTINCT"
             " CAST(integration_id % 2147483647 AS INT4) AS k1, hashint8(recording_id) AS k2"
             " FROM webhook_inbox WHERE id IN (SELECT id FROM o) ORDER BY k1, k2) AS r) AS n)";
      gate = " AND (SELECT n FROM l) >= 0";
    }
    sql += std::string(" UPDATE webhook_inbox") + kSet + kNoClaim + " FROM o WHERE webhook_inbox.id=o.id" + kFence +
           gate + " RETURNING webhook_inbox.id";
  } else {
    sql = std::string("UPDATE webhook_inbox") + kSet + kNoClaim +
          " FROM (SELECT json_extract(value, '$.id') AS id, json_extract(value, '$.k') AS k,"
          " json_extract(value, '$.e') AS e, json_extract(value, '$.n') AS n, json_extract(value, '$.t') AS t,"
          " json_extract(value, '$.v') AS v"
          " FROM json_each(?2)) AS o WHERE webhook_inbox.id=o.id" + kFence + " RETURNING webhook_inbox.id";
  }
  size_t held = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(sql);
    q.bind(1, clock_.now_ms()).bind(2, list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    return each_row(q, [&](const Stmt& row) { held += fenced.count(row.int64(0)); });
  });
  if (!s.ok()) return s;
  return fenced.size() - held;
}

Status Inbox::load_body(InboxEvent& e, const std::string& segment, int64_t offset, int64_t length) {
  BodyRef ref{segment, offset, length};
  BodyKey key{e.integration_id, e.webhook_id};
  Status s = log_ ? log_->read(ref, key, e.id, &e.body)
                  : Status::Io("webhook event " + std::to_string(e.id) + ": its body is in segment '" + segment +
                               "' but this inbox has no body directory");
  if (!s.is(Code::kNotFound)) return s;
  // The segment is gone: the collector may have copied the body into the row and deleted it
  // since we read the row. Look again.
  bool referenced = true;
  bool found = false;
  Status again = db_.with([&] {
    Stmt& q = db_.prepare("SELECT body, body_segment FROM webhook_inbox WHERE id=?");
    q.bind(1, e.id);
    return each_row(q, [&](const Stmt& row) {
      found = true;
      referenced = !row.is_null(1);
      if (!referenced) e.body = row.blob(0);
    });
  });
  if (!again.ok()) return again;
  if (!found) return Status::NotFound("no webhook event " + std::to_string(e.id));
  if (referenced) return Status::Io(s.message() + " (the body is lost)");
  return Status::Ok();
}

Status Inbox::mark_done(int64_t event_id) { return mark_all({{event_id, EventOutcome::kDone, {}, 0, {}}}).status(); }

Status Inbox::mark_retry(int64_t event_id, std::string_view error, int64_t next_attempt_at_ms) {
  return mark_all({{event_id, EventOutcome::kRetry, std::string(error), next_attempt_at_ms, {}}}).status();
}

Status Inbox::mark_dead(int64_t event_id, std::string_view error) {
  return mark_all({{event_id, EventOutcome::kDead, std::string(error), 0, {}}}).status();
}

Result<int> Inbox::reclaim(int64_t claimed_before_ms, const std::vector<int64_t>& held) {
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("UPDATE webhook_inbox SET status='pending', ") + kNoClaim +
                          " WHERE status='processing' AND claimed_at<=? AND id NOT IN " + json_values(db_, true));
    FB_TRY(q.bind(1, claimed_before_ms).bind(2, nlohmann::json(held).dump()).run());
    n = db_.changes();
    return n > 0 ? notify_others() : Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<int> Inbox::reclaim_expired(const std::vector<int64_t>& held, std::optional<int64_t> as_of_ms) {
  const int64_t as_of = as_of_ms.value_or(clock_.now_ms());
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("UPDATE webhook_inbox SET status='pending', ") + kNoClaim +
                          " WHERE status='processing' AND lease_until<=? AND id NOT IN " + json_values(db_, true));
    FB_TRY(q.bind(1, as_of).bind(2, nlohmann::json(held).dump()).run());
    n = db_.changes();
    return n > 0 ? notify_others() : Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<int> Inbox::renew(const std::vector<std::string>& claim_tokens) {
  if (claim_tokens.empty()) return 0;
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare("UPDATE webhook_inbox SET lease_until=? WHERE status='processing' AND claim_token IN " +
                          json_values(db_, false));
    FB_TRY(q.bind(1, clock_.now_ms() + options_.claim_lease_ms).bind(2, nlohmann::json(claim_tokens).dump()).run());
    n = db_.changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<int> Inbox::release(const std::vector<std::pair<int64_t, int64_t>>& events) {
  int n = 0;
  // One single-row UPDATE per event (a rare path: a stuck worker's batch).
  Status s = db_.transaction([&]() -> Status {
    Stmt& q = db_.prepare(
        std::string("UPDATE webhook_inbox SET status='pending', attempts=MAX(attempts-1, 0), ") + kNoClaim +
        " WHERE id=? AND status='processing' AND claimed_at=?");
    for (const auto& [id, claimed_at] : events) {
      FB_TRY(q.bind(1, id).bind(2, claimed_at).run());
      n += db_.changes();
    }
    return n > 0 ? notify_others() : Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<int> Inbox::purge_done(int64_t processed_before_ms, int limit) {
  int n = 0;
  Status s = db_.with([&] {
    // A meeting stored by pointer keeps its event (the sync tables exist once a MeetingStore has
    // been opened on this file; an inbox used alone has none).
    FB_ASSIGN(bool meetings, has_meetings_table());
    Stmt& q = db_.prepare(meetings
        ? "DELETE FROM webhook_inbox WHERE id IN (SELECT id FROM webhook_inbox WHERE status='done' AND processed_at<?"
          " AND NOT EXISTS (SELECT 1 FROM sync_meetings WHERE content_event_id=webhook_inbox.id) LIMIT ?)"
        : "DELETE FROM webhook_inbox WHERE id IN (SELECT id FROM webhook_inbox WHERE status='done' AND processed_at<?"
          " LIMIT ?)");
    FB_TRY(q.bind(1, processed_before_ms).bind(2, limit).run());
    n = db_.changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<std::optional<int64_t>> Inbox::next_due_ms() {
  std::optional<int64_t> due;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare("SELECT MIN(next_attempt_at) FROM webhook_inbox WHERE status='pending'");
    return each_row(q, [&](const Stmt& row) { due = row.opt_int64(0); });
  });
  if (!s.ok()) return s;
  return due;
}

Result<BodyCollection> Inbox::collect_body_segments() {
  BodyCollection out;
  if (!log_) return out;
  log_->drop_unlinked();
  FB_ASSIGN(std::vector<std::string> names, log_->segments());
  int64_t old_before = wall_ms() - options_.inline_after_ms;
  FB_ASSIGN(bool meetings, has_meetings_table());
  const char* movable_rows = meetings ? kMovableWithMeetings : kMovable;
  // Rows referencing a segment, by whether the collector may move their bodies (pending, dead).
  auto references = [&](const std::string& name, int64_t* movable, int64_t* pinned) {
    *movable = *pinned = 0;
    return db_.with([&] {
      Stmt& q = db_.prepare(std::string("SELECT ") + movable_rows +
                            ", COUNT(*) FROM webhook_inbox WHERE body_segment=? GROUP BY 1");
      q.bind(1, name);
      return each_row(q, [&](const Stmt& row) { *(row.int64(0) ? movable : pinned) += row.int64(1); });
    });
  };
  for (const std::string& name : names) {
    // Locked before the rows are counted: a writer commits the rows of a segment before it lets go
    // of it, so what we count below is final (no new row can reference an unowned segment).
    std::optional<SegmentLock> lock = log_->lock_segment(name);
    if (!lock) {
      ++out.kept;
      continue;
    }
    int64_t movable = 0, pinned = 0;
    FB_TRY(references(name, &movable, &pinned));
    if (movable > 0 && pinned == 0 && lock->mtime_ms() <= old_before) {
      auto n = inline_bodies(name, *lock, movable_rows);
      if (!n.ok()) {
        FB_LOG(kError, "webhooks") << "cannot move webhook bodies out of segment '" << log_->dir() << "/" << name
                                   << "' (it is kept): " << n.status().message();
        ++out.kept;
        continue;
      }
      out.inlined += *n;
      FB_TRY(references(name, &movable, &pinned));
    }
    if (movable + pinned > 0) {
      ++out.kept;
      continue;
    }
    if (out.deleted == 0 && !db_.full_sync()) {
      // Under synchronous=NORMAL the purge that freed this segment may be the latest commit, which
      // a power cut may undo: make the WAL durable first, or its rows could come back pointing at a
      // deleted segment.
      FB_TRY(sync_wal());
    }
    FB_TRY(log_->remove(name));
    ++out.deleted;
  }
  if (out.deleted > 0 || out.inlined > 0) {
    FB_LOG(kInfo, "webhooks") << "webhook body log: deleted " << out.deleted << " segment(s), moved " << out.inlined
                              << " body(ies) into the database, " << out.kept << " segment(s) in use";
  }
  return out;
}

Status Inbox::sync_wal() {
  std::string wal = db_.path() + "-wal";
  int fd = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::Ok();  // no WAL: every commit is in the database file
    return Status::Io("cannot open " + wal + " to sync it: " + std::strerror(errno));
  }
  int rc = ::fdatasync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::Io("cannot sync " + wal + ": " + std::strerror(err));
  return Status::Ok();
}

Result<bool> Inbox::has_meetings_table() {
  bool found = false;
  FB_TRY(db_.with([&]() -> Status {
    FB_ASSIGN(found, db_.has_table("sync_meetings"));
    return Status::Ok();
  }));
  return found;
}

Result<int> Inbox::inline_bodies(const std::string& segment, const SegmentLock& lock, const char* movable) {
  int moved = 0;
  for (;;) {
    std::vector<InboxEvent> rows;
    std::vector<BodyRef> refs;
    FB_TRY(db_.with([&] {
      Stmt& q = db_.prepare(
          "SELECT id, integration_id, webhook_id, body_offset, body_length FROM webhook_inbox"
          " WHERE body_segment=? AND " + std::string(movable) + " LIMIT 64");
      q.bind(1, segment);
      return each_row(q, [&](const Stmt& row) {
        InboxEvent e;
        e.id = row.int64(0);
        e.integration_id = row.int64(1);
        e.webhook_id = row.text(2);
        rows.push_back(std::move(e));
        refs.push_back({segment, row.int64(3), row.int64(4)});
      });
    }));
    if (rows.empty()) return moved;
    // Read outside the database lock: the bytes of a segment never change.
    for (size_t i = 0; i < rows.size(); ++i) {
      FB_TRY(BodyLog::read_fd(lock.fd(), refs[i], {rows[i].integration_id, rows[i].webhook_id}, rows[i].id,
                              &rows[i].body));
    }
    int n = 0;
    auto move = [&]() -> Status {
      Stmt& q = db_.prepare(
          "UPDATE webhook_inbox SET body=?, body_segment=NULL, body_offset=NULL, body_length=NULL"
          " WHERE id=? AND body_segment=? AND " + std::string(movable));
      for (const InboxEvent& e : rows) {
        FB_TRY(q.bind_blob(1, e.body).bind(2, e.id).bind(3, segment).run());
        n += db_.changes();
      }
      return Status::Ok();
    };
    // This commit must be durable before the segment is unlinked, also under synchronous=NORMAL:
    // a power cut may take the latest commits, and if it took this one the rows would come back
    // pointing at a deleted segment (old bodies lost, not just recent ones). So it syncs the WAL.
    Status s = db_.full_sync() ? db_.transaction(move) : db_.with([&] {
      FB_TRY(db_.exec("PRAGMA synchronous=FULL"));
      Status t = db_.transaction(move);
      Status back = db_.exec("PRAGMA synchronous=NORMAL");
      return t.ok() ? back : t;
    });
    if (!s.ok()) return s;
    moved += n;
    if (n == 0) return moved;  // every one was claimed meanwhile: its segment stays
  }
}

Result<std::vector<InboxEvent>> Inbox::list(const InboxFilter& f) {
  static const char* kStatuses[] = {"pending", "processing", "done", "dead"};
  if (!f.status.empty()) {
    bool known = false;
    for (const char* k : kStatuses) known = known || f.status == k;
    if (!known) {
      return Status::InvalidArgument("unknown inbox status '" + f.status + "' (pending, processing, done or dead)");
    }
  }
  if (f.limit <= 0) return Status::InvalidArgument("inbox list limit must be greater than 0");
  std::vector<InboxEvent> out;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns +
                          ", script_versions FROM webhook_inbox WHERE (?1='' OR status=?1) AND (?2=0 OR integration_id=?2)"
                          " ORDER BY id DESC LIMIT ?3");
    q.bind(1, f.status).bind(2, f.integration_id).bind(3, f.limit);
    return each_row(q, [&](const Stmt& row) {
      out.push_back(read_event(row));
      out.back().script_versions = row.text(11);
    });
  });
  if (!s.ok()) return s;
  return out;
}

Result<InboxEvent> Inbox::get(int64_t event_id, bool with_body) {
  std::optional<InboxEvent> e;
  std::optional<std::string> segment;
  int64_t offset = 0, length = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns + ", CASE WHEN ?2 THEN body END" +
                          ", body_segment, body_offset, body_length FROM webhook_inbox WHERE id=?1");
    q.bind(1, event_id).bind(2, with_body ? 1 : 0);
    return each_row(q, [&](const Stmt& row) {
      e = read_event(row);
      e->body = row.blob(11);
      segment = row.opt_text(12);
      offset = row.int64(13);
      length = row.int64(14);
    });
  });
  if (!s.ok()) return s;
  if (!e) return Status::NotFound("no webhook event " + std::to_string(event_id));
  if (with_body && segment) FB_TRY(load_body(*e, *segment, offset, length));
  return std::move(*e);
}

Status Inbox::replay(int64_t event_id) {
  return db_.transaction([&]() -> Status {
    // One guarded statement, not a read and then a write: on PostgreSQL a worker of any host claims
    // outside the fleet's write lock, and a claim taken between the two would be wiped, its
    // worker's outcome refused and the event's CRM calls made again.
    Stmt& q = db_.prepare(std::string("UPDATE webhook_inbox SET status='pending', attempts=0, next_attempt_at=?, ") +
                          kNoClaim + " WHERE id=? AND status<>'processing'");
    FB_TRY(q.bind(1, clock_.now_ms()).bind(2, event_id).run());
    if (db_.changes() == 0) {
      FB_TRY(get(event_id).status());  // kNotFound when there is none (or it was purged)
      return Status::FailedPrecondition("webhook event " + std::to_string(event_id) +
                                        " is being processed now");
    }
    return notify_others();
  });
}

Result<int> Inbox::replay_dead(int64_t integration_id) {
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("UPDATE webhook_inbox SET status='pending', attempts=0, next_attempt_at=?, ") +
                          kNoClaim + " WHERE status='dead' AND (?2=0 OR integration_id=?2)");
    FB_TRY(q.bind(1, clock_.now_ms()).bind(2, integration_id).run());
    n = db_.changes();
    return n > 0 ? notify_others() : Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<std::vector<std::pair<std::string, int64_t>>> Inbox::counts() {
  std::vector<std::pair<std::string, int64_t>> out = {{"pending", 0}, {"processing", 0}, {"done", 0}, {"dead", 0}};
  Status s = db_.with([&] {
    Stmt& q = db_.prepare("SELECT status, COUNT(*) FROM webhook_inbox GROUP BY status");
    return each_row(q, [&](const Stmt& row) {
      std::string st = row.text(0);
      for (auto& [name, n] : out) {
        if (name == st) n = row.int64(1);
      }
    });
  });
  if (!s.ok()) return s;
  return out;
}

Status set_script_versions(Db& db, const std::vector<std::pair<int64_t, std::string>>& versions) {
  if (versions.empty()) return Status::Ok();
  std::map<int64_t, std::string_view> last;
  for (const auto& [id, json] : versions) last[id] = json;
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, json] : last) list.push_back({{"id", id}, {"v", json}});
  Stmt& q = db.prepare(
      db.engine() == Engine::kPostgres
          ? "UPDATE webhook_inbox SET script_versions=o.v FROM json_to_recordset(CAST(? AS JSON)) AS o(id BIGINT, v TEXT)"
            " WHERE webhook_inbox.id=o.id"
          : "UPDATE webhook_inbox SET script_versions=o.v FROM (SELECT json_extract(value, '$.id') AS id,"
            " json_extract(value, '$.v') AS v FROM json_each(?)) AS o WHERE webhook_inbox.id=o.id");
  return q.bind(1, list.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)).run();
}

std::string events_to_json(const std::vector<InboxEvent>& events) {
  nlohmann::json arr = nlohmann::json::array();
  for (const InboxEvent& e : events) {
    nlohmann::json j = {{"id", e.id},
                        {"integration_id", e.integration_id},
                        {"registration_id", e.registration_id},
                        {"webhook_id", e.webhook_id},
                        {"recording_id", e.recording_id},
                        {"received_at_ms", e.received_at_ms},
                        {"status", e.status},
                        {"attempts", e.attempts},
                        {"next_attempt_at_ms", e.next_attempt_at_ms}};
    j["last_error"] = e.last_error.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.last_error);
    j["processed_at_ms"] = e.processed_at_ms ? nlohmann::json(e.processed_at_ms) : nlohmann::json(nullptr);
    j["script_versions"] = e.script_versions.empty() ? nlohmann::json(nullptr)
                                                     : nlohmann::json::parse(e.script_versions, nullptr, false);
    arr.push_back(std::move(j));
  }
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace fb::detail

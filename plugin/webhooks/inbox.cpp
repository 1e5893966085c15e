#include "webhooks/inbox.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/log.h"

namespace fb::detail {

namespace {

constexpr const char* kInsert =
    "INSERT INTO webhook_inbox(integration_id, webhook_id, registration_id, recording_id, received_at, body,"
    " next_attempt_at) VALUES(?,?,?,?,?,?,?) ON CONFLICT(integration_id, webhook_id) DO NOTHING RETURNING id";
constexpr const char* kFindExisting = "SELECT id FROM webhook_inbox WHERE integration_id=? AND webhook_id=?";
constexpr const char* kColumns =
    "id, integration_id, registration_id, webhook_id, recording_id, received_at, status, attempts,"
    " next_attempt_at, last_error, processed_at";

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

// Runs q to completion, collecting rows with read.
template <typename F>
Status each_row(Stmt& q, F&& read) {
  for (;;) {
    auto r = q.step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    read(q);
  }
  q.reset();
  return Status::Ok();
}

}  // namespace

// One caller waiting for its delivery to be committed. A mutex and condition variable rather than
// std::binary_semaphore: libstdc++'s semaphore spins with sched_yield before it sleeps, which
// costs more CPU than the wait itself with dozens of waiting request threads.
// An asynchronous caller's Pending is owned by the queue instead: finish() calls back and deletes it.
struct Inbox::Pending {
  const Delivery* delivery = nullptr;
  Delivery copy;  // asynchronous callers: the delivery itself (its views stay the caller's)
  int64_t now_ms = 0;
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

Inbox::Inbox(Db& db, Clock& clock, InboxOptions options) : db_(db), clock_(clock), options_(options) {
  if (options_.max_batch == 0) options_.max_batch = 1;
  if (options_.background_checkpoint && !db_.path().empty() && db_.path() != ":memory:" &&
      db_.path().rfind("file:", 0) != 0) {
    auto ckpt = Db::open(db_.path());
    Status off = db_.with([&] { return db_.exec("PRAGMA wal_autocheckpoint=0"); });
    if (ckpt.ok() && off.ok()) {
      checkpoint_db_ = std::move(*ckpt);
      checkpointer_ = std::thread([this] { checkpoint_loop(); });
    } else {
      (void)db_.with([&] { return db_.exec("PRAGMA wal_autocheckpoint=1000"); });
      FB_LOG(kWarn, "webhooks") << "no background WAL checkpoints (commits will checkpoint inline): "
                                << (ckpt.ok() ? off.message() : ckpt.status().message());
    }
  }
  writer_ = std::thread([this] { writer_loop(); });
}

Inbox::~Inbox() {
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

void Inbox::set_commit_listener(std::function<void()> listener) {
  std::lock_guard lk(listener_mu_);  // waits for a call in progress: then the old one is never called again
  listener_ = std::move(listener);
}

Result<Appended> Inbox::append(const Delivery& delivery) {
  Pending p;
  p.delivery = &delivery;
  p.now_ms = clock_.now_ms();
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
        bytes += p->delivery->body.size();
      }
    }
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
  Status s = db_.transaction([&]() -> Status {
    Stmt& ins = db_.prepare(kInsert);
    for (Pending* p : batch) {
      const Delivery& d = *p->delivery;
      ins.bind(1, d.integration_id).bind(2, d.webhook_id).bind(3, d.registration_id).bind(4, d.recording_id);
      ins.bind(5, p->now_ms).bind_blob(6, d.body).bind(7, p->now_ms);
      auto row = ins.step();
      if (!row.ok()) return row.status();
      if (*row) {
        p->result = {ins.int64(0), false};
        ins.reset();
        continue;
      }
      ins.reset();
      Stmt& find = db_.prepare(kFindExisting);
      find.bind(1, d.integration_id).bind(2, d.webhook_id);
      auto found = find.step();
      if (!found.ok()) return found.status();
      p->result = {*found ? find.int64(0) : 0, true};
      find.reset();
    }
    return Status::Ok();
  });
  if (!s.ok()) {
    FB_LOG(kError, "webhooks") << "inbox commit of " << batch.size() << " deliveries failed: " << s.message();
    Status failed = Status::Io("webhook inbox commit failed: " + s.message());
    for (Pending* p : batch) p->status = failed;
  }
}

Result<std::vector<InboxEvent>> Inbox::claim(int max) {
  std::vector<InboxEvent> out;
  int64_t now = clock_.now_ms();
  Status s = db_.transaction([&]() -> Status {
    // Ids first, then one single-row UPDATE each: a multi-row UPDATE would make SQLite open a
    // statement journal (a temporary file) on every claim.
    std::vector<int64_t> ids;
    Stmt& due = db_.prepare(
        "SELECT id FROM webhook_inbox WHERE status='pending' AND next_attempt_at<=? ORDER BY next_attempt_at, id"
        " LIMIT ?");
    due.bind(1, now).bind(2, max);
    FB_TRY(each_row(due, [&](const Stmt& row) { ids.push_back(row.int64(0)); }));
    Stmt& take = db_.prepare(
        "UPDATE webhook_inbox SET status='processing', attempts=attempts+1, claimed_at=? WHERE id=?"
        " RETURNING id, integration_id, registration_id, webhook_id, recording_id, received_at, status, attempts,"
        " next_attempt_at, last_error, processed_at, body");
    for (int64_t id : ids) {
      take.bind(1, now).bind(2, id);
      FB_TRY(each_row(take, [&](const Stmt& row) {
        out.push_back(read_event(row));
        out.back().body = row.blob(11);
      }));
    }
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return out;
}

Status Inbox::mark_done(int64_t event_id) {
  return db_.with([&] {
    Stmt& q = db_.prepare(
        "UPDATE webhook_inbox SET status='done', processed_at=?, last_error=NULL, claimed_at=NULL WHERE id=?");
    return q.bind(1, clock_.now_ms()).bind(2, event_id).run();
  });
}

Status Inbox::mark_retry(int64_t event_id, std::string_view error, int64_t next_attempt_at_ms) {
  return db_.with([&] {
    Stmt& q = db_.prepare(
        "UPDATE webhook_inbox SET status='pending', next_attempt_at=?, last_error=?, claimed_at=NULL WHERE id=?");
    return q.bind(1, next_attempt_at_ms).bind(2, error).bind(3, event_id).run();
  });
}

Status Inbox::mark_dead(int64_t event_id, std::string_view error) {
  return db_.with([&] {
    Stmt& q = db_.prepare("UPDATE webhook_inbox SET status='dead', last_error=?, claimed_at=NULL WHERE id=?");
    return q.bind(1, error).bind(2, event_id).run();
  });
}

Result<int> Inbox::reclaim(int64_t claimed_before_ms) {
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(
        "UPDATE webhook_inbox SET status='pending', claimed_at=NULL WHERE status='processing' AND claimed_at<=?");
    FB_TRY(q.bind(1, claimed_before_ms).run());
    n = db_.changes();
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return n;
}

Result<int> Inbox::purge_done(int64_t processed_before_ms, int limit) {
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(
        "DELETE FROM webhook_inbox WHERE id IN (SELECT id FROM webhook_inbox WHERE status='done' AND processed_at<?"
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
                          " FROM webhook_inbox WHERE (?1='' OR status=?1) AND (?2=0 OR integration_id=?2)"
                          " ORDER BY id DESC LIMIT ?3");
    q.bind(1, f.status).bind(2, f.integration_id).bind(3, f.limit);
    return each_row(q, [&](const Stmt& row) { out.push_back(read_event(row)); });
  });
  if (!s.ok()) return s;
  return out;
}

Result<InboxEvent> Inbox::get(int64_t event_id, bool with_body) {
  std::optional<InboxEvent> e;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(std::string("SELECT ") + kColumns + ", CASE WHEN ?2 THEN body END" +
                          " FROM webhook_inbox WHERE id=?1");
    q.bind(1, event_id).bind(2, with_body ? 1 : 0);
    return each_row(q, [&](const Stmt& row) {
      e = read_event(row);
      e->body = row.blob(11);
    });
  });
  if (!s.ok()) return s;
  if (!e) return Status::NotFound("no webhook event " + std::to_string(event_id));
  return std::move(*e);
}

Status Inbox::replay(int64_t event_id) {
  return db_.transaction([&]() -> Status {
    FB_ASSIGN(InboxEvent e, get(event_id));
    if (e.status == "processing") {
      return Status::FailedPrecondition("webhook event " + std::to_string(event_id) + " is being processed now");
    }
    Stmt& q = db_.prepare(
        "UPDATE webhook_inbox SET status='pending', attempts=0, next_attempt_at=?, claimed_at=NULL WHERE id=?");
    return q.bind(1, clock_.now_ms()).bind(2, event_id).run();
  });
}

Result<int> Inbox::replay_dead(int64_t integration_id) {
  int n = 0;
  Status s = db_.with([&] {
    Stmt& q = db_.prepare(
        "UPDATE webhook_inbox SET status='pending', attempts=0, next_attempt_at=?, claimed_at=NULL"
        " WHERE status='dead' AND (?2=0 OR integration_id=?2)");
    FB_TRY(q.bind(1, clock_.now_ms()).bind(2, integration_id).run());
    n = db_.changes();
    return Status::Ok();
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
    arr.push_back(std::move(j));
  }
  return arr.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace fb::detail

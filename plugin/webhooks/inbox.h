// inbox.h: the durable webhook inbox, with group commit.
//
// append() returns only once the delivery is committed: the receiver answers 2xx after that, so a
// crash after the 2xx loses nothing. Durability is that of the Db: synchronous=NORMAL in WAL mode
// survives a process crash, synchronous=FULL (store.full_sync) also survives power loss.
//
// Group commit: one writer thread takes every delivery queued while it was committing the previous
// batch and writes them in one transaction, then wakes each waiting caller. With N concurrent
// deliveries the cost of a commit (and of its fsync under FULL) is shared by N.
//
// Deduplication: (integration_id, webhook-id) is unique. A repeated delivery is acknowledged
// (duplicate = true, with the first delivery's event id) and never queued for processing again; its
// body is not written anywhere.
//
// Event life: pending -> processing (claimed by a worker, attempts + 1) -> done, or back to pending
// with a later next_attempt_at, or dead (dead letter) with last_error. replay() puts an event back
// to pending. reclaim() returns events left in processing by a crashed process to pending.
//
// Claims and leases (issue 12, a fleet of hosts on one PostgreSQL store): a claim gives its events a
// claim token (this inbox's random id and a claim number) and a lease until now + claim_lease_ms,
// which the holder renews (renew(); the WorkerPool does, for every event a live thread holds).
// reclaim_expired() returns events whose lease ran out (a dead or cut-off host) to pending, for any
// host. An outcome carrying a claim token is recorded only while that claim still holds the event:
// a host whose lease was taken over records nothing over the new owner (finish_batch). On
// PostgreSQL a claim is one UPDATE over `FOR UPDATE SKIP LOCKED` rows outside the fleet's write
// lock, so two hosts never take the same event and claimers never wait for each other; deliveries
// are inserted without that lock too (the unique (integration_id, webhook_id) with ON CONFLICT DO
// NOTHING dedupes across hosts), and each commit that adds or returns events NOTIFYs the other
// hosts (LISTEN on a connection of this inbox's own; see the commit listener).
//
// Bodies: with InboxOptions::body_dir set, bodies live in an append-only body log (body_log.h)
// instead of the body column: a group commit takes the write lock, writes the bodies of the batch's
// new deliveries with one pwritev (fdatasync'ed when the Db is full_sync), then inserts and commits
// the rows that reference them. Rows
// written without a body log keep their body inline, and both kinds are read the same way.
// collect_body_segments() deletes segments no row needs any more and, after inline_after_ms,
// copies the bodies of pending and dead events still in a segment into their rows, so a dead
// letter never pins a segment (nor loses its body).
//
// Threading: thread-safe. Pass the process's shared write connection: every writer in the process
// then queues on its mutex instead of SQLite's sleeping busy handler. The Db must outlive the Inbox.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "fathom_bridge/status.h"
#include "store/db.h"
#include "webhooks/body_log.h"

namespace fb::detail {

// One verified delivery. The views must stay valid until append() returns.
struct Delivery {
  int64_t integration_id = 0;
  int64_t registration_id = 0;
  std::string_view webhook_id;  // the webhook-id header
  int64_t recording_id = 0;
  std::string_view body;        // the raw bytes that were signed
  // Non-empty: verified, but not a Meeting this bridge can process (static text, e.g. "not a
  // Meeting: recording_id is missing"). Stored as a dead letter with this reason, never claimed by
  // a worker; listed and replayable like any other.
  std::string_view unprocessable;
};

struct Appended {
  int64_t event_id = 0;
  bool duplicate = false;  // this webhook-id was already in the inbox
};

struct InboxEvent {
  int64_t id = 0;
  int64_t integration_id = 0;
  int64_t registration_id = 0;
  std::string webhook_id;
  int64_t recording_id = 0;
  int64_t received_at_ms = 0;
  std::string status;  // "pending", "processing", "done", "dead"
  int attempts = 0;
  int64_t next_attempt_at_ms = 0;
  std::string last_error;
  int64_t processed_at_ms = 0;  // 0 when not done
  int64_t claimed_at_ms = 0;    // claim() and finish_batch() only: when this claim took it
  std::string claim_token;      // claim() and finish_batch() only: the claim holding it
  std::string body;             // filled by claim() and get(id, true) only
  // list() only: the script versions its last attempt's CRM operations ran on (issue 15), a JSON
  // array of script version ids (0: the scripts folder); "" when it made none.
  std::string script_versions;
  // claim() only: not ok when the body could not be loaded from the body log. kIo: the record is
  // damaged or missing (the event should be dead-lettered with this message); other codes may pass.
  Status body_status;
};

// What collect_body_segments() did.
struct BodyCollection {
  int deleted = 0;  // segments deleted
  int inlined = 0;  // bodies copied into their rows
  int kept = 0;     // segments still needed (or locked by a writer)
};

// How a worker's batch left one claimed event (Inbox::finish_batch).
struct EventOutcome {
  enum Kind { kDone, kRetry, kDead };
  int64_t event_id = 0;
  Kind kind = kDone;
  std::string error;                // kRetry, kDead
  int64_t next_attempt_at_ms = 0;   // kRetry
  // The claim the outcome is for (InboxEvent::claim_token): recorded only while that claim still
  // holds the event. "": unconditional (an event this caller owns by other means).
  std::string claim_token;
  // The script versions that made the event's CRM operations (a JSON document, issue 15), written
  // by the same statement as the outcome. "": the row's are left as they are.
  std::string script_versions;
};

struct InboxFilter {
  std::string status;          // "" = any
  int64_t integration_id = 0;  // 0 = any
  int limit = 100;             // newest first
};

struct InboxOptions {
  size_t max_batch = 512;  // deliveries per group commit
  // WAL checkpoints on a connection of their own instead of inside the commits (SQLite's
  // default): the writer never stalls on a checkpoint's fsync. The Inbox then sets
  // wal_autocheckpoint=0 on the shared connection (restored in the destructor) and checkpoints
  // the file (PASSIVE) every checkpoint_bytes of WAL growth (estimated from the rows and inline
  // bodies committed) or checkpoint_interval_ms, whichever comes first, which also covers what
  // other components write through that connection.
  bool background_checkpoint = true;
  size_t checkpoint_bytes = 32u << 20;
  int checkpoint_interval_ms = 1000;
  // The body log's directory; "" keeps bodies in the body column (":memory:" databases).
  // default_body_dir() is the usual choice for a database file.
  std::string body_dir;
  uint64_t segment_bytes = 64ull << 20;    // a writer starts a new segment past this size
  int64_t inline_after_ms = 3'600'000;     // segments untouched this long give up pending/dead bodies
  // How long a delivery may wait for its commit to start (behind earlier batches, for this
  // connection, for another connection's write lock) before append() fails with kUnavailable, so
  // that the sender gets a 503 and retries instead of timing out (Svix waits about 15 s).
  // webhooks.commit_timeout_ms.
  int commit_timeout_ms = 3000;
  // How long a claim holds its events without renew() (webhooks.claim_lease_s): a host that dies
  // holding events leaves them to the others this long after its last renewal.
  int64_t claim_lease_ms = 60'000;
};

// "<db_path>-webhook-bodies" for a database file, "" for ":memory:" and "file:" URIs.
std::string default_body_dir(const std::string& db_path);

class Inbox {
 public:
  // Starts the writer thread. REQUIRES: migrate_webhooks(db) was applied.
  Inbox(Db& db, Clock& clock, InboxOptions options = {});
  // Stops the writer after it has committed what is queued.
  ~Inbox();
  Inbox(const Inbox&) = delete;
  Inbox& operator=(const Inbox&) = delete;

  // Commits the delivery (or finds it already there) and returns once it is durable. Blocks the
  // caller for about one group commit. Fails with kIo when the database fails, and with
  // kUnavailable when the commit could not start within commit_timeout_ms (a locked database);
  // then nothing of the delivery is stored and the sender should retry. A repeat writes nothing.
  Result<Appended> append(const Delivery& delivery);

  // The same without blocking the caller (for an event-loop server): done is called exactly once,
  // on the writer thread, after the commit (or with kIo/kUnavailable). The delivery and the bytes
  // it views must stay valid until then. done must be quick: it runs before the next batch.
  using AppendCallback = std::function<void(Result<Appended>)>;
  void append_async(const Delivery& delivery, AppendCallback done);

  // Called on the writer thread after a batch that added new events (a WorkerPool subscribes itself
  // to wake its workers), and, on PostgreSQL, on this inbox's LISTEN thread when another host's
  // commit added events or put some back to pending. Must be quick. Replacing it (or clearing it with nullptr) waits for a
  // call in progress, so the old listener is never called after this returns.
  void set_commit_listener(std::function<void()> listener);

  // ---- worker side ----
  // Claims up to max due pending events (oldest due first): status processing, attempts + 1.
  Result<std::vector<InboxEvent>> claim(int max);
  // A worker's batch bookkeeping in ONE write transaction on this inbox's Db: record() (the
  // handler's writes, e.g. the batch's meetings and mapped versions; may be empty), the outcome of
  // every event of the batch, and the claim of the next claim_next due events, which it returns
  // (bodies loaded after the commit, as claim() does). Nothing of it is written when any part fails.
  Result<std::vector<InboxEvent>> finish_batch(const std::vector<EventOutcome>& outcomes,
                                               const std::function<Status()>& record, int claim_next);
  Status mark_done(int64_t event_id);
  // Back to pending, due at next_attempt_at_ms, remembering the error.
  Status mark_retry(int64_t event_id, std::string_view error, int64_t next_attempt_at_ms);
  Status mark_dead(int64_t event_id, std::string_view error);
  // Returns events in processing claimed at or before claimed_before_ms to pending, except those in
  // `held` (events a live thread still works on, e.g. one stuck in a CRM call). Returns how many.
  Result<int> reclaim(int64_t claimed_before_ms, const std::vector<int64_t>& held = {});
  // Returns events in processing whose claim lease ended (lease_until <= as_of_ms, default now) to
  // pending, except those in `held`. Any host may call it. Returns how many. A caller that gathers
  // `held` first passes the time read before it: an event claimed after that has a lease that ends
  // after it, so it is never taken from a claim `held` could not list yet.
  Result<int> reclaim_expired(const std::vector<int64_t>& held = {}, std::optional<int64_t> as_of_ms = std::nullopt);
  // Extends the lease of every event still in processing under these claims to now +
  // claim_lease_ms. Returns how many events it extended.
  Result<int> renew(const std::vector<std::string>& claim_tokens);
  int64_t claim_lease_ms() const { return options_.claim_lease_ms; }
  // Gives claimed events back before any work on them (a stuck worker's batch, WorkerPool): each
  // goes back to pending as it was before that claim (attempts - 1, due when it was), so another
  // worker takes it at once. Only rows still in processing under that same claim (claimed_at) change.
  // Returns how many did.
  Result<int> release(const std::vector<std::pair<int64_t, int64_t>>& event_and_claimed_at_ms);
  // Deletes done events processed before processed_before_ms, at most `limit` in one transaction
  // (so ingest never waits long behind it). Dead letters are kept, and so are events whose body is
  // the stored content of a meeting (sync_meetings.content_event_id): their body is that meeting's
  // only copy. Returns how many.
  Result<int> purge_done(int64_t processed_before_ms, int limit = 500);
  // The earliest next_attempt_at of a pending event, if any.
  Result<std::optional<int64_t>> next_due_ms();
  // Body log housekeeping (no-op without body_dir): deletes every segment no writer owns and no
  // row references; in a segment last written inline_after_ms ago or more whose rows are all pending
  // or dead, copies their bodies into the rows first. A segment whose bodies cannot be read is
  // kept (and logged). Safe beside writers and collectors in other processes.
  Result<BodyCollection> collect_body_segments();

  // ---- commands ----
  Result<std::vector<InboxEvent>> list(const InboxFilter& filter);
  // kNotFound when there is no such event.
  Result<InboxEvent> get(int64_t event_id, bool with_body = false);
  // Puts a done or dead (or pending) event back to pending, due now, attempts 0. kNotFound for an
  // unknown id; kFailedPrecondition while a worker is processing it.
  Status replay(int64_t event_id);
  // Replays every dead letter (of one integration when integration_id != 0). Returns how many.
  Result<int> replay_dead(int64_t integration_id = 0);
  // Number of events per status: {pending, processing, done, dead}.
  Result<std::vector<std::pair<std::string, int64_t>>> counts();

  Clock& clock() const { return clock_; }
  Db& db() const { return db_; }
  // Whether WAL checkpoints run on the inbox's own connection (then no connection of the process
  // needs SQLite's automatic checkpoints on its commit path).
  bool checkpoints_in_background() const { return checkpoint_db_ != nullptr; }

 private:
  struct Pending;
  void writer_loop();
  void write_batch(std::vector<Pending*>& batch);
  // PostgreSQL with bodies in the rows: the batch's rows in one statement per 512 (REQUIRES: in a
  // transaction on db_).
  Status insert_rows_postgres(std::vector<Pending*>& batch);
  void checkpoint_loop();
  std::chrono::steady_clock::time_point commit_deadline() const;
  Status sync_wal();  // fdatasync of the database's -wal file (collector, synchronous=NORMAL)
  Status load_body(InboxEvent& e, const std::string& segment, int64_t offset, int64_t length);
  struct BodyAt {
    size_t index;
    std::string segment;
    int64_t offset, length;
  };
  // Claims up to max due rows in one statement; bodies in the log are listed in refs. REQUIRES:
  // inside a transaction on db_ (SQLite: an immediate one), or with() on PostgreSQL.
  Status claim_rows(int max, std::vector<InboxEvent>* out, std::vector<BodyAt>* refs);
  void load_bodies(std::vector<InboxEvent>& events, const std::vector<BodyAt>& refs);
  // Every outcome in one statement; with a claim token only while that claim holds the event.
  // Returns how many of the outcomes with a claim token it did not apply (their claim was taken
  // over). lock_recordings (PostgreSQL, inside finish_batch's transaction): the same statement
  // first takes the fleet's write lock shared and the lock of each recording of these events, in
  // key order, until the transaction ends.
  Result<size_t> mark_all(const std::vector<EventOutcome>& outcomes, bool lock_recordings = false);
  // PostgreSQL: tells the other hosts' inboxes that events became due (pg_notify, sent at commit).
  Status notify_others();
  void listen_loop();
  Result<int> inline_bodies(const std::string& segment, const SegmentLock& lock, const char* movable);
  Result<bool> has_meetings_table();

  Db& db_;
  Clock& clock_;
  LogThrottle commit_failures_{60'000};  // batches whose commit failed (the store down)
  InboxOptions options_;
  std::mutex listener_mu_;
  std::function<void()> listener_;  // guarded by listener_mu_

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending*> queue_;  // guarded by mu_
  bool stop_ = false;            // guarded by mu_
  std::thread writer_;
  std::unique_ptr<BodyLog> log_;         // null without body_dir
  std::vector<BodyRecord> records_;      // writer thread: the batch's bodies
  std::vector<int64_t> offsets_;         // writer thread: where append() put them
  std::vector<int> slots_;               // writer thread: each delivery's record (or why none)
  std::string segment_;                  // writer thread: the segment append() used

  const std::string owner_;             // this inbox's random id: its claim tokens start with it
  std::atomic<uint64_t> claims_{0};      // claim numbers
  std::unique_ptr<DbNotifications> notifications_;  // PostgreSQL: LISTEN, used by listener_thread_
  std::atomic<bool> listen_stop_{false};
  std::thread listener_thread_;

  std::unique_ptr<Db> checkpoint_db_;  // own connection, used by checkpointer_ only
  std::mutex ckpt_mu_;
  std::condition_variable ckpt_cv_;
  size_t ckpt_bytes_ = 0;   // guarded by ckpt_mu_: estimated WAL bytes committed since the last checkpoint
  bool ckpt_stop_ = false;  // guarded by ckpt_mu_
  std::thread checkpointer_;
};

// JSON array of events (no bodies), as the list command prints them.
std::string events_to_json(const std::vector<InboxEvent>& events);

// Which script versions made each event's CRM operations (issue 15; InboxEvent::script_versions):
// (event id, JSON array of script version ids) pairs, set on the events' rows by ONE statement
// however many there are (the last pair of an id wins). REQUIRES: migrate_webhooks(db), and inside
// transaction() or with() on db (a worker's batch: its transaction).
Status set_script_versions(Db& db, const std::vector<std::pair<int64_t, std::string>>& versions);

}  // namespace fb::detail

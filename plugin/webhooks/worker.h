// worker.h: the threads that process the webhook inbox.
//
// Each worker claims a batch of due events, hands the batch to an InboxEventHandler (in production
// the MeetingEventHandler: parse each body once, map what needs mapping, run the webhook reaction)
// and records the outcomes. A batch's bookkeeping is ONE write transaction (Inbox::finish_batch):
// what the handler records (the meetings and their mapped versions), every event's outcome, and the
// claim of the next batch, so in steady state a worker commits once per batch. The outcomes:
//   ok                       -> done
//   failed, attempts left    -> pending again after backoff: min(backoff_max, base * 2^(n-1)), of
//                               which the upper half is random jitter
//   failed, attempts used up -> dead (dead letter) with the last error, and the event
//   or failed with kMalformed   "webhook_dead_lettered" on the EventBus
// When the handler's writes cannot be recorded (the store refuses one event's meeting, say), the
// batch is handled and recorded again one event at a time (record_one_by_one), so that only the
// refused event fails; not when the store is away, and not past two failing alone in a row.
// Done events older than retention_ms are deleted (checked every purge_interval_ms; dead letters
// stay until replayed), then the inbox's body log is collected (Inbox::collect_body_segments). An
// event whose body the log cannot give back (kIo: damaged or missing) is dead-lettered at once. start() first returns events left in "processing" by a crashed process to
// "pending" (SQLite: one process runs workers per database file; PostgreSQL: only events whose
// claim lease ran out, the other hosts' claims are alive); while running, the pool renews the claim
// leases of the events its threads hold (a stuck one keeps its events) and returns events whose
// lease ran out, a dead host's, to pending (Inbox::reclaim_expired). The pool subscribes to its inbox's commit listener (one pool per
// inbox), so new events wake the workers at once instead of at the next poll.
//
// Stuck workers (issue 10): a script's budget stops a script, but not host code it called (a CRM
// operation that never returns). A supervisor thread watches the batches: one still processing
// event_deadline_ms after it started is stuck, and, once per stuck batch,
//   - its events the handler has not taken (BatchClaim: a handler takes an event right before its
//     CRM calls, and with it the batch's other events of the same integration, which would hang
//     on the same CRM) are given up: back to pending at once (Inbox::release), for other workers;
//   - the host gets a "worker_stuck" event (tenant, user and integration of the event it is stuck
//     on, the inbox event id, seconds busy, how many events were released) and the counter in
//     stats() grows;
//   - the thread is written off and a replacement thread starts, at most stuck_replacements of
//     them at a time (so at most workers + stuck_replacements threads; past that the remaining
//     workers carry on alone and a returning thread takes its place back).
// When the stuck call returns, the thread records only the events it still owns (the ones it took),
// claims nothing more, and exits (or stays, when the pool is short of workers). Given-up events are
// skipped by the handler and never marked by it: another worker maps them, once.
// stop() waits for every thread, except that it gives up on a thread written off as stuck after
// stuck_stop_wait_ms: such a thread is detached and the event it is stuck on stays in processing
// (reclaimed at the next start). When its call returns it touches nothing of the pool, but the
// handler (the pipeline, the scripts, the host's CRM callback) runs on: a host that stops the pool
// in that state should exit the process rather than destroy what that call uses.
//
// Threading: thread-safe. Inbox, handler, clock, random, bus and directory must outlive the pool.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/event_bus.h"
#include "core/integration_directory.h"
#include "core/log.h"
#include "core/latency_histogram.h"
#include "core/random.h"
#include "fathom_bridge/config.h"
#include "fathom_bridge/status.h"
#include "webhooks/inbox.h"

namespace fb::detail {

// What a worker does with one event. A non-ok Status means "retry later"; its message becomes the
// event's last_error, so it must not contain secrets. Thread-safe: called by several workers.
// What a handler writes for a batch, run inside the worker's transaction on the inbox's Db (before
// the events are marked). Destroyed after that commit, or after its failure.
class InboxBatchWork {
 public:
  virtual ~InboxBatchWork() = default;
  virtual Status record() = 0;
  // What the work knows of each event that its outcome carries (EventOutcome::script_versions),
  // so that the marks write it in their statement, not record() in one more. The worker calls it
  // before finish_batch; a caller that records without marks (MeetingEventHandler::handle) writes
  // it itself.
  virtual void annotate(std::vector<EventOutcome>& /*outcomes*/) const {}
};

// The events of one batch a worker is processing, shared with the pool's supervisor (see "Stuck
// workers" above). Thread-safe.
class BatchClaim {
 public:
  explicit BatchClaim(const std::vector<InboxEvent>& events);
  BatchClaim(const BatchClaim&) = delete;
  BatchClaim& operator=(const BatchClaim&) = delete;

  // Handler: call right before work with side effects on the event (its CRM calls). True: it is
  // this worker's, and so are the batch's other events of its integration from now on. False: it
  // was given up (another worker has it): skip it, write nothing for it.
  bool take(int64_t event_id);
  // Handler: keeps every event (a handler that cannot skip events part way).
  void take_all();
  // Handler: `release` is called with the integrations whose events were given up (at once for
  // those given up already), always under the claim's lock, so never after the worker closed the
  // claim: let go of what the batch holds for them (recording locks). Quick; no call back in here.
  void on_give_up(std::function<void(const std::vector<int64_t>& integrations)> release);
  bool given_up(int64_t event_id) const;

 private:
  friend class WorkerPool;
  enum class State { kOpen, kTaken, kGivenUp };
  struct Entry {
    int64_t id;
    int64_t integration_id;
    int64_t claimed_at_ms;
    State state;
    std::string claim_token;
  };
  struct GiveUp {
    bool closed = false;                               // the worker finished first: nothing given up
    std::vector<std::pair<int64_t, int64_t>> events;   // (id, claimed_at_ms) given up now
    int64_t current_event = 0;                         // the event it is on (the one taken last)
    int64_t current_integration = 0;
  };
  // Gives up every event not taken; abandon: stop() lets go of the thread too.
  GiveUp give_up(bool abandon);
  // Worker, after the handler returned: no give-up after this. Returns whether stop() abandoned
  // the thread (then it must not touch the pool); *given_up gets the ids given up.
  bool close(std::vector<int64_t>* given_up);

  mutable std::mutex mu_;
  std::vector<Entry> entries_;                                        // guarded by mu_
  std::function<void(const std::vector<int64_t>&)> release_;          // guarded by mu_
  int64_t current_ = 0;                                               // guarded by mu_
  bool closed_ = false;                                               // guarded by mu_
  bool abandoned_ = false;                                            // guarded by mu_
  int64_t started_ms_ = 0;  // set before the claim is shared
};

class InboxEventHandler {
 public:
  virtual ~InboxEventHandler() = default;
  virtual Status handle(const InboxEvent& event) = 0;
  // The batch form: sets (*results)[i] for events[i] (results is sized by the caller) and returns
  // what to record in the worker's transaction (null: nothing). The default calls handle() for
  // each event and records nothing.
  virtual std::unique_ptr<InboxBatchWork> handle_batch(const std::vector<const InboxEvent*>& events,
                                                       std::vector<Status>* results);
  // What the worker calls: handle_batch under a BatchClaim. A result for an event the claim gave up
  // is ignored, and the returned work must record nothing for it. The default takes every event
  // first (nothing can be given up) and calls handle_batch.
  virtual std::unique_ptr<InboxBatchWork> handle_claimed(const std::vector<const InboxEvent*>& events,
                                                         std::vector<Status>* results, BatchClaim& claim);
};

struct WorkerOptions {
  int workers = 2;                         // threads; 0 = none (run_once only)
  int max_attempts = 8;                    // then dead letter
  int64_t backoff_base_ms = 1000;
  int64_t backoff_max_ms = 3600 * 1000;
  // Events per batch: one transaction records a batch (and claims the next), so bigger batches
  // share that commit; 32 keeps a batch's mapping time short (bench/README.md, "End to end").
  int claim_batch = 32;
  int64_t poll_interval_ms = 1000;         // longest sleep when nothing is due
  bool reclaim_on_start = true;
  // Tests only: called on the worker's thread right after each batch's transaction committed.
  std::function<void()> on_batch_committed;
  int64_t retention_ms = 30LL * 86'400'000;  // delete done events older than this; 0 = keep them
  int64_t purge_interval_ms = 3'600'000;     // how often the workers look for such events
  // A batch still processing this long after it started means its worker is stuck (a CRM call
  // that never returns): see "Stuck workers" above. webhooks.event_deadline_s; 0 = not watched.
  int64_t event_deadline_ms = 300'000;
  int stuck_replacements = -1;             // threads started for stuck ones at a time; -1: `workers`
  int64_t stuck_stop_wait_ms = 2000;       // how long stop() waits for a thread written off as stuck
  // Called with the number of threads written off as stuck (not returned yet) whenever it changes,
  // under the pool's lock: quick, no call into the pool. The Bridge lets the Lua state pool grow by
  // that much (ScriptHost::set_extra_states): each stuck thread keeps its state.
  std::function<void(int)> on_stuck_threads;
  static WorkerOptions from(const WebhookConfig& config);
};

struct WorkerStats {
  int64_t processed = 0;      // events done
  int64_t retried = 0;        // failures scheduled for another attempt
  int64_t dead_lettered = 0;
  int64_t stuck = 0;          // batches found stuck past event_deadline_ms ("worker_stuck" events)
  int64_t released = 0;       // events a stuck batch gave back to pending for other workers
  int stuck_threads = 0;      // threads written off as stuck that have not returned yet
};

// What the workers are doing now, for readiness checks (/readyz): a worker whose event has been
// processing far longer than any event should (a script that escaped its budget, a host call that
// never returns) is stuck.
struct WorkerProgress {
  int busy = 0;                    // batches of events being processed at this moment
  int64_t oldest_started_ms = 0;   // clock ms when the longest-running of them started; 0: none
  int64_t oldest_event_id = 0;     // that batch's first event
};

class WorkerPool {
 public:
  WorkerPool(Inbox& inbox, InboxEventHandler& handler, Clock& clock, Random& random, WorkerOptions options,
             EventBus* bus = nullptr, IntegrationDirectory* directory = nullptr);
  // Stops the workers after their current events.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Reclaims abandoned events (reclaim_on_start) and starts the threads. Idempotent.
  Status start();
  // Stops and joins the threads; events being processed are finished first.
  void stop();
  // Wakes idle workers (new or replayed events).
  void notify();
  // Processes up to max due events on the calling thread; returns how many were handled (any
  // outcome). For hosts that drive time and for tests.
  Result<int> run_once(int max = 100);

  // ---- commands ----
  Result<std::vector<InboxEvent>> list(const InboxFilter& filter) { return inbox_.list(filter); }
  // Puts one event back to pending and wakes the workers.
  Status replay(int64_t event_id);
  // Replays every dead letter (of one integration when integration_id != 0); returns how many.
  Result<int> replay_dead_letters(int64_t integration_id = 0);

  WorkerStats stats() const;
  // Heartbeat: which events are being processed and since when. Lock-free; any thread.
  WorkerProgress progress() const;
  // Time each batch of events took in a worker (handler and recorded outcome), any outcome.
  const LatencyHistogram& processing_latency() const { return processing_latency_; }
  // The delay before attempt `attempts + 1` after `attempts` failures (with jitter).
  int64_t backoff_ms(int attempts);
  // Deletes done events older than retention_ms now (all of them, in chunks); returns how many.
  Result<int> purge_expired();

 private:
  struct WorkerThread {
    std::thread thread;
    std::shared_ptr<BatchClaim> claim;  // the batch it is on; guarded by mu_
    // Claimed and not yet on: the next batch, between its claim's commit and process_batch (the
    // thread may purge meanwhile). Its leases are renewed and it is never reclaimed, like claim's.
    std::vector<std::pair<int64_t, std::string>> next;  // (event id, claim token); guarded by mu_
    bool written_off = false;           // guarded by mu_: found stuck, replaced
    bool exited = false;                // guarded by mu_: left loop()
    bool abandoned = false;             // guarded by mu_: stop() gave up on it (detached)
    std::chrono::steady_clock::time_point written_off_at;
  };
  enum class Fate { kOn, kWrittenOff, kAbandoned };
  void loop(WorkerThread* self);
  void start_thread_locked();  // REQUIRES: mu_ held
  // Records `batch` as self's next batch (WorkerThread::next); no-op without self.
  void hold_next(WorkerThread* self, const std::vector<InboxEvent>& batch);
  // Handles a claimed batch, commits its bookkeeping together with the claim of up to claim_next
  // further events, and returns those (empty when claim_next is 0 or the commit failed). With
  // self (a pool thread), the batch is watched by the supervisor; *fate says what became of the
  // thread meanwhile (written off: it claimed nothing more; abandoned: it touched nothing).
  // *unrecorded: the error, when the batch's outcome could not be recorded at first. split: a batch
  // whose handler writes failed is then recorded one by one (record_one_by_one).
  std::vector<InboxEvent> process_batch(std::vector<InboxEvent> events, int claim_next,
                                        WorkerThread* self = nullptr, Fate* fate = nullptr,
                                        Status* unrecorded = nullptr, bool split = true);
  // A batch whose handler writes failed (`error`): one event's writes may be what failed (a
  // meeting the store refuses). So that it does not take its batch with it toward retries and dead
  // letters, each event is handled and recorded again alone (the CRM answers the repeated calls
  // from their idempotency keys, as on any retry). Two in a row failing alone look like the store,
  // not an event: the rest are then one batch again; a store gone away leaves the rest claimed. A
  // thread written off meanwhile (stuck on one of them) gives the rest back to pending, for the
  // other workers, their attempt not counted.
  std::vector<InboxEvent> record_one_by_one(std::vector<InboxEvent> events, const Status& error, int claim_next,
                                            WorkerThread* self, Fate* fate);
  void supervise();
  // Renews the claim leases of the events the pool's threads hold and returns events whose lease
  // ran out (any host's) to pending; at most every min(poll_interval_ms, lease / 3).
  void maintain_claims();
  // Finds batches past event_deadline_ms: gives up their untaken events, writes the thread off
  // (and starts a replacement unless stopping), releases the events and reports. Supervisor, or
  // stop() once the supervisor has stopped.
  void check_stuck();
  void release_given_up();
  void announce_stuck(const BatchClaim::GiveUp& g, int64_t busy_ms, size_t batch_size);
  // The outcome of a failed attempt: retry after backoff, or dead.
  EventOutcome failed(const InboxEvent& e, const Status& s);
  // After its batch committed: counts and logs a dead letter.
  void announce_dead(const InboxEvent& e, const std::string& error);
  // The webhook_dead_lettered events of a batch's kDead outcomes (none without a bus).
  std::vector<Event> dead_letter_events(const std::vector<InboxEvent>& events,
                                        const std::vector<EventOutcome>& outcomes) const;
  // Emits them (inside the batch's transaction: stored with it, delivered after its commit).
  Status tell(const std::vector<Event>& events) const;

  Inbox& inbox_;
  InboxEventHandler& handler_;
  Clock& clock_;
  Random& random_;
  WorkerOptions options_;
  EventBus* bus_;
  IntegrationDirectory* directory_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wake_gen_ = 0;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // guarded by mu_
  std::list<WorkerThread> threads_;  // guarded by mu_ (list: a thread keeps its entry's address)
  int active_ = 0;                   // guarded by mu_: threads not written off and not exited
  int written_off_ = 0;              // guarded by mu_: written off, not exited
  std::thread supervisor_;
  std::vector<std::pair<int64_t, int64_t>> to_release_;  // supervisor (then stop()): given up, not yet released
  std::atomic<int64_t> stuck_{0};
  std::atomic<int64_t> released_{0};
  std::atomic<int64_t> last_stale_check_ms_{0};
  std::atomic<int64_t> last_purge_ms_{0};
  LogThrottle claim_failures_{60'000};  // claims that could not read the store
  LogThrottle lease_failures_{60'000};  // lease renewals and reclaims that could not reach the store

  std::atomic<int64_t> processed_{0};
  std::atomic<int64_t> retried_{0};
  std::atomic<int64_t> dead_{0};

  // Batches being processed: a slot holds the batch's first event id (0: free) and its start.
  static constexpr size_t kBusySlots = 64;
  std::array<std::atomic<int64_t>, kBusySlots> busy_event_{};
  std::array<std::atomic<int64_t>, kBusySlots> busy_since_ms_{};
  LatencyHistogram processing_latency_;
  friend class BusyMark;
};

}  // namespace fb::detail

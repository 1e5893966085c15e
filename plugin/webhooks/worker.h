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
// Done events older than retention_ms are deleted (checked every purge_interval_ms; dead letters
// stay until replayed), then the inbox's body log is collected (Inbox::collect_body_segments). An
// event whose body the log cannot give back (kIo: damaged or missing) is dead-lettered at once. start() first returns events left in "processing" by a crashed process to
// "pending" (one process
// runs workers per database); while running, events stuck in processing longer than
// stale_claim_ms are reclaimed too. The pool subscribes to its inbox's commit listener (one pool per
// inbox), so new events wake the workers at once instead of at the next poll.
//
// Threading: thread-safe. Inbox, handler, clock, random, bus and directory must outlive the pool.
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/event_bus.h"
#include "core/integration_directory.h"
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
  int64_t stale_claim_ms = 30 * 60 * 1000; // reclaim events processing longer than this
  bool reclaim_on_start = true;
  // Tests only: called on the worker's thread right after each batch's transaction committed.
  std::function<void()> on_batch_committed;
  int64_t retention_ms = 30LL * 86'400'000;  // delete done events older than this; 0 = keep them
  int64_t purge_interval_ms = 3'600'000;     // how often the workers look for such events
  static WorkerOptions from(const WebhookConfig& config);
};

struct WorkerStats {
  int64_t processed = 0;      // events done
  int64_t retried = 0;        // failures scheduled for another attempt
  int64_t dead_lettered = 0;
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
  void loop();
  // Handles a claimed batch, commits its bookkeeping together with the claim of up to claim_next
  // further events, and returns those (empty when claim_next is 0 or the commit failed).
  std::vector<InboxEvent> process_batch(std::vector<InboxEvent> events, int claim_next);
  // The outcome of a failed attempt: retry after backoff, or dead.
  EventOutcome failed(const InboxEvent& e, const Status& s);
  void announce_dead(const InboxEvent& e, const std::string& error);

  Inbox& inbox_;
  InboxEventHandler& handler_;
  Clock& clock_;
  Random& random_;
  WorkerOptions options_;
  EventBus* bus_;
  IntegrationDirectory* directory_;

  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t wake_gen_ = 0;  // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  bool started_ = false;   // guarded by mu_
  std::vector<std::thread> threads_;
  std::atomic<int64_t> last_stale_check_ms_{0};
  std::atomic<int64_t> last_purge_ms_{0};

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

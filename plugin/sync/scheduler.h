// scheduler.h: runs incremental sync for every active integration on an interval, and the
// token keep-alive sweep, either on its own thread (start/stop) or driven by the host (tick).
//
// An integration is due when interval_s has passed since its last sync attempt (sync_state
// last_attempt_at, so a restart does not resync everything at once). A due run is claimed in the
// store before it starts (SyncEngine::claim_due_run), so every host of a fleet may run a scheduler:
// each due time is synced once, by whichever host claims it first. Due integrations run up to
// `concurrency` at once (each account has its own rate limit, so they do not slow each other); a
// failure is in the job log and the integration is tried again next interval.
// The keep-alive hook (the facade wires it to the token manager's sweep) runs every
// keepalive_interval_s. stop() interrupts a sync that is waiting on the rate limit or a backoff
// (that job ends "cancelled", its checkpoint kept) and joins the thread.
//
// Thread-safe: tick() and stop() may be called from any thread; do not call tick() while the
// built-in thread runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/log.h"
#include "fathom_bridge/config.h"
#include "sync/sync_engine.h"

namespace fb::detail {

struct SchedulerOptions {
  int interval_s = 3600;            // sync.interval_s
  int keepalive_interval_s = 900;   // how often the keep-alive hook runs
  int poll_ms = 1000;               // how often the thread looks for due work
  int concurrency = 4;              // sync.scheduler_concurrency: integrations synced at once
  // sync.interval_s (keep-alive every min(900 s, interval_s)), sync.scheduler_concurrency.
  static SchedulerOptions from_config(const Config& config);
};

struct TickReport {
  int syncs_run = 0;      // run() calls that produced a job
  int syncs_failed = 0;   // jobs with status "failed" (or run() errors other than kConflict)
  bool keepalive_ran = false;
};

class SyncScheduler {
 public:
  // engine, directory and clock must outlive the scheduler.
  SyncScheduler(SyncEngine& engine, IntegrationDirectory& directory, Clock& clock, SchedulerOptions options = {},
                std::function<void()> keepalive = {});
  ~SyncScheduler();  // stop()
  SyncScheduler(const SyncScheduler&) = delete;
  SyncScheduler& operator=(const SyncScheduler&) = delete;

  // Starts the scheduler thread (idempotent).
  void start();
  // Stops the thread, interrupting a waiting sync; idempotent. start() may be called again.
  void stop();
  bool running() const { return thread_.joinable(); }

  // Runs what is due at now_s (Unix seconds): on the calling thread, plus up to concurrency - 1
  // threads of its own while there is more than one due integration. Returns when all are done.
  TickReport tick(int64_t now_s);

 private:
  void loop();

  SyncEngine& engine_;
  IntegrationDirectory& directory_;
  Clock& clock_;
  const SchedulerOptions options_;
  std::function<void()> keepalive_;
  int64_t last_keepalive_ = 0;  // touched only by the ticking thread
  std::atomic<bool> stop_{false};
  LogThrottle state_failures_{60'000};  // ticks that could not read sync states
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace fb::detail

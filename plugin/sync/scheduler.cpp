#include "sync/scheduler.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/log.h"

namespace fb::detail {

SchedulerOptions SchedulerOptions::from_config(const Config& config) {
  SchedulerOptions o;
  o.interval_s = config.sync.interval_s;
  o.keepalive_interval_s = std::min(900, config.sync.interval_s);
  o.concurrency = config.sync.scheduler_concurrency;
  return o;
}

SyncScheduler::SyncScheduler(SyncEngine& engine, IntegrationDirectory& directory, Clock& clock,
                             SchedulerOptions options, std::function<void()> keepalive)
    : engine_(engine), directory_(directory), clock_(clock), options_(options), keepalive_(std::move(keepalive)) {}

SyncScheduler::~SyncScheduler() { stop(); }

void SyncScheduler::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
}

void SyncScheduler::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void SyncScheduler::loop() {
  while (!stop_) {
    tick(clock_.now_s());
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(options_.poll_ms), [this] { return stop_.load(); });
  }
}

TickReport SyncScheduler::tick(int64_t now_s) {
  TickReport report;
  // Waits inside a sync (rate limit, backoff) see stop_ through this scope.
  CallScope scope(&stop_);
  if (keepalive_ && (last_keepalive_ == 0 || now_s - last_keepalive_ >= options_.keepalive_interval_s)) {
    last_keepalive_ = now_s;
    report.keepalive_ran = true;
    try {
      keepalive_();
    } catch (const std::exception& e) {
      FB_LOG(kError, "sync") << "keep-alive hook threw: " << e.what();
    }
  }
  std::vector<int64_t> due;
  int64_t unreadable = 0;
  Status first_unreadable;
  int64_t first_unreadable_id = 0;
  for (const IntegrationInfo& info : directory_.list_active()) {
    auto st = engine_.state(info.id);
    if (!st.ok()) {
      if (unreadable++ == 0) first_unreadable = st.status(), first_unreadable_id = info.id;
      continue;
    }
    if (st->last_attempt_at > 0 && now_s - st->last_attempt_at < options_.interval_s) continue;
    due.push_back(info.id);
  }
  // One line a tick at most (not one per integration), and while it lasts one a minute.
  if (unreadable > 0) {
    if (int64_t more = 0; state_failures_.admit(clock_.mono_ms(), &more, first_unreadable.message())) {
      FB_LOG(kError, "sync") << "reading the sync state of " << unreadable << " integration(s) failed (integration "
                             << first_unreadable_id << ": " << first_unreadable << ")"
                             << LogThrottle::left_out_note(more);
    }
  } else if (int64_t failed = state_failures_.end_run()) {
    FB_LOG(kInfo, "sync") << "sync states can be read again after " << failed << " failed scheduler ticks";
  }
  std::atomic<size_t> next{0};
  std::atomic<int> run{0}, failed{0};
  auto work = [&] {
    // Waits inside a sync (rate limit, backoff) see stop_ through this thread's scope.
    CallScope thread_scope(&stop_);
    for (size_t i = next++; i < due.size() && !stop_; i = next++) {
      // Claimed in the store: of all the schedulers of a fleet, one runs each due time.
      auto claimed = engine_.claim_due_run(due[i], now_s, options_.interval_s);
      if (!claimed.ok()) {
        ++failed;
        FB_LOG(kWarn, "sync") << "claiming the scheduled sync of integration " << due[i] << ": " << claimed.status();
        continue;
      }
      if (!*claimed) continue;  // another host (or scheduler) runs this one
      auto job = engine_.incremental(due[i], "scheduler");
      if (!job.ok()) {
        if (!job.status().is(Code::kConflict)) {
          ++failed;
          FB_LOG(kWarn, "sync") << "scheduled sync of integration " << due[i] << ": " << job.status();
        }
        continue;
      }
      ++run;
      if (job->status == "failed") ++failed;
    }
  };
  // The calling thread is one of the workers.
  size_t workers = std::min(due.size(), static_cast<size_t>(std::max(1, options_.concurrency)));
  std::vector<std::thread> threads;
  for (size_t i = 1; i < workers; ++i) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  report.syncs_run = run;
  report.syncs_failed = failed;
  return report;
}

}  // namespace fb::detail

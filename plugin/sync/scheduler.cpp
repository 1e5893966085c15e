#include "sync/scheduler.h"

#include <algorithm>

#include "core/log.h"

namespace fb::detail {

SchedulerOptions SchedulerOptions::from_config(const Config& config) {
  SchedulerOptions o;
  o.interval_s = config.sync.interval_s;
  o.keepalive_interval_s = std::min(900, config.sync.interval_s);
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
  for (const IntegrationInfo& info : directory_.list_active()) {
    if (stop_) break;
    auto st = engine_.state(info.id);
    if (!st.ok()) {
      FB_LOG(kError, "sync") << "reading the sync state of integration " << info.id << ": " << st.status();
      continue;
    }
    if (st->last_attempt_at > 0 && now_s - st->last_attempt_at < options_.interval_s) continue;
    auto job = engine_.incremental(info.id, "scheduler");
    if (!job.ok()) {
      if (!job.status().is(Code::kConflict)) {
        ++report.syncs_failed;
        FB_LOG(kWarn, "sync") << "scheduled sync of integration " << info.id << ": " << job.status();
      }
      continue;
    }
    ++report.syncs_run;
    if (job->status == "failed") ++report.syncs_failed;
  }
  return report;
}

}  // namespace fb::detail

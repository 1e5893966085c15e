#include "webhooks/worker.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/thread_name.h"

namespace fb::detail {

namespace {
constexpr size_t kMaxErrorBytes = 1000;
}

WorkerOptions WorkerOptions::from(const WebhookConfig& c) {
  WorkerOptions o;
  o.workers = c.workers;
  o.max_attempts = c.max_attempts;
  o.backoff_base_ms = c.backoff_base_ms;
  o.backoff_max_ms = c.backoff_max_ms;
  o.retention_ms = static_cast<int64_t>(c.retention_days) * 86'400'000;
  return o;
}

WorkerPool::WorkerPool(Inbox& inbox, InboxEventHandler& handler, Clock& clock, Random& random, WorkerOptions options,
                       EventBus* bus, IntegrationDirectory* directory)
    : inbox_(inbox), handler_(handler), clock_(clock), random_(random), options_(options), bus_(bus),
      directory_(directory) {
  options_.max_attempts = std::max(1, options_.max_attempts);
  options_.claim_batch = std::max(1, options_.claim_batch);
  options_.backoff_base_ms = std::max<int64_t>(1, options_.backoff_base_ms);
  options_.backoff_max_ms = std::max(options_.backoff_base_ms, options_.backoff_max_ms);
  inbox_.set_commit_listener([this] { notify(); });
}

WorkerPool::~WorkerPool() {
  inbox_.set_commit_listener(nullptr);
  stop();
}

Status WorkerPool::start() {
  std::lock_guard lk(mu_);
  if (started_) return Status::Ok();
  if (options_.reclaim_on_start) {
    FB_ASSIGN(int n, inbox_.reclaim(clock_.now_ms()));
    if (n > 0) {
      FB_LOG(kWarn, "webhooks") << "reclaimed " << n << " webhook event(s) left in processing by a crash";
    }
  }
  stopping_ = false;
  started_ = true;
  for (int i = 0; i < options_.workers; ++i) threads_.emplace_back([this] {
    name_this_thread("fb-worker");
    loop();
  });
  return Status::Ok();
}

void WorkerPool::stop() {
  {
    std::lock_guard lk(mu_);
    if (!started_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  std::lock_guard lk(mu_);
  started_ = false;
}

void WorkerPool::notify() {
  {
    std::lock_guard lk(mu_);
    ++wake_gen_;
  }
  cv_.notify_all();
}

int64_t WorkerPool::backoff_ms(int attempts) {
  int shift = std::clamp(attempts - 1, 0, 40);
  int64_t d = options_.backoff_base_ms;
  for (int i = 0; i < shift && d < options_.backoff_max_ms; ++i) d *= 2;
  d = std::min(d, options_.backoff_max_ms);
  // "Equal jitter": half fixed, half random, so retries of events that failed together spread out.
  int64_t half = d / 2;
  return d - half + static_cast<int64_t>(random_.next_unit() * static_cast<double>(half + 1));
}

std::unique_ptr<InboxBatchWork> InboxEventHandler::handle_batch(const std::vector<const InboxEvent*>& events,
                                                                std::vector<Status>* results) {
  for (size_t i = 0; i < events.size(); ++i) (*results)[i] = handle(*events[i]);
  return nullptr;
}

void WorkerPool::announce_dead(const InboxEvent& e, const std::string& error) {
  dead_.fetch_add(1);
  FB_LOG(kWarn, "webhooks") << "webhook event " << e.id << " (integration " << e.integration_id << ", recording "
                            << e.recording_id << ") dead-lettered after " << e.attempts << " attempt(s): " << error;
  if (!bus_) return;
  Event ev;
  ev.type = "webhook_dead_lettered";
  ev.integration_id = e.integration_id;
  if (directory_) {
    if (auto info = directory_->get(e.integration_id); info.ok()) {
      ev.tenant_id = info->tenant_id;
      ev.user_id = info->user_id;
    }
  }
  ev.detail = "webhook event " + std::to_string(e.id) + " failed " + std::to_string(e.attempts) +
              " time(s); last error: " + error;
  ev.data_json = nlohmann::json{{"event_id", e.id},
                                {"webhook_id", e.webhook_id},
                                {"recording_id", e.recording_id},
                                {"attempts", e.attempts},
                                {"error", error}}
                     .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  bus_->emit(ev);
}

// Marks an event as being processed for progress() for its lifetime, and times it.
class BusyMark {
 public:
  BusyMark(WorkerPool& pool, int64_t event_id) : pool_(pool), start_ns_(LatencyHistogram::now_ns()) {
    for (size_t i = 0; i < WorkerPool::kBusySlots; ++i) {
      int64_t free = 0;
      if (pool_.busy_event_[i].compare_exchange_strong(free, event_id, std::memory_order_relaxed)) {
        pool_.busy_since_ms_[i].store(pool_.clock_.now_ms(), std::memory_order_relaxed);
        slot_ = static_cast<int>(i);
        break;
      }
    }
  }
  ~BusyMark() {
    if (slot_ >= 0) {
      pool_.busy_since_ms_[slot_].store(0, std::memory_order_relaxed);
      pool_.busy_event_[slot_].store(0, std::memory_order_relaxed);
    }
    pool_.processing_latency_.observe_since(start_ns_);
  }
  BusyMark(const BusyMark&) = delete;
  BusyMark& operator=(const BusyMark&) = delete;

 private:
  WorkerPool& pool_;
  int64_t start_ns_;
  int slot_ = -1;  // -1: more events at once than slots (not tracked)
};

WorkerProgress WorkerPool::progress() const {
  WorkerProgress p;
  for (size_t i = 0; i < kBusySlots; ++i) {
    int64_t id = busy_event_[i].load(std::memory_order_relaxed);
    if (id == 0) continue;
    int64_t since = busy_since_ms_[i].load(std::memory_order_relaxed);
    if (since == 0) since = clock_.now_ms();  // claimed a moment ago, start not stored yet
    ++p.busy;
    if (p.oldest_started_ms == 0 || since < p.oldest_started_ms) {
      p.oldest_started_ms = since;
      p.oldest_event_id = id;
    }
  }
  return p;
}

EventOutcome WorkerPool::failed(const InboxEvent& e, const Status& s) {
  std::string error = s.to_string();
  if (error.size() > kMaxErrorBytes) error.resize(kMaxErrorBytes);
  // A body the log cannot give back (damaged or missing) will not come back on a later attempt, and
  // a payload that cannot be parsed will not parse on the next one either.
  if (e.attempts >= options_.max_attempts || s.is(Code::kMalformed) || (!e.body_status.ok() && s.is(Code::kIo))) {
    return {e.id, EventOutcome::kDead, std::move(error), 0};
  }
  return {e.id, EventOutcome::kRetry, std::move(error), clock_.now_ms() + backoff_ms(e.attempts)};
}

std::vector<InboxEvent> WorkerPool::process_batch(std::vector<InboxEvent> events, int claim_next) {
  // The batch is one unit of work on this thread: progress() sees it by its first event, and every
  // line logged for it names its integration when the events share one.
  BusyMark busy(*this, events.empty() ? 0 : events.front().id);
  int64_t integration = events.empty() ? 0 : events.front().integration_id;
  for (const InboxEvent& e : events) {
    if (e.integration_id != integration) integration = 0;
  }
  LogScope log_scope(integration);
  std::vector<EventOutcome> outcomes(events.size());
  std::vector<const InboxEvent*> runnable;
  std::vector<size_t> where;
  for (size_t i = 0; i < events.size(); ++i) {
    if (events[i].body_status.ok()) {
      runnable.push_back(&events[i]);
      where.push_back(i);
    } else {
      outcomes[i] = failed(events[i], events[i].body_status);  // kIo: dead now; else: may load later
    }
  }
  std::unique_ptr<InboxBatchWork> work;
  if (!runnable.empty()) {
    std::vector<Status> results(runnable.size());
    try {
      work = handler_.handle_batch(runnable, &results);
    } catch (const std::exception& ex) {
      work.reset();
      std::fill(results.begin(), results.end(), Status::Internal(std::string("exception in webhook handler: ") + ex.what()));
    } catch (...) {
      work.reset();
      std::fill(results.begin(), results.end(), Status::Internal("unknown exception in webhook handler"));
    }
    for (size_t k = 0; k < runnable.size(); ++k) {
      outcomes[where[k]] = results[k].ok() ? EventOutcome{runnable[k]->id, EventOutcome::kDone, {}, 0}
                                           : failed(*runnable[k], results[k]);
    }
  }
  std::function<Status()> record;
  if (work) record = [&] { return work->record(); };
  auto next = inbox_.finish_batch(outcomes, record, claim_next);
  if (!next.ok() && record) {
    // The handler's writes could not be recorded (the CRM side already has them: the retry maps
    // again under the same idempotency keys). Keep the events moving toward retry or dead letter.
    FB_LOG(kError, "webhooks") << "cannot record a batch of " << events.size()
                               << " webhook event(s), retrying them: " << next.status().message();
    for (size_t i = 0; i < events.size(); ++i) {
      if (outcomes[i].kind == EventOutcome::kDone) outcomes[i] = failed(events[i], next.status());
    }
    next = inbox_.finish_batch(outcomes, nullptr, claim_next);
  }
  work.reset();  // lets go of the batch's recordings
  if (!next.ok()) {
    // The events stay in processing and are reclaimed later; the handlers are idempotent per
    // content version, so running them again is harmless.
    FB_LOG(kError, "webhooks") << "cannot record the outcome of " << events.size()
                               << " webhook event(s): " << next.status().message();
    return {};
  }
  if (options_.on_batch_committed) options_.on_batch_committed();
  for (size_t i = 0; i < events.size(); ++i) {
    const EventOutcome& o = outcomes[i];
    if (o.kind == EventOutcome::kDone) {
      processed_.fetch_add(1);
    } else if (o.kind == EventOutcome::kDead) {
      announce_dead(events[i], o.error);
    } else {
      retried_.fetch_add(1);
      FB_LOG(kInfo, "webhooks") << "webhook event " << events[i].id << " failed (attempt " << events[i].attempts
                                << " of " << options_.max_attempts << "), retrying in "
                                << (o.next_attempt_at_ms - clock_.now_ms()) << " ms: " << o.error;
    }
  }
  return std::move(*next);
}

Result<int> WorkerPool::run_once(int max) {
  int done = 0;
  while (done < max) {
    FB_ASSIGN(std::vector<InboxEvent> events, inbox_.claim(std::min(options_.claim_batch, max - done)));
    if (events.empty()) break;
    done += static_cast<int>(events.size());
    (void)process_batch(std::move(events), 0);
  }
  return done;
}

void WorkerPool::loop() {
  std::vector<InboxEvent> batch;  // claimed by the previous batch's commit
  for (;;) {
    uint64_t gen;
    bool stopping;
    {
      std::lock_guard lk(mu_);
      stopping = stopping_;
      gen = wake_gen_;
    }
    if (stopping) {
      if (!batch.empty()) (void)process_batch(std::move(batch), 0);
      return;
    }
    int64_t now = clock_.now_ms();
    int64_t last = last_stale_check_ms_.load();
    if (now - last >= options_.poll_interval_ms && last_stale_check_ms_.compare_exchange_strong(last, now)) {
      auto n = inbox_.reclaim(now - options_.stale_claim_ms);
      if (n.ok() && *n > 0) {
        FB_LOG(kWarn, "webhooks") << "reclaimed " << *n << " webhook event(s) stuck in processing";
      }
    }
    int64_t last_purge = last_purge_ms_.load();
    if (now - last_purge >= options_.purge_interval_ms && last_purge_ms_.compare_exchange_strong(last_purge, now)) {
      if (auto n = purge_expired(); !n.ok()) {
        FB_LOG(kWarn, "webhooks") << "cannot purge old webhook events: " << n.status().message();
      }
      // After the purge: segments whose rows it deleted can go now.
      if (auto c = inbox_.collect_body_segments(); !c.ok()) {
        FB_LOG(kWarn, "webhooks") << "cannot collect webhook body segments: " << c.status().message();
      }
    }
    Status claimed = Status::Ok();
    if (batch.empty()) {
      auto events = inbox_.claim(options_.claim_batch);
      if (!events.ok()) {
        claimed = events.status();
        FB_LOG(kError, "webhooks") << "cannot claim webhook events: " << claimed.message();
      } else {
        batch = std::move(*events);
      }
    }
    if (!batch.empty()) {
      batch = process_batch(std::move(batch), options_.claim_batch);
      continue;
    }
    // Nothing due: sleep until the next retry is due, a new event arrives, or the poll interval.
    int64_t wait_ms = options_.poll_interval_ms;
    if (claimed.ok()) {
      if (auto due = inbox_.next_due_ms(); due.ok() && due->has_value()) {
        wait_ms = std::clamp<int64_t>(**due - clock_.now_ms(), 1, options_.poll_interval_ms);
      }
    }
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(wait_ms), [&] { return stopping_ || wake_gen_ != gen; });
  }
}

Result<int> WorkerPool::purge_expired() {
  if (options_.retention_ms <= 0) return 0;
  int64_t cutoff = clock_.now_ms() - options_.retention_ms;
  int total = 0;
  for (;;) {
    FB_ASSIGN(int n, inbox_.purge_done(cutoff));
    total += n;
    if (n < 500) break;
  }
  if (total > 0) FB_LOG(kInfo, "webhooks") << "deleted " << total << " processed webhook event(s) past retention";
  return total;
}

Status WorkerPool::replay(int64_t event_id) {
  FB_TRY(inbox_.replay(event_id));
  FB_LOG(kInfo, "webhooks") << "replaying webhook event " << event_id;
  notify();
  return Status::Ok();
}

Result<int> WorkerPool::replay_dead_letters(int64_t integration_id) {
  FB_ASSIGN(int n, inbox_.replay_dead(integration_id));
  FB_LOG(kInfo, "webhooks") << "replaying " << n << " dead-lettered webhook event(s)";
  if (n > 0) notify();
  return n;
}

WorkerStats WorkerPool::stats() const { return {processed_.load(), retried_.load(), dead_.load()}; }

}  // namespace fb::detail

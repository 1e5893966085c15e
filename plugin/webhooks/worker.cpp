#include "webhooks/worker.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/thread_name.h"
#include "core/utf8.h"

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
  o.event_deadline_ms = static_cast<int64_t>(c.event_deadline_s) * 1000;
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
    // SQLite: one process runs workers per database file, so whatever is in processing now was
    // left by a crash. PostgreSQL: the other hosts' claims are alive; only expired leases return.
    FB_ASSIGN(int n, inbox_.db().engine() == Engine::kSqlite ? inbox_.reclaim(clock_.now_ms())
                                                             : inbox_.reclaim_expired());
    if (n > 0) {
      FB_LOG(kWarn, "webhooks") << "reclaimed " << n << " webhook event(s) left in processing by a crash";
    }
  }
  stopping_ = false;
  started_ = true;
  active_ = written_off_ = 0;
  for (int i = 0; i < options_.workers; ++i) start_thread_locked();
  if (options_.workers > 0 && options_.event_deadline_ms > 0) {
    supervisor_ = std::thread([this] {
      name_this_thread("fb-supervisor");
      supervise();
    });
  }
  return Status::Ok();
}

void WorkerPool::start_thread_locked() {
  WorkerThread& t = threads_.emplace_back();
  ++active_;
  t.thread = std::thread([this, &t] {
    name_this_thread("fb-worker");
    loop(&t);
  });
}

void WorkerPool::stop() {
  {
    std::lock_guard lk(mu_);
    if (!started_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (supervisor_.joinable()) supervisor_.join();
  // Threads finish the batch they are on. One stuck past the deadline meanwhile is written off
  // (check_stuck, here now), and one written off is waited for stuck_stop_wait_ms, then abandoned.
  const auto tick = std::chrono::milliseconds(std::clamp<int64_t>(options_.poll_interval_ms, 10, 1000));
  for (;;) {
    if (options_.event_deadline_ms > 0) check_stuck();
    std::vector<std::pair<int64_t, int64_t>> gave_up;
    std::unique_lock lk(mu_);
    bool waiting = false;
    auto now = std::chrono::steady_clock::now();
    for (WorkerThread& t : threads_) {
      if (t.exited || t.abandoned) continue;
      if (t.written_off && t.claim && now - t.written_off_at >= std::chrono::milliseconds(options_.stuck_stop_wait_ms)) {
        BatchClaim::GiveUp g = t.claim->give_up(true);
        if (!g.closed) {  // else it is finishing its batch right now: wait for it
          t.abandoned = true;
          gave_up.insert(gave_up.end(), g.events.begin(), g.events.end());
          FB_LOG(kError, "webhooks") << "stopping without a webhook worker stuck on event " << g.current_event
                                     << " for over webhooks.event_deadline_s; the event stays in processing"
                                     << " and is reclaimed at the next start";
          continue;
        }
      }
      waiting = true;
    }
    if (!gave_up.empty()) {
      lk.unlock();
      to_release_.insert(to_release_.end(), gave_up.begin(), gave_up.end());
      release_given_up();
      continue;
    }
    if (!waiting) break;
    cv_.wait_for(lk, tick);
  }
  release_given_up();
  std::list<WorkerThread> done;
  {
    std::lock_guard lk(mu_);
    done.swap(threads_);
  }
  for (WorkerThread& t : done) {
    if (t.abandoned) {
      t.thread.detach();
    } else {
      t.thread.join();
    }
  }
  std::lock_guard lk(mu_);
  active_ = written_off_ = 0;
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

std::unique_ptr<InboxBatchWork> InboxEventHandler::handle_claimed(const std::vector<const InboxEvent*>& events,
                                                                  std::vector<Status>* results, BatchClaim& claim) {
  claim.take_all();
  return handle_batch(events, results);
}

BatchClaim::BatchClaim(const std::vector<InboxEvent>& events) {
  entries_.reserve(events.size());
  for (const InboxEvent& e : events) {
    entries_.push_back({e.id, e.integration_id, e.claimed_at_ms, State::kOpen, e.claim_token});
  }
}

bool BatchClaim::take(int64_t event_id) {
  std::lock_guard lk(mu_);
  int64_t integration = 0;
  bool found = false;
  for (const Entry& e : entries_) {
    if (e.id != event_id) continue;
    if (e.state == State::kGivenUp) return false;
    integration = e.integration_id;
    found = true;
  }
  if (!found) return true;  // not an event of this batch: nothing to guard
  // The integration's other events stay here too: they would hang on the same CRM.
  for (Entry& e : entries_) {
    if (e.integration_id == integration && e.state == State::kOpen) e.state = State::kTaken;
  }
  current_ = event_id;
  return true;
}

void BatchClaim::take_all() {
  std::lock_guard lk(mu_);
  for (Entry& e : entries_) {
    if (e.state == State::kOpen) e.state = State::kTaken;
  }
}

void BatchClaim::on_give_up(std::function<void(const std::vector<int64_t>&)> release) {
  std::lock_guard lk(mu_);
  release_ = std::move(release);
  std::vector<int64_t> gone;
  for (const Entry& e : entries_) {
    if (e.state == State::kGivenUp && std::find(gone.begin(), gone.end(), e.integration_id) == gone.end()) {
      gone.push_back(e.integration_id);
    }
  }
  if (release_ && !gone.empty()) release_(gone);
}

bool BatchClaim::given_up(int64_t event_id) const {
  std::lock_guard lk(mu_);
  for (const Entry& e : entries_) {
    if (e.id == event_id) return e.state == State::kGivenUp;
  }
  return false;
}

BatchClaim::GiveUp BatchClaim::give_up(bool abandon) {
  std::lock_guard lk(mu_);
  GiveUp g;
  if (closed_) {
    g.closed = true;
    return g;
  }
  std::vector<int64_t> gone;
  for (Entry& e : entries_) {
    if (e.state != State::kOpen) continue;
    e.state = State::kGivenUp;
    g.events.emplace_back(e.id, e.claimed_at_ms);
    if (std::find(gone.begin(), gone.end(), e.integration_id) == gone.end()) gone.push_back(e.integration_id);
  }
  // The event it is stuck on: the one taken last, else (nothing taken, or take_all) the batch's
  // first, with the batch's integration when it has only one.
  g.current_event = current_ != 0 ? current_ : (entries_.empty() ? 0 : entries_.front().id);
  for (const Entry& e : entries_) {
    if (current_ != 0 && e.id == current_) g.current_integration = e.integration_id;
  }
  if (current_ == 0 && !entries_.empty()) {
    g.current_integration = entries_.front().integration_id;
    for (const Entry& e : entries_) {
      if (e.integration_id != g.current_integration) g.current_integration = 0;
    }
  }
  if (release_ && !gone.empty()) release_(gone);
  if (abandon) abandoned_ = true;
  return g;
}

bool BatchClaim::close(std::vector<int64_t>* given_up) {
  std::lock_guard lk(mu_);
  closed_ = true;
  release_ = nullptr;
  for (const Entry& e : entries_) {
    if (e.state == State::kGivenUp) given_up->push_back(e.id);
  }
  return abandoned_;
}

std::vector<Event> WorkerPool::dead_letter_events(const std::vector<InboxEvent>& events,
                                                  const std::vector<EventOutcome>& outcomes) const {
  std::vector<Event> out;
  if (!bus_) return out;
  for (size_t i = 0; i < events.size(); ++i) {
    if (outcomes[i].kind != EventOutcome::kDead) continue;
    const InboxEvent& e = events[i];
    const std::string& error = outcomes[i].error;
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
    out.push_back(std::move(ev));
  }
  return out;
}

Status WorkerPool::tell(const std::vector<Event>& events) const {
  for (const Event& ev : events) FB_TRY(bus_->emit(ev));
  return Status::Ok();
}

void WorkerPool::announce_dead(const InboxEvent& e, const std::string& error) {
  dead_.fetch_add(1);
  FB_LOG(kWarn, "webhooks") << "webhook event " << e.id << " (integration " << e.integration_id << ", recording "
                            << e.recording_id << ") dead-lettered after " << e.attempts << " attempt(s): " << error;
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
  // The pool may be gone (an abandoned thread): the destructor touches nothing.
  void forget() { forgotten_ = true; }
  // Done now, before the end of its scope (the batch goes on as other batches, with marks of their own).
  void finish() {
    if (forgotten_) return;
    forgotten_ = true;
    if (slot_ >= 0) {
      pool_.busy_since_ms_[slot_].store(0, std::memory_order_relaxed);
      pool_.busy_event_[slot_].store(0, std::memory_order_relaxed);
    }
    pool_.processing_latency_.observe_since(start_ns_);
  }
  ~BusyMark() { finish(); }
  BusyMark(const BusyMark&) = delete;
  BusyMark& operator=(const BusyMark&) = delete;

 private:
  WorkerPool& pool_;
  int64_t start_ns_;
  int slot_ = -1;  // -1: more events at once than slots (not tracked)
  bool forgotten_ = false;
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
  // Stored as JSON and text (PostgreSQL refuses bytes that are not UTF-8): a message quoting a CRM's
  // or a meeting's bytes, or cut inside a character, must not fail the write that records it.
  std::string error = utf8_text(s.to_string(), kMaxErrorBytes);
  // A body the log cannot give back (damaged or missing) will not come back on a later attempt, and
  // a payload that cannot be parsed will not parse on the next one either.
  if (e.attempts >= options_.max_attempts || s.is(Code::kMalformed) || (!e.body_status.ok() && s.is(Code::kIo))) {
    return {e.id, EventOutcome::kDead, std::move(error), 0, e.claim_token};
  }
  return {e.id, EventOutcome::kRetry, std::move(error), clock_.now_ms() + backoff_ms(e.attempts), e.claim_token};
}

namespace {
// A store that is away (unreachable, locked past the deadline) or claims taken over: no event is
// to blame, and alone each would fail the same way.
bool store_away(const Status& s) {
  return s.is(Code::kUnavailable) || s.is(Code::kConflict) || s.is(Code::kTimeout);
}
}  // namespace

std::vector<InboxEvent> WorkerPool::record_one_by_one(std::vector<InboxEvent> events, const Status& error,
                                                      int claim_next, WorkerThread* self, Fate* fate) {
  FB_LOG(kWarn, "webhooks") << "cannot record a batch of " << events.size()
                            << " webhook event(s), recording them one by one: " << error.message();
  std::vector<InboxEvent> claimed;
  int failed_in_a_row = 0;
  for (size_t i = 0; i < events.size(); ++i) {
    const bool written_off = fate && *fate == Fate::kWrittenOff;
    if (written_off || failed_in_a_row == 2) {
      std::vector<InboxEvent> rest(std::make_move_iterator(events.begin() + static_cast<ptrdiff_t>(i)),
                                   std::make_move_iterator(events.end()));
      if (written_off) {
        // A surplus thread now (stuck on an event meanwhile): the rest go to the other workers.
        std::vector<std::pair<int64_t, int64_t>> ids;
        for (const InboxEvent& e : rest) ids.emplace_back(e.id, e.claimed_at_ms);
        auto n = inbox_.release(ids);
        if (!n.ok()) {
          FB_LOG(kError, "webhooks") << "cannot give " << ids.size() << " webhook event(s) back to pending; they are "
                                     << "reclaimed after their lease: " << n.status().message();
        }
        if (n.ok()) released_.fetch_add(*n);
        notify();
        return {};
      }
      // Two events in a row that fail alone: the store, not an event. The rest are one batch again,
      // not split, toward a retry with its error if it fails the same way.
      FB_LOG(kWarn, "webhooks") << "recording " << rest.size() << " webhook event(s) together again: two alone "
                                << "failed in a row";
      return process_batch(std::move(rest), claim_next, self, fate, nullptr, false);
    }
    std::vector<InboxEvent> one;
    one.push_back(std::move(events[i]));
    Status unrecorded;
    claimed = process_batch(std::move(one), i + 1 == events.size() ? claim_next : 0, self, fate, &unrecorded);
    if (fate && *fate == Fate::kAbandoned) return {};  // the rest stay claimed, reclaimed after the lease or at the next start
    if (store_away(unrecorded)) {
      // The store went away meanwhile: the rest stay claimed, like a batch whose outcome cannot be
      // recorded, and are reclaimed after their lease (or at the next start).
      FB_LOG(kError, "webhooks") << "cannot record " << events.size() - i - 1 << " webhook event(s) one by one: "
                                 << unrecorded.message();
      return {};
    }
    failed_in_a_row = unrecorded.ok() ? 0 : failed_in_a_row + 1;
  }
  return claimed;
}

std::vector<InboxEvent> WorkerPool::process_batch(std::vector<InboxEvent> events, int claim_next, WorkerThread* self,
                                                  Fate* fate, Status* unrecorded, bool split) {
  // The batch is one unit of work on this thread: progress() sees it by its first event, and every
  // line logged for it names its integration when the events share one.
  BusyMark busy(*this, events.empty() ? 0 : events.front().id);
  auto claim = std::make_shared<BatchClaim>(events);
  claim->started_ms_ = clock_.now_ms();
  if (self) {
    std::lock_guard lk(mu_);
    self->claim = claim;
    self->next.clear();  // this batch, held by claim from now on
  }
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
      work = handler_.handle_claimed(runnable, &results, *claim);
    } catch (const std::exception& ex) {
      work.reset();
      std::fill(results.begin(), results.end(), Status::Internal(std::string("exception in webhook handler: ") + ex.what()));
    } catch (...) {
      work.reset();
      std::fill(results.begin(), results.end(), Status::Internal("unknown exception in webhook handler"));
    }
    for (size_t k = 0; k < runnable.size(); ++k) {
      outcomes[where[k]] = results[k].ok()
                               ? EventOutcome{runnable[k]->id, EventOutcome::kDone, {}, 0, runnable[k]->claim_token}
                               : failed(*runnable[k], results[k]);
    }
  }
  // From here on nothing is given up: the batch is what this thread still owns.
  std::vector<int64_t> gone;
  if (claim->close(&gone)) {
    // stop() abandoned this thread (detached; the pool may be gone): touch nothing of it.
    busy.forget();
    work.reset();  // lets go of its recording locks (process-wide, not the pool's)
    if (fate) *fate = Fate::kAbandoned;
    return {};
  }
  bool written_off = false;
  if (self) {
    std::lock_guard lk(mu_);
    written_off = self->written_off;
    self->claim.reset();
  }
  if (fate) *fate = written_off ? Fate::kWrittenOff : Fate::kOn;
  if (written_off) claim_next = 0;  // a surplus thread claims nothing more
  if (!gone.empty()) {
    std::vector<InboxEvent> kept;
    std::vector<EventOutcome> kept_outcomes;
    for (size_t i = 0; i < events.size(); ++i) {
      if (std::find(gone.begin(), gone.end(), events[i].id) != gone.end()) continue;  // another worker's now
      kept.push_back(std::move(events[i]));
      kept_outcomes.push_back(std::move(outcomes[i]));
    }
    events = std::move(kept);
    outcomes = std::move(kept_outcomes);
  }
  // Dead letters are told in the transaction that records them (issue 13); who they belong to is
  // looked up before it.
  std::vector<Event> dead = dead_letter_events(events, outcomes);
  if (work) work->annotate(outcomes);
  bool record_failed = false;  // the handler's writes failed (not the marks, the commit or the feed)
  auto next = inbox_.finish_batch(outcomes, [&]() -> Status {
    if (work) {
      Status recorded = work->record();
      record_failed = !recorded.ok();
      FB_TRY(recorded);
    }
    return tell(dead);
  }, claim_next);
  if (!next.ok() && unrecorded) *unrecorded = next.status();
  if (!next.ok() && record_failed) {
    // A thread written off already (stuck in this batch) does not split it: its events, now
    // behind the others' work, go toward a retry below, their attempt counted.
    const Status& e = next.status();
    if (split && !written_off && events.size() > 1 && !store_away(e)) {
      work.reset();   // lets go of the batch's recordings, which the events alone lock again
      busy.finish();  // each event alone is a batch of its own
      return record_one_by_one(std::move(events), e, claim_next, self, fate);
    }
  }
  if (!next.ok() && work) {
    // The handler's writes could not be recorded (the CRM side already has them: the retry maps
    // again under the same idempotency keys). Keep the events moving toward retry or dead letter.
    FB_LOG(kError, "webhooks") << "cannot record a batch of " << events.size()
                               << " webhook event(s), retrying them: " << next.status().message();
    for (size_t i = 0; i < events.size(); ++i) {
      if (outcomes[i].kind == EventOutcome::kDone) outcomes[i] = failed(events[i], next.status());
      outcomes[i].script_versions.clear();  // nothing of the work is recorded
    }
    dead = dead_letter_events(events, outcomes);
    next = inbox_.finish_batch(outcomes, [&] { return tell(dead); }, claim_next);
  }
  work.reset();  // lets go of the batch's recordings
  if (next.ok()) hold_next(self, *next);  // before the events and callbacks below, which may be slow
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

void WorkerPool::loop(WorkerThread* self) {
  std::vector<InboxEvent> batch;  // claimed by the previous batch's commit
  auto leave = [&] {
    {
      std::lock_guard lk(mu_);
      self->exited = true;
      if (self->written_off) {
        --written_off_;
        if (options_.on_stuck_threads) options_.on_stuck_threads(written_off_);
      } else {
        --active_;
      }
    }
    cv_.notify_all();  // stop() waits for threads to leave
  };
  // After a batch: whether this thread goes on (false: it has left, or was abandoned).
  auto go_on = [&](Fate fate) {
    if (fate == Fate::kAbandoned) return false;
    if (fate == Fate::kWrittenOff) {
      std::unique_lock lk(mu_);
      if (!stopping_ && active_ < options_.workers) {  // no replacement took its place: back to work
        self->written_off = false;
        --written_off_;
        ++active_;
        if (options_.on_stuck_threads) options_.on_stuck_threads(written_off_);
        return true;
      }
      lk.unlock();
      leave();
      return false;
    }
    return true;
  };
  for (;;) {
    uint64_t gen;
    bool stopping;
    {
      std::lock_guard lk(mu_);
      stopping = stopping_;
      gen = wake_gen_;
    }
    if (stopping) {
      Fate fate = Fate::kOn;
      if (!batch.empty()) (void)process_batch(std::move(batch), 0, self, &fate);
      if (fate != Fate::kAbandoned) leave();
      return;
    }
    maintain_claims();
    int64_t now = clock_.now_ms();
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
        // Every worker fails every poll while the store is down: the first failure, then a line a minute
        // (and at once when the reason changes).
        if (int64_t more = 0; claim_failures_.admit(clock_.mono_ms(), &more, claimed.message())) {
          FB_LOG(kError, "webhooks") << "cannot claim webhook events: " << claimed.message()
                                     << LogThrottle::left_out_note(more);
        }
      } else {
        if (int64_t failed = claim_failures_.end_run()) {
          FB_LOG(kInfo, "webhooks") << "webhook events can be claimed again after " << failed << " failed claims";
        }
        batch = std::move(*events);
        hold_next(self, batch);
      }
    }
    if (!batch.empty()) {
      Fate fate = Fate::kOn;
      batch = process_batch(std::move(batch), options_.claim_batch, self, &fate);
      if (!go_on(fate)) return;
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

void WorkerPool::hold_next(WorkerThread* self, const std::vector<InboxEvent>& batch) {
  if (!self) return;
  std::lock_guard lk(mu_);
  self->next.clear();
  for (const InboxEvent& e : batch) self->next.emplace_back(e.id, e.claim_token);
}

void WorkerPool::maintain_claims() {
  // Often enough to renew a lease well before it ends, and to take over a dead host's events
  // soon after theirs did.
  const int64_t every = std::max<int64_t>(1, std::min(options_.poll_interval_ms, inbox_.claim_lease_ms() / 3));
  const int64_t now = clock_.now_ms();
  int64_t last = last_stale_check_ms_.load();
  if (now - last < every || !last_stale_check_ms_.compare_exchange_strong(last, now)) return;
  // The events the pool's threads hold (one stuck in a CRM call included: it is alive, and its
  // events must not be mapped a second time meanwhile) keep their leases; they are never
  // reclaimed by this pool either. Expired means as of `now`, read before the threads' claims
  // are gathered: a batch claimed after this list was taken (a slow store connection, a clock
  // that moved meanwhile) has a lease ending after `now` and stays its worker's.
  std::vector<int64_t> held;
  std::vector<std::string> claims;
  {
    std::lock_guard lk(mu_);
    auto hold = [&](int64_t id, const std::string& token) {
      held.push_back(id);
      if (std::find(claims.begin(), claims.end(), token) == claims.end()) claims.push_back(token);
    };
    for (const WorkerThread& t : threads_) {
      for (const auto& [id, token] : t.next) hold(id, token);
      if (!t.claim) continue;
      std::lock_guard ck(t.claim->mu_);
      for (const auto& e : t.claim->entries_) {
        if (e.state != BatchClaim::State::kGivenUp) hold(e.id, e.claim_token);
      }
    }
  }
  // Every few seconds while the store is down: the first failure, then a line a minute (and at
  // once for a new reason), and one line when the store answers again.
  Status renewed = Status::Ok();
  if (!claims.empty()) {
    if (auto r = inbox_.renew(claims); !r.ok()) renewed = r.status();
  }
  auto n = inbox_.reclaim_expired(held, now);
  const Status failed = !renewed.ok() ? renewed : n.ok() ? Status::Ok() : n.status();
  if (!failed.ok()) {
    if (int64_t more = 0; lease_failures_.admit(clock_.mono_ms(), &more, failed.message())) {
      FB_LOG(kWarn, "webhooks") << (!renewed.ok() ? "cannot renew the claim lease of " + std::to_string(held.size()) +
                                                        " webhook event(s): "
                                                  : std::string("cannot return expired webhook claims to the pool: "))
                                << failed.message() << LogThrottle::left_out_note(more);
    }
  } else if (int64_t count = lease_failures_.end_run()) {
    FB_LOG(kInfo, "webhooks") << "webhook claim leases can be kept again after " << count << " failed attempts";
  }
  if (n.ok() && *n > 0) {
    FB_LOG(kWarn, "webhooks") << "reclaimed " << *n << " webhook event(s) whose claim lease ran out"
                              << " (a worker or host that stopped renewing it)";
    notify();
  }
}

void WorkerPool::supervise() {
  // Checks every tenth of the deadline (within 10 ms .. 1 s), and whenever notify() wakes it (a
  // test that moves a fake clock past the deadline).
  const auto tick = std::chrono::milliseconds(std::clamp<int64_t>(options_.event_deadline_ms / 10, 10, 1000));
  for (;;) {
    uint64_t gen;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;  // stop() carries on from here
      gen = wake_gen_;
    }
    check_stuck();
    release_given_up();
    maintain_claims();
    // Threads that left (surplus replacements) are joined here, not at stop().
    std::list<WorkerThread> gone;
    {
      std::unique_lock lk(mu_);
      for (auto it = threads_.begin(); it != threads_.end();) {
        auto next = std::next(it);
        if (it->exited) gone.splice(gone.end(), threads_, it);
        it = next;
      }
      if (gone.empty()) cv_.wait_for(lk, tick, [&] { return stopping_ || wake_gen_ != gen; });
    }
    for (WorkerThread& t : gone) t.thread.join();
  }
}

void WorkerPool::check_stuck() {
  struct Found {
    BatchClaim::GiveUp given;
    int64_t busy_ms;
    size_t size;
  };
  std::vector<Found> found;
  {
    std::lock_guard lk(mu_);
    const int64_t now = clock_.now_ms();
    for (WorkerThread& t : threads_) {
      if (!t.claim || t.written_off || t.exited || t.abandoned) continue;
      const int64_t busy_ms = now - t.claim->started_ms_;
      if (busy_ms < options_.event_deadline_ms) continue;
      BatchClaim::GiveUp g = t.claim->give_up(false);
      if (g.closed) continue;  // it finished just now
      t.written_off = true;
      t.written_off_at = std::chrono::steady_clock::now();
      --active_;
      ++written_off_;
      if (options_.on_stuck_threads) options_.on_stuck_threads(written_off_);
      const int bound = options_.stuck_replacements < 0 ? options_.workers : options_.stuck_replacements;
      if (!stopping_ && written_off_ <= bound) {
        start_thread_locked();
        FB_LOG(kWarn, "webhooks") << "started a webhook worker in place of the stuck one (" << written_off_ << " of at most "
                                  << bound << " at a time)";
      }
      size_t size = 0;
      {
        std::lock_guard ck(t.claim->mu_);
        size = t.claim->entries_.size();
      }
      found.push_back({std::move(g), busy_ms, size});
    }
  }
  for (Found& f : found) {
    to_release_.insert(to_release_.end(), f.given.events.begin(), f.given.events.end());
    stuck_.fetch_add(1);
    announce_stuck(f.given, f.busy_ms, f.size);
  }
  if (!found.empty()) release_given_up();
}

void WorkerPool::release_given_up() {
  if (to_release_.empty()) return;
  auto n = inbox_.release(to_release_);
  if (!n.ok()) {
    // Tried again at the next check; meanwhile they stay in processing (no one else has them).
    FB_LOG(kError, "webhooks") << "cannot give " << to_release_.size()
                               << " webhook event(s) of a stuck worker back to pending: " << n.status().message();
    return;
  }
  released_.fetch_add(*n);
  to_release_.clear();
  notify();  // wake idle workers for them
}

void WorkerPool::announce_stuck(const BatchClaim::GiveUp& g, int64_t busy_ms, size_t batch_size) {
  const int64_t event_id = g.current_event;
  FB_LOG(kError, "webhooks") << "a webhook worker is stuck on event " << event_id << " (integration "
                             << g.current_integration << ") for " << busy_ms / 1000
                             << " s, over webhooks.event_deadline_s; " << g.events.size() << " of the batch's "
                             << batch_size << " event(s) go to other workers";
  if (!bus_) return;
  Event ev;
  ev.type = "worker_stuck";
  ev.integration_id = g.current_integration;
  if (directory_ && g.current_integration != 0) {
    if (auto info = directory_->get(g.current_integration); info.ok()) {
      ev.tenant_id = info->tenant_id;
      ev.user_id = info->user_id;
    }
  }
  ev.detail = "a webhook worker has been on event " + std::to_string(event_id) + " for " +
              std::to_string(busy_ms / 1000) + " s (over webhooks.event_deadline_s): a CRM call that does not return?" +
              " " + std::to_string(g.events.size()) + " other event(s) of its batch were handed to other workers";
  ev.data_json = nlohmann::json{{"event_id", event_id},
                                {"busy_s", busy_ms / 1000},
                                {"deadline_s", options_.event_deadline_ms / 1000},
                                {"batch_events", batch_size},
                                {"released", g.events.size()}}
                     .dump();
  (void)bus_->emit(ev);  // not caused by a store change: stored on its own (an error is logged)
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

WorkerStats WorkerPool::stats() const {
  WorkerStats s{processed_.load(), retried_.load(), dead_.load(), stuck_.load(), released_.load(), 0};
  std::lock_guard lk(mu_);
  s.stuck_threads = written_off_;
  return s;
}

}  // namespace fb::detail

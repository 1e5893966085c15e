#include "sync/meeting_dispatcher.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "core/log.h"
#include "core/utf8.h"
#include "sync/sync_schema.h"

namespace fb::detail {

namespace {

// The recordings some thread of this process is mapping in a batch, by "<db>|<integration>|<recording>".
// A batch takes all of its keys at once (waiting until none is taken), so two batches never wait
// on each other while holding keys.
struct RecordingLocks {
  std::mutex mu;
  std::condition_variable cv;
  std::set<std::string> held;  // guarded by mu

  void lock_all(const std::vector<std::string>& keys) {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] {
      return std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return held.count(k) > 0; });
    });
    held.insert(keys.begin(), keys.end());
  }
  void unlock_all(const std::vector<std::string>& keys) {
    {
      std::lock_guard lk(mu);
      for (const std::string& k : keys) held.erase(k);
    }
    cv.notify_all();
  }
};

RecordingLocks& recording_locks() {
  static RecordingLocks* locks = new RecordingLocks();  // never destroyed: leases may outlive statics
  return *locks;
}

std::string recording_key(const std::string& db, int64_t integration_id, int64_t recording_id) {
  return db + "|" + std::to_string(integration_id) + "|" + std::to_string(recording_id);
}

MeetingEvent event_of(const BatchItem& item) {
  MeetingEvent e;
  e.integration_id = item.integration.id;
  e.tenant_id = item.integration.tenant_id;
  e.user_id = item.integration.user_id;
  e.recording_id = item.meeting.recording_id;
  e.content_version = item.upsert.content_version;
  e.raw_json = item.raw.data() != nullptr ? item.raw : std::string_view(item.meeting.raw_json);
  e.parsed = item.parsed;
  e.source = item.source;
  return e;
}

// A pipeline call that throws is a failure of that call, not of the batch.
template <typename F>
Status call_pipeline(F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Internal(std::string("pipeline threw: ") + e.what());
  } catch (...) {
    return Status::Internal("pipeline threw a non-standard exception");
  }
}

}  // namespace

BatchLease::~BatchLease() {
  if (!keys_.empty()) recording_locks().unlock_all(keys_);
}

void BatchLease::release_integration(int64_t integration_id) {
  std::vector<std::string> mine;
  for (size_t i = keys_.size(); i-- > 0;) {
    if (integrations_[i] != integration_id) continue;
    mine.push_back(std::move(keys_[i]));
    keys_.erase(keys_.begin() + static_cast<std::ptrdiff_t>(i));
    integrations_.erase(integrations_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  if (!mine.empty()) recording_locks().unlock_all(mine);
}

DispatcherOptions DispatcherOptions::from_config(const Config& config) {
  DispatcherOptions o;
  o.claim_ttl_s = config.sync.mapping_claim_ttl_s;
  return o;
}

const char* dispatch_outcome_name(DispatchOutcome o) {
  switch (o) {
    case DispatchOutcome::kMapped: return "mapped";
    case DispatchOutcome::kAlreadyMapped: return "already_mapped";
    case DispatchOutcome::kBusy: return "busy";
    case DispatchOutcome::kFailed: return "failed";
  }
  return "unknown";
}

Result<std::unique_ptr<MeetingDispatcher>> MeetingDispatcher::open(Db& db, Clock& clock, DispatcherOptions options,
                                                                   Random& random) {
  FB_TRY(migrate_sync_schema(db));
  return std::unique_ptr<MeetingDispatcher>(new MeetingDispatcher(db, clock, options, random));
}

Result<DispatchResult> MeetingDispatcher::dispatch(const IntegrationInfo& integration, int64_t recording_id,
                                                   MeetingPipeline& pipeline, std::string_view source) {
  DispatchResult result;
  const std::string token = random_.token(16);
  // Each round maps the newest version; a version stored while the pipeline ran is picked up by
  // the next round (a concurrent dispatcher saw our claim and left it to us).
  for (int round = 0; round < 8; ++round) {
    enum { kClaimed, kNothing, kBusy } claim = kNothing;
    int64_t version = 0;
    int64_t pointer = 0;
    std::string raw;
    Status s = db_.transaction([&]() -> Status {
      Stmt& q = db_.prepare(
          "SELECT content_version, mapped_version, claim_token, claim_until, raw_json, content_event_id FROM sync_meetings "
          "WHERE integration_id=? AND recording_id=?");
      q.bind_all(integration.id, recording_id);
      FB_ASSIGN(bool found, q.step());
      if (!found) {
        q.reset();
        return Status::NotFound("meeting " + std::to_string(recording_id) + " of integration " +
                                std::to_string(integration.id) + " is not stored");
      }
      int64_t content = q.int64(0);
      int64_t mapped = q.int64(1);
      bool claimed = !q.is_null(2) && q.int64(3) > clock_.now_s();
      result.mapped_version = mapped;
      if (mapped >= content) {
        q.reset();
        return Status::Ok();
      }
      if (claimed) {
        q.reset();
        claim = kBusy;
        return Status::Ok();
      }
      version = content;
      raw = q.text(4);
      pointer = q.opt_int64(5).value_or(0);
      q.reset();
      Stmt& c = db_.prepare(
          "UPDATE sync_meetings SET claim_token=?, claim_version=?, claim_until=? "
          "WHERE integration_id=? AND recording_id=?");
      c.bind_all(token, version, clock_.now_s() + options_.claim_ttl_s, integration.id, recording_id);
      FB_TRY(c.run());
      claim = kClaimed;
      return Status::Ok();
    });
    FB_TRY(s);
    if (claim == kNothing) {
      if (result.mapped_count == 0) result.outcome = DispatchOutcome::kAlreadyMapped;
      return result;
    }
    if (claim == kBusy) {
      if (result.mapped_count == 0) result.outcome = DispatchOutcome::kBusy;
      return result;
    }

    if (pointer > 0) {  // the content is a webhook body in the body log
      auto loaded = loader_ ? loader_(pointer)
                            : Result<std::string>(Status::FailedPrecondition("no content loader for webhook bodies"));
      if (!loaded.ok()) {
        (void)db_.transaction([&]() -> Status {
          Stmt& u = db_.prepare(
              "UPDATE sync_meetings SET claim_token=NULL, claim_version=NULL, claim_until=NULL "
              "WHERE integration_id=? AND recording_id=? AND claim_token=?");
          u.bind_all(integration.id, recording_id, token);
          return u.run();
        });
        return loaded.status().with_context("loading meeting " + std::to_string(recording_id));
      }
      raw = std::move(*loaded);
    }
    MeetingEvent event;
    event.integration_id = integration.id;
    event.tenant_id = integration.tenant_id;
    event.user_id = integration.user_id;
    event.recording_id = recording_id;
    event.content_version = version;
    event.raw_json = raw;
    event.source = std::string(source);
    Status mapped;
    try {
      mapped = pipeline.on_meeting(event);
    } catch (const std::exception& e) {
      mapped = Status::Internal(std::string("pipeline threw: ") + e.what());
    }

    Status fin = db_.transaction([&]() -> Status {
      if (mapped.ok()) {
        Stmt& u = db_.prepare(
            "UPDATE sync_meetings SET mapped_version=MAX(mapped_version, claim_version), mapped_at=?, "
            "map_error=NULL, map_attempts=0, claim_token=NULL, claim_version=NULL, claim_until=NULL "
            "WHERE integration_id=? AND recording_id=? AND claim_token=?");
        u.bind_all(clock_.now_s(), integration.id, recording_id, token);
        FB_TRY(u.run());
      } else {
        std::string err = utf8_text(mapped.to_string(), options_.max_error_chars);
        Stmt& u = db_.prepare(
            "UPDATE sync_meetings SET map_error=?, map_attempts=map_attempts+1, claim_token=NULL, "
            "claim_version=NULL, claim_until=NULL WHERE integration_id=? AND recording_id=? AND claim_token=?");
        u.bind_all(err, integration.id, recording_id, token);
        FB_TRY(u.run());
      }
      if (db_.changes() == 0) {
        FB_LOG(kWarn, "sync") << "claim on meeting " << recording_id << " expired while it was being mapped";
      }
      return Status::Ok();
    });
    FB_TRY(fin);
    if (!mapped.ok()) {
      FB_LOG(kWarn, "sync") << "mapping meeting " << recording_id << " v" << version << " of integration "
                            << integration.id << " failed: " << mapped;
      result.outcome = DispatchOutcome::kFailed;
      result.error = mapped;
      return result;
    }
    ++result.mapped_count;
    result.mapped_version = version;
    result.outcome = DispatchOutcome::kMapped;
  }
  return result;
}

Result<DispatchSummary> MeetingDispatcher::dispatch_pending(const IntegrationInfo& integration,
                                                            MeetingPipeline& pipeline, std::string_view source,
                                                            int limit) {
  FB_ASSIGN(std::vector<int64_t> ids, select_unmapped(db_, integration.id, limit));
  DispatchSummary sum;
  for (int64_t id : ids) {
    FB_ASSIGN(DispatchResult r, dispatch(integration, id, pipeline, source));
    switch (r.outcome) {
      case DispatchOutcome::kMapped: ++sum.mapped; break;
      case DispatchOutcome::kFailed:
        ++sum.failed;
        if (sum.first_error.ok()) sum.first_error = r.error;
        break;
      case DispatchOutcome::kBusy: ++sum.busy; break;
      case DispatchOutcome::kAlreadyMapped: break;
    }
  }
  return sum;
}

Result<BatchLease> MeetingDispatcher::prepare_batch(std::vector<BatchItem>& items, MeetingStore& store) {
  BatchLease lease;
  std::map<std::string, size_t> first;  // key -> index of the first item of that recording
  for (size_t i = 0; i < items.size(); ++i) {
    std::string key = recording_key(store.db().path(), items[i].integration.id, items[i].meeting.recording_id);
    if (first.emplace(key, i).second) {
      lease.keys_.push_back(std::move(key));
      lease.integrations_.push_back(items[i].integration.id);
    }
  }
  recording_locks().lock_all(lease.keys_);

  // What is stored now, then each item in order: a later delivery of the same recording in this
  // batch sees what the earlier one left.
  // One read per integration of the batch (one round trip on PostgreSQL), not one per meeting.
  std::map<std::string, MeetingState> state;
  std::map<int64_t, std::vector<int64_t>> by_integration;
  for (const auto& [key, i] : first) by_integration[items[i].integration.id].push_back(items[i].meeting.recording_id);
  for (const auto& [integration, recordings] : by_integration) {
    FB_ASSIGN(auto read, store.states(integration, recordings));
    for (int64_t recording : recordings) {
      auto found = read.find(recording);
      state.emplace(recording_key(store.db().path(), integration, recording),
                    found != read.end() ? std::move(found->second) : MeetingState{});
    }
  }
  for (BatchItem& it : items) {
    it.mapped = false;
    it.map_error = Status::Ok();
    it.status = Status::Ok();
    MeetingState& st = state[recording_key(store.db().path(), it.integration.id, it.meeting.recording_id)];
    FB_TRY(store.complete_state(it.integration.id, it.meeting, st));
    it.stored = st;
    st = state_after_upsert(std::move(st), it.meeting);
    it.upsert = {};
    it.upsert.recording_id = it.meeting.recording_id;
    it.upsert.content_version = st.content_version;
    it.upsert.created = !it.stored.found;
    it.upsert.changed = st.content_version != it.stored.content_version;
    // Only a copy carrying what is stored maps it: a poorer one (an OAuth listing after the
    // webhook's full copy whose mapping failed) leaves that version to the richer copy's own
    // event, or to the next sync's pending pass, which maps the stored copy.
    it.upsert.needs_mapping =
        st.mapped_version < it.upsert.content_version && carries_parts(content_parts_of(it.meeting), st.content_parts);
    if (it.upsert.needs_mapping) {
      st.mapped_version = it.upsert.content_version;  // a later item of the batch does not map it again
      // That mapping has not run yet: a later, richer copy in this batch counts the parts it may
      // ask for and not get as missed.
      st.missed_assumed = kFetchableParts;
    }
  }
  return lease;
}

namespace {

// run_batch's pipeline calls: begin_batch, each item's hooks, end_batch.
void call_batch(std::vector<BatchItem>& items, MeetingPipeline& pipeline) {
  Status begun = call_pipeline([&] { return pipeline.begin_batch(items.size()); });
  if (!begun.ok()) {
    (void)call_pipeline([&] { return pipeline.end_batch(false); });
    for (BatchItem& it : items) it.status = begun.with_context("starting the CRM batch");
    return;
  }
  for (BatchItem& it : items) {
    if (it.take && !it.take()) {
      it.given_up = true;
      it.status = Status::Unavailable("given up by a stuck worker");
      continue;
    }
    CrmAttribution attribution(&it.script_versions);
    if (it.upsert.needs_mapping) {
      MeetingEvent ev = event_of(it);
      // Mapped and reacted to in one pipeline call (the Lua pipeline: on one Lua state).
      Status reaction;
      it.map_error = call_pipeline([&] {
        return it.react ? pipeline.on_meeting_then_webhook(ev, &reaction) : pipeline.on_meeting(ev);
      });
      if (it.map_error.ok()) {
        it.mapped = true;
      } else {
        FB_LOG(kWarn, "sync") << "mapping meeting " << it.meeting.recording_id << " v" << it.upsert.content_version
                              << " of integration " << it.integration.id << " failed: " << it.map_error;
        it.status = it.map_error.with_context("mapping pipeline");
        continue;
      }
      if (it.react) {
        if (!reaction.ok()) it.status = reaction.with_context("webhook reaction");
        continue;
      }
    }
    if (it.react) {
      MeetingEvent ev = event_of(it);
      Status r = call_pipeline([&] { return pipeline.on_webhook(ev); });
      if (!r.ok()) it.status = r.with_context("webhook reaction");
    }
  }
  Status ended = call_pipeline([&] { return pipeline.end_batch(true); });
  if (!ended.ok()) {
    // The host could not keep the batch's CRM writes: nothing of it counts as mapped.
    for (BatchItem& it : items) {
      if (it.given_up || (!it.upsert.needs_mapping && !it.react)) continue;  // made no CRM call
      it.mapped = false;
      it.map_error = ended.with_context("ending the CRM batch");
      it.status = it.map_error;
    }
  }
}

}  // namespace

void MeetingDispatcher::run_batch(std::vector<BatchItem>& items, MeetingPipeline& pipeline, BatchLease* lease) {
  call_batch(items, pipeline);
  std::unique_ptr<BatchWrites> writes;
  try {
    writes = pipeline.take_batch_writes();
  } catch (const std::exception& e) {
    FB_LOG(kError, "sync") << "the pipeline's batch writes are lost: " << e.what();
  }
  if (!writes) return;
  if (lease) {
    lease->writes_ = std::move(writes);
    return;
  }
  if (Status s = writes->apply_now(); !s.ok()) {
    FB_LOG(kError, "sync") << "cannot commit the scripts' store writes of a batch: " << s;
  }
}

Result<BatchLease> MeetingDispatcher::map_batch(std::vector<BatchItem>& items, MeetingStore& store,
                                                MeetingPipeline& pipeline) {
  FB_ASSIGN(BatchLease lease, prepare_batch(items, store));
  run_batch(items, pipeline);
  return lease;
}

Status MeetingDispatcher::record_batch(const std::vector<BatchItem>& items, MeetingStore& store,
                                       const BatchLease* lease) {
  Db& db = store.db();
  const int64_t now = clock_.now_s();
  return db.transaction([&]() -> Status {
    // The meetings prepare_batch found not stored (a webhook batch's usual case) first, together
    // (one statement on PostgreSQL); the rest, and any of those another process stored meanwhile,
    // one by one below.
    std::vector<MeetingStore::NewMeeting> fresh;
    std::vector<size_t> fresh_items;
    for (size_t i = 0; i < items.size(); ++i) {
      const BatchItem& it = items[i];
      if (it.given_up || it.stored.found) continue;
      fresh.push_back({it.integration.id, &it.meeting, it.source, it.content_event_id,
                       it.mapped ? std::optional<int64_t>(now) : std::nullopt});
      fresh_items.push_back(i);
    }
    auto inserted = store.insert_new(fresh);
    if (!inserted.ok()) return inserted.status().with_context("storing the batch's new meetings");
    std::vector<bool> done(items.size(), false);
    for (size_t k = 0; k < fresh_items.size(); ++k) done[fresh_items[k]] = (*inserted)[k];
    for (size_t i = 0; i < items.size(); ++i) {
      const BatchItem& it = items[i];
      if (it.given_up) continue;  // another worker has it
      // A mapped meeting is stored and marked mapped in one statement: the upsert has just made
      // the stored content this one, so the mark is for the content that was mapped (another
      // process's newer version, stored after this commit, stays unmapped). It writes on the state
      // prepare_batch read (no read first), unless another process has changed the row since.
      const std::optional<int64_t> mapped_at = it.mapped ? std::optional<int64_t>(now) : std::nullopt;
      if (!done[i]) {
        FB_TRY(store.upsert(it.integration.id, it.meeting, it.source, it.content_event_id, mapped_at, &it.stored)
                   .status());
      }
      if (!it.mapped && !it.map_error.ok()) {
        std::string err = utf8_text(it.map_error.to_string(), options_.max_error_chars);
        Stmt& u = db.prepare(
            "UPDATE sync_meetings SET map_error=?, map_attempts=map_attempts+1 "
            "WHERE integration_id=? AND recording_id=? AND content_hash=?");
        u.bind_all(err, it.integration.id, it.meeting.recording_id, it.meeting.core_hash);
        FB_TRY(u.run());
      }
    }
    if (lease && lease->writes_) FB_TRY(lease->writes_->apply(db).with_context("the scripts' store writes"));
    return Status::Ok();
  });
}

}  // namespace fb::detail

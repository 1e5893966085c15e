#include "sync/meeting_dispatcher.h"

#include "core/log.h"
#include "sync/sync_schema.h"

namespace fb::detail {

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
    std::string raw;
    Status s = db_.transaction([&]() -> Status {
      Stmt& q = db_.prepare(
          "SELECT content_version, mapped_version, claim_token, claim_until, raw_json FROM sync_meetings "
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
        std::string err = mapped.to_string();
        if (err.size() > options_.max_error_chars) err.resize(options_.max_error_chars);
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

}  // namespace fb::detail

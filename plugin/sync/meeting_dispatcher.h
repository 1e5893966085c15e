// meeting_dispatcher.h: hands stored meetings to the MeetingPipeline exactly once per content
// version, for the sync engine and the webhook workers alike.
//
// dispatch() claims the row first (in one BEGIN IMMEDIATE transaction: mapped_version <
// content_version and no live claim -> write a claim token, the claimed version and an expiry),
// runs MeetingPipeline::on_meeting outside any transaction, then:
//   success -> mapped_version = claimed version, map_error cleared;
//   failure -> left unmapped, map_error and map_attempts recorded (a later dispatch retries it).
// A concurrent caller (another thread, or another process on the same database file) that finds
// a live claim returns kBusy without calling the pipeline; the claimant re-checks after it
// finishes and maps a version that arrived meanwhile, so nothing is left behind. A claim whose
// holder died expires after claim_ttl_s and is taken over. The one window for a second mapping
// of the same version is a crash after on_meeting succeeded and before the row was marked (the
// CRM side should upsert by recording id).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "core/random.h"
#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

struct DispatcherOptions {
  // How long a claim protects a meeting being mapped; must exceed the longest pipeline call.
  int claim_ttl_s = 600;
  size_t max_error_chars = 1000;  // map_error is truncated to this
};

enum class DispatchOutcome {
  kMapped,         // the pipeline accepted at least one version in this call
  kAlreadyMapped,  // nothing to do: mapped_version >= content_version
  kBusy,           // another worker holds a live claim and will map it
  kFailed,         // the pipeline failed; the meeting stays unmapped with the error recorded
};
const char* dispatch_outcome_name(DispatchOutcome o);

struct DispatchResult {
  DispatchOutcome outcome = DispatchOutcome::kAlreadyMapped;
  int64_t mapped_version = 0;  // after the call
  int mapped_count = 0;        // pipeline calls that succeeded in this call
  Status error;                // the pipeline's Status when kFailed
};

struct DispatchSummary {
  int mapped = 0;   // meetings mapped
  int failed = 0;   // meetings whose pipeline call failed
  int busy = 0;     // meetings claimed by someone else
  Status first_error;
};

class MeetingDispatcher {
 public:
  // Applies the "sync" migrations. All references must outlive the dispatcher.
  static Result<std::unique_ptr<MeetingDispatcher>> open(Db& db, Clock& clock, DispatcherOptions options = {},
                                                         Random& random = system_random());

  // Maps the stored meeting if it has an unmapped content version. `source` ("sync", "webhook")
  // goes into MeetingEvent::source. Non-ok only for storage errors or an unknown meeting
  // (kNotFound); a pipeline failure is a DispatchResult with kFailed.
  Result<DispatchResult> dispatch(const IntegrationInfo& integration, int64_t recording_id, MeetingPipeline& pipeline,
                                  std::string_view source);
  // Dispatches up to `limit` unmapped meetings of the integration (oldest first): new ones, and
  // those whose earlier mapping failed.
  Result<DispatchSummary> dispatch_pending(const IntegrationInfo& integration, MeetingPipeline& pipeline,
                                           std::string_view source, int limit = 1000);

 private:
  MeetingDispatcher(Db& db, Clock& clock, DispatcherOptions options, Random& random)
      : db_(db), clock_(clock), options_(options), random_(random) {}

  Db& db_;
  Clock& clock_;
  const DispatcherOptions options_;
  Random& random_;
};

}  // namespace fb::detail

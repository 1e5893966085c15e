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
// The batch path (issue 11): map_batch() + record_batch() process a batch of parsed meetings
// (webhook events, a sync page) with no write before the mapping and one write after it:
//   map_batch    takes the process-wide locks of the batch's recordings (so no other thread of
//                this process maps them meanwhile), reads their stored hash and versions, works
//                out each meeting's content version, and calls on_meeting for each version not
//                yet mapped (and on_webhook for webhook events) between the pipeline's
//                begin_batch() and end_batch(), outside any transaction;
//   record_batch inside the caller's transaction (the one that also marks the webhook events
//                done, or commits the sync page's checkpoint): upserts the meetings (content by
//                pointer for webhook events) and records each mapped version or mapping error.
// A crash between the two leaves the events claimed (or the page not checkpointed): they are
// mapped again after the restart, as with dispatch(); the CRM's idempotency keys
// (recording, content version, call) make that replay harmless. Across processes the write is
// conditional (a version is recorded mapped only while the stored hash is the one that was mapped).
//
// Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "core/random.h"
#include "fathom/models.h"
#include "fathom_bridge/config.h"
#include "sync/meeting_store.h"
#include "fathom_bridge/status.h"
#include "store/db.h"

namespace fb::detail {

struct DispatcherOptions {
  // How long a claim protects a meeting being mapped; must exceed the longest pipeline call.
  int claim_ttl_s = 600;          // sync.mapping_claim_ttl_s
  size_t max_error_chars = 1000;  // map_error is truncated to this
  static DispatcherOptions from_config(const Config& config);
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

// One meeting of a batch, parsed once by the caller.
struct BatchItem {
  IntegrationInfo integration;
  Meeting meeting;               // meeting.raw_json is what the pipeline gets, unless raw is set
  // The meeting's JSON when the caller keeps it (a webhook body; meeting.raw_json is then empty),
  // and its parse, handed to the pipeline (MeetingEvent::parsed) so the hooks do not parse it
  // again. Both valid until run_batch returns.
  std::string_view raw;
  const ParsedJson* parsed = nullptr;
  int64_t content_event_id = 0;  // >0: the content is that inbox event's body (stored by pointer)
  std::string source;            // "webhook", "sync"
  bool react = false;            // also run MeetingPipeline::on_webhook (webhook events)
  // When set, run_batch asks it right before the item's first pipeline call; false means the
  // item was given up (a stuck webhook worker's batch handed it to another worker): it is skipped,
  // with no pipeline call, and record_batch leaves it alone.
  std::function<bool()> take;
  // Set by map_batch:
  UpsertResult upsert;           // the version as worked out from what was stored
  MeetingState stored;           // the row as prepare_batch expects it before this item's upsert
  bool mapped = false;           // on_meeting accepted upsert.content_version in this batch
  Status map_error;              // on_meeting's failure (recorded on the meeting)
  Status status;                 // the item's outcome: map_error, or the reaction's failure
  bool given_up = false;         // take() said false: none of the above applies
  std::vector<int64_t> script_versions;  // the script versions its CRM operations ran on (issue 15)
};

// Holds the process-wide locks of a batch's recordings until it is destroyed (after the commit).
class BatchLease {
 public:
  BatchLease() = default;
  ~BatchLease();
  BatchLease(BatchLease&& o) noexcept
      : keys_(std::move(o.keys_)), integrations_(std::move(o.integrations_)), writes_(std::move(o.writes_)) {
    o.keys_.clear();
    o.integrations_.clear();
  }
  BatchLease& operator=(BatchLease&&) = delete;
  BatchLease(const BatchLease&) = delete;
  // Lets go of the locks of one integration's recordings now (its items were given up and another
  // thread may map them). Not thread-safe: the caller orders it with the destructor.
  void release_integration(int64_t integration_id);

 private:
  friend class MeetingDispatcher;
  std::vector<std::string> keys_;
  std::vector<int64_t> integrations_;  // keys_[i] is a recording of integrations_[i]
  std::unique_ptr<BatchWrites> writes_;  // what run_batch's pipeline left for record_batch
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

  // The batch path (see the top of this file). map_batch fills each item's upsert, mapped,
  // map_error and status; non-ok only for a storage error (then nothing was mapped). store's Db
  // must be the one record_batch's caller writes through.
  Result<BatchLease> map_batch(std::vector<BatchItem>& items, MeetingStore& store, MeetingPipeline& pipeline);
  // map_batch in two steps, for a caller with work between them (sync fetches content the
  // mapping needs): prepare_batch takes the locks and works out versions and needs_mapping;
  // run_batch calls the pipeline.
  // run_batch calls the pipeline.
  // The pipeline's batch writes (MeetingPipeline::take_batch_writes: the scripts' store.set) go
  // into lease, for record_batch to make in the batch's transaction; without a lease they are
  // committed at the end of run_batch, in one transaction of their own.
  Result<BatchLease> prepare_batch(std::vector<BatchItem>& items, MeetingStore& store);
  void run_batch(std::vector<BatchItem>& items, MeetingPipeline& pipeline, BatchLease* lease = nullptr);
  // REQUIRES: inside a transaction on store.db() (it joins it), with the lease still held. Also
  // makes the lease's batch writes, so they commit or roll back with the batch.
  Status record_batch(const std::vector<BatchItem>& items, MeetingStore& store, const BatchLease* lease = nullptr);

  // Where single dispatch() reads meetings stored by pointer.
  void set_content_loader(ContentLoader loader) { loader_ = std::move(loader); }

 private:
  MeetingDispatcher(Db& db, Clock& clock, DispatcherOptions options, Random& random)
      : db_(db), clock_(clock), options_(options), random_(random) {}

  Db& db_;
  Clock& clock_;
  const DispatcherOptions options_;
  Random& random_;
  ContentLoader loader_;
};

}  // namespace fb::detail

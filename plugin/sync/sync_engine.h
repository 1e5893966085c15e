// sync_engine.h: brings an integration's meetings from Fathom into the store, resumably, once.
//
// Modes
//   backfill     created_after = now - backfill_days.
//   incremental  created_after = high-water mark (newest created_at of the last completed run)
//                minus overlap_s; without a mark yet, a backfill. With nothing new: 1 API call.
//   manual       an explicit [from, to] range of created_at, or one stored recording (re-listed
//                through a one-second window around its created_at: Fathom has no
//                GET /meetings/{id}).
// Each page costs one list call. The page's meetings and the checkpoint (next cursor + the
// filters) commit in one transaction, so a process killed mid-sync resumes at the first page it
// had not committed; the high-water mark only moves when the last page commits. New or changed
// meetings go to the MeetingDispatcher (exactly once per content version, also against webhook
// workers), and after the listing every still-unmapped meeting of the integration is retried.
// Transcripts and summaries are fetched only when a rule asks (through content_source()) or
// when fetch_transcripts / fetch_summaries say always; API-key integrations then get them with
// the list call itself (include_transcript / include_summary), OAuth ones one call per recording.
//
// One sync at a time per integration: a lease in sync_state (token, host, pid, expiry) guards
// against other threads, processes and hosts on the same database. The running sync renews it
// every lease_ttl_s / 3 (a thread of its own, so a long page or a rate-limit wait keeps it), and
// every write of the run is conditional on its token (a run whose lease was taken over stops at
// its next page). A lease whose expiry has passed is taken over. On SQLite (one machine) the lease
// of a process of this host that died is taken over at once; on PostgreSQL a pid proves nothing
// (the holder may be another host, or a container with the same host name), so only the expiry
// counts. A second run() while one is running fails with kConflict ("already running"). An integration whose status is not "active", or whose
// credential source answers kReconnectRequired, is skipped: a "skipped" job is logged, no call
// is made.
//
// Every run is a row in sync_jobs (see JobRecord); recent_jobs() answers "which syncs failed,
// when, for whom, and why". A list item that does not parse never stops a sync: it is skipped,
// counted and listed with its reason in the job (items_skipped, skipped_items) and logged. Nor does
// a meeting the store refuses by one of its rules (a constraint, a trigger): its page is recorded
// again meeting by meeting, that one is skipped and listed the same way, and the job ends
// "succeeded_with_errors" (details: meetings_not_stored). Any other store error (away, full,
// read-only), or a rule that refuses every meeting of a page, fails the page with its checkpoint
// kept. IntegrationDirectory::record_sync is called after each success.
//
// Thread-safe: run() may be called from several threads for different integrations.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/integration_directory.h"
#include "core/pipeline.h"
#include "fathom/fathom_client.h"
#include "fathom_bridge/config.h"
#include "store/db.h"
#include "sync/content_source.h"
#include "sync/meeting_dispatcher.h"
#include "sync/meeting_store.h"

namespace fb::detail {

enum class SyncMode { kBackfill, kIncremental, kManual };
const char* sync_mode_name(SyncMode mode);  // "backfill", "incremental", "manual"

struct SyncOptions {
  int backfill_days = 90;          // sync.backfill_days
  int overlap_s = 300;             // sync.overlap_s
  bool fetch_transcripts = false;  // sync.fetch_transcripts
  bool fetch_summaries = false;    // sync.fetch_summaries
  bool include_action_items = true;   // sync.include_action_items: ask /meetings for them (no extra call)
  bool include_crm_matches = false;   // sync.include_crm_matches
  int lease_ttl_s = 120;           // sync.lease_ttl_s: renewed every third of it while the sync runs
  int dispatch_pending_limit = 1000;  // unmapped meetings retried at the start of a run
  // sync.backfill_days, overlap_s, fetch_transcripts, fetch_summaries.
  static SyncOptions from_config(const Config& config);
};

struct JobRecord;

struct SyncRequest {
  int64_t integration_id = 0;
  SyncMode mode = SyncMode::kIncremental;
  int64_t from_s = 0;        // manual range: created_at > from_s (0 = open)
  int64_t to_s = 0;          // manual range: created_at < to_s (0 = open)
  int64_t recording_id = 0;  // manual: this one stored recording instead of a range
  std::string trigger = "api";  // who asked: "scheduler", "api", "host", "cli", ...
  // Called with the ended job inside the transaction that records its end, so what it writes
  // (the host's sync_completed event) commits with it (issue 13); an error rolls that back.
  std::function<Status(const JobRecord&)> on_finished;
};

// One row of the job log.
struct JobRecord {
  int64_t id = 0;
  int64_t integration_id = 0;
  std::string tenant_id, user_id;  // for whom
  std::string mode;                // sync_mode_name
  std::string trigger;
  // "running", "succeeded", "succeeded_with_errors" (paged to the end, but map_failures > 0 or a
  // meeting the store refused; see error_details),
  // "failed", "skipped", "cancelled", or "interrupted" (its process died; a later run resumed
  // from its checkpoint).
  std::string status;
  std::string message;        // one line for humans (at most 2,000 bytes of an error, then "... (cut)")
  std::string error_code;     // code_name of the failure ("" on success)
  std::string error_details;  // JSON: {code, message, page, resumed, ...} ("" on success)
  std::string query_json;     // the filters that were paged
  int64_t resumed_job_id = 0; // the interrupted/failed job this one continued (0: fresh)
  int64_t started_at = 0, ended_at = 0;  // Unix seconds (ended_at 0 while running)
  int64_t api_calls = 0;      // HTTP calls spent, retries, content and pipeline-driven calls included
  int64_t pages = 0;
  int64_t meetings_seen = 0, meetings_new = 0, meetings_changed = 0, meetings_mapped = 0;
  int64_t map_failures = 0;   // pipeline failures (those meetings stay unmapped and are retried)
  int64_t content_fetched = 0;  // transcripts/summaries fetched by the "always" settings
  // List items that did not parse, and meetings the store refused to hold: left out (the rest of
  // the page and the later pages are stored), counted here, and the first kMaxSkippedListed listed
  // in skipped_items, a JSON array of {page, index, recording_id (0: none usable), reason}; "" when
  // none.
  int64_t items_skipped = 0;
  std::string skipped_items;
  int64_t cancel_requested_at = 0;  // when cancel() was asked (Unix seconds; 0: never)
  int64_t progress_at = 0;          // the oldest created_at the listing has reached (0: none yet)
  // The script versions its CRM operations ran on (issue 15), a JSON array of script version ids
  // (0: the scripts folder) in the order first used; "" when it made none (or is still running).
  std::string script_versions;
  static constexpr size_t kMaxSkippedListed = 50;
  // The run reached the end (some meetings may still have failed to map: see clean()).
  bool ok() const { return status == "succeeded" || status == "succeeded_with_errors"; }
  bool clean() const { return status == "succeeded"; }
};

struct JobFilter {
  int64_t integration_id = 0;  // 0: all
  std::string tenant_id;       // "": all
  std::string status;          // "": all; e.g. "failed"
  std::string mode;            // "": all
  int64_t since_s = 0;         // started_at >= since_s
  int limit = 50;
};

// Per-integration sync state (sync_state).
struct SyncState {
  int64_t integration_id = 0;
  std::string status = "idle";  // "idle", "running", "failed"
  std::string checkpoint_mode;  // "" when no listing is half done
  std::string checkpoint_cursor;
  std::string checkpoint_query;
  int64_t checkpoint_job_id = 0;
  int64_t checkpoint_pages = 0;
  int64_t high_water = 0;       // newest created_at of the last completed listing
  int64_t last_sync_at = 0;     // last success
  int64_t last_attempt_at = 0;
  std::string last_error, last_error_code;
  int64_t last_job_id = 0;
  std::string lease_host;
  int64_t lease_pid = 0, lease_until = 0;
  int64_t runs = 0, failures = 0, consecutive_failures = 0;
  int64_t meetings_new_total = 0, meetings_changed_total = 0, api_calls_total = 0;
  bool has_checkpoint() const { return !checkpoint_mode.empty(); }
};

class SyncEngine {
 public:
  // Applies the "sync" migrations. All references (and pipeline, when set) must outlive the
  // engine. pipeline may be null: meetings are then stored and left unmapped.
  static Result<std::unique_ptr<SyncEngine>> open(Db& db, FathomClient& client, IntegrationDirectory& directory,
                                                  MeetingStore& store, MeetingDispatcher& dispatcher,
                                                  MeetingPipeline* pipeline, Clock& clock, SyncOptions options = {});

  // Runs one sync to its end (or failure) on the calling thread and returns its job record.
  // Non-ok only when no job could be run at all: kConflict (another sync of the integration is
  // running), kNotFound (unknown integration), kInvalidArgument, storage errors. A failed sync is
  // an ok Result whose record has status "failed" and the error.
  // on_started, when given, is called on the calling thread with the job's id as soon as the job
  // is logged (before the first API call): how an asynchronous start learns the id.
  Result<JobRecord> run(const SyncRequest& request, const std::function<void(int64_t job_id)>& on_started = {});
  Result<JobRecord> backfill(int64_t integration_id, const std::string& trigger = "api");
  Result<JobRecord> incremental(int64_t integration_id, const std::string& trigger = "api");
  Result<JobRecord> manual_range(int64_t integration_id, int64_t from_s, int64_t to_s,
                                 const std::string& trigger = "api");
  Result<JobRecord> manual_recording(int64_t integration_id, int64_t recording_id, const std::string& trigger = "api");

  // Asks a running job to stop at its next page boundary (job "cancelled", checkpoint kept, so the
  // next run resumes there). Works across processes: the request is recorded on the job and its
  // run reads it before each page. Ok when the job is running (asking twice is harmless);
  // kNotFound for an unknown job, kFailedPrecondition when it has already ended.
  Status cancel(int64_t job_id);

  // The scheduler's claim of an integration's due run: due when interval_s has passed since its
  // last attempt (sync_state.last_attempt_at). One conditional UPDATE stamps the attempt, so of all
  // the schedulers of a fleet ticking at once exactly one gets true per due time; false when another
  // claimed it (or it is not due).
  Result<bool> claim_due_run(int64_t integration_id, int64_t now_s, int interval_s);

  // The job log.
  Result<std::vector<JobRecord>> recent_jobs(const JobFilter& filter = {});
  Result<JobRecord> job(int64_t job_id);
  // Sync state; an integration never synced has a default (idle) state.
  Result<SyncState> state(int64_t integration_id);
  // States of every integration with this status ("" = all), e.g. "failed".
  Result<std::vector<SyncState>> states(const std::string& status = "");

  // Cache-first transcripts/summaries for the scripting layer.
  CachedContentSource& content_source() { return content_; }
  void set_pipeline(MeetingPipeline* pipeline) { pipeline_.store(pipeline); }

  // Makes running and future syncs stop at their next wait or page boundary (job "cancelled",
  // checkpoint kept). For shutdown; irreversible.
  void request_stop() { stop_ = true; }

  // Called on the syncing thread after each page has committed (tests, progress reporting).
  using PageObserver = std::function<void(int64_t integration_id, int64_t page_number, const Page<Meeting>& page)>;
  void set_page_observer(PageObserver observer) { observer_ = std::move(observer); }

 private:
  struct Run;
  SyncEngine(Db& db, FathomClient& client, IntegrationDirectory& directory, MeetingStore& store,
             MeetingDispatcher& dispatcher, MeetingPipeline* pipeline, Clock& clock, SyncOptions options);
  Status acquire_lease(Run& run);
  Status plan(Run& run);
  Status list_pages(Run& run);
  // kCancelled when cancel() was asked for the run's job.
  Status check_cancel(Run& run);
  // The page's meetings (already mapped by run_batch), their mapped versions and the checkpoint,
  // in one transaction.
  Status store_page(Run& run, const Page<Meeting>& page, const std::vector<BatchItem>& items);
  // Fetches what the mapping of the page's new or changed meetings needs and the page lacks.
  Status fetch_for_mapping(Run& run, const std::vector<BatchItem>& items);
  Status fetch_content(Run& run, int64_t recording_id, ContentKind kind);
  Status map_and_fetch(Run& run, const std::vector<int64_t>& ids);
  Status finish(Run& run, const Status& outcome);
  // REQUIRES: inside the transaction that recorded the job's end. request.on_finished(the job).
  Status ended(const SyncRequest& request, int64_t job_id);
  Result<int64_t> log_job_start(Run& run, const std::string& status, const std::string& message);

  Db& db_;
  FathomClient& client_;
  IntegrationDirectory& directory_;
  MeetingStore& store_;
  MeetingDispatcher& dispatcher_;
  std::atomic<MeetingPipeline*> pipeline_;
  Clock& clock_;
  const SyncOptions options_;
  CachedContentSource content_;
  std::atomic<bool> stop_{false};
  PageObserver observer_;
};

}  // namespace fb::detail

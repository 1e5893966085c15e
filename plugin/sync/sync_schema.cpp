#include "sync/sync_schema.h"

namespace fb::detail {

// Times are Unix seconds. Ids of other components' rows (integration_id) carry no FOREIGN KEY,
// so this component migrates on its own.
static const std::vector<Migration> kSyncMigrations = {
    {1, R"sql(
CREATE TABLE sync_meetings(
  integration_id INTEGER NOT NULL,
  recording_id INTEGER NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  meeting_title TEXT,
  url TEXT NOT NULL DEFAULT '',
  share_url TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL DEFAULT 0,
  scheduled_start INTEGER NOT NULL DEFAULT 0,
  scheduled_end INTEGER NOT NULL DEFAULT 0,
  recording_start INTEGER NOT NULL DEFAULT 0,
  recording_end INTEGER NOT NULL DEFAULT 0,
  recorded_by_email TEXT NOT NULL DEFAULT '',
  recorded_by_name TEXT NOT NULL DEFAULT '',
  recorded_by_team TEXT,
  invitees_domains_type TEXT NOT NULL DEFAULT '',
  transcript_language TEXT NOT NULL DEFAULT '',
  invitee_count INTEGER NOT NULL DEFAULT 0,
  external_domains TEXT NOT NULL DEFAULT '',
  raw_json TEXT NOT NULL,
  content_hash TEXT NOT NULL,
  content_version INTEGER NOT NULL,
  mapped_version INTEGER NOT NULL DEFAULT 0,
  mapped_at INTEGER,
  map_error TEXT,
  map_attempts INTEGER NOT NULL DEFAULT 0,
  claim_token TEXT,
  claim_version INTEGER,
  claim_until INTEGER,
  first_source TEXT NOT NULL,
  last_source TEXT NOT NULL,
  first_seen_at INTEGER NOT NULL,
  last_seen_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY(integration_id, recording_id)
) WITHOUT ROWID;
CREATE INDEX sync_meetings_created ON sync_meetings(integration_id, created_at);
CREATE INDEX sync_meetings_unmapped ON sync_meetings(integration_id, recording_id)
  WHERE mapped_version < content_version;

CREATE TABLE sync_meeting_content(
  integration_id INTEGER NOT NULL,
  recording_id INTEGER NOT NULL,
  kind TEXT NOT NULL,
  json TEXT NOT NULL,
  source TEXT NOT NULL,
  fetched_at INTEGER NOT NULL,
  PRIMARY KEY(integration_id, recording_id, kind)
) WITHOUT ROWID;

CREATE TABLE sync_state(
  integration_id INTEGER PRIMARY KEY,
  status TEXT NOT NULL DEFAULT 'idle',
  checkpoint_mode TEXT,
  checkpoint_cursor TEXT,
  checkpoint_query TEXT,
  checkpoint_job_id INTEGER,
  checkpoint_pages INTEGER NOT NULL DEFAULT 0,
  pending_high_water INTEGER NOT NULL DEFAULT 0,
  high_water INTEGER NOT NULL DEFAULT 0,
  last_sync_at INTEGER NOT NULL DEFAULT 0,
  last_attempt_at INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  last_error_code TEXT,
  last_job_id INTEGER,
  lease_token TEXT,
  lease_host TEXT,
  lease_pid INTEGER,
  lease_until INTEGER,
  runs INTEGER NOT NULL DEFAULT 0,
  failures INTEGER NOT NULL DEFAULT 0,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  meetings_new_total INTEGER NOT NULL DEFAULT 0,
  meetings_changed_total INTEGER NOT NULL DEFAULT 0,
  api_calls_total INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sync_jobs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  integration_id INTEGER NOT NULL,
  tenant_id TEXT NOT NULL DEFAULT '',
  user_id TEXT NOT NULL DEFAULT '',
  mode TEXT NOT NULL,
  trigger TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL,
  message TEXT NOT NULL DEFAULT '',
  error_code TEXT,
  error_details TEXT,
  query_json TEXT,
  resumed_job_id INTEGER,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  api_calls INTEGER NOT NULL DEFAULT 0,
  pages INTEGER NOT NULL DEFAULT 0,
  meetings_seen INTEGER NOT NULL DEFAULT 0,
  meetings_new INTEGER NOT NULL DEFAULT 0,
  meetings_changed INTEGER NOT NULL DEFAULT 0,
  meetings_mapped INTEGER NOT NULL DEFAULT 0,
  map_failures INTEGER NOT NULL DEFAULT 0,
  content_fetched INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sync_jobs_integration ON sync_jobs(integration_id, started_at);
CREATE INDEX sync_jobs_status ON sync_jobs(status, started_at);
)sql"},
    // Items of a page that did not parse are skipped (fathom/models.h SkippedItem), counted, and
    // the first of them listed with their reasons: a JSON array of {page, index, recording_id, reason}.
    {2, R"sql(
ALTER TABLE sync_jobs ADD COLUMN items_skipped INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN skipped_items TEXT;
)sql"},
    // Content once (issue 11): a meeting's JSON is stored in one place. content_event_id points at
    // the webhook_inbox row whose body (in the webhook body log) is the meeting, and raw_json is
    // then ''; otherwise raw_json holds it. content_parts says which include_* parts that copy has
    // (bit 1 transcript, 2 default_summary, 4 action_items, 8 crm_matches). sync_meeting_content
    // keeps only what came from the API's own endpoints.
    {3, R"sql(
ALTER TABLE sync_meetings ADD COLUMN content_event_id INTEGER;
ALTER TABLE sync_meetings ADD COLUMN content_parts INTEGER NOT NULL DEFAULT 0;
CREATE INDEX sync_meetings_content_event ON sync_meetings(content_event_id) WHERE content_event_id IS NOT NULL;
)sql"},
    // Long syncs are watched and cancelled (issue 14), from any process on the store: a cancel is a
    // request recorded on the job, which its run reads at each page boundary; progress_at is the
    // oldest created_at its listing has reached (Unix seconds, 0: none yet), for the ETA.
    {4, R"sql(
ALTER TABLE sync_jobs ADD COLUMN cancel_requested_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_jobs ADD COLUMN progress_at INTEGER NOT NULL DEFAULT 0;
)sql"},
    // Every CRM operation is attributed to its script version (issue 15): the versions a job's
    // CRM operations ran on, as a JSON array of script_versions ids (0: the scripts folder), in
    // the order first used; NULL when it made none.
    {5, R"sql(
ALTER TABLE sync_jobs ADD COLUMN script_versions TEXT;
)sql"},
};

Status migrate_sync_schema(Db& db) { return db.migrate("sync", kSyncMigrations); }

Result<std::vector<int64_t>> select_unmapped(Db& db, int64_t integration_id, int limit) {
  std::vector<int64_t> out;
  FB_TRY(db.with([&]() -> Status {
    Stmt& q = db.prepare(
        "SELECT recording_id FROM sync_meetings WHERE integration_id=? AND mapped_version < content_version "
        "ORDER BY created_at, recording_id LIMIT ?");
    q.bind_all(integration_id, limit);
    return each_row(q, [&](const Stmt& r) { out.push_back(r.int64(0)); });
  }));
  return out;
}

}  // namespace fb::detail

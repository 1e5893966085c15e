#include "webhooks/schema.h"

namespace fb::detail {

Status migrate_webhooks(Db& db) {
  static const std::vector<Migration> kSteps = {
      {1,
       // One row per receiving endpoint. The signing secrets are sealed (AES-GCM, AAD bound to the
       // path token); the path token routes a delivery to its registration and is not a secret of
       // the signature scheme. Times are Unix seconds.
       "CREATE TABLE webhook_registrations("
       " id INTEGER PRIMARY KEY,"
       " integration_id INTEGER NOT NULL,"
       " fathom_webhook_id TEXT,"  // NULL when the webhook was made in Fathom's settings
       " path_token TEXT NOT NULL UNIQUE,"
       " destination_url TEXT NOT NULL,"
       " secret_sealed BLOB NOT NULL,"
       " prev_secret_sealed BLOB,"
       " prev_secret_expires_at INTEGER,"
       " triggered_for TEXT NOT NULL,"  // JSON array
       " include_transcript INTEGER NOT NULL, include_summary INTEGER NOT NULL,"
       " include_action_items INTEGER NOT NULL, include_crm_matches INTEGER NOT NULL,"
       " source TEXT NOT NULL CHECK(source IN ('api','manual')),"
       " created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);"
       "CREATE INDEX webhook_registrations_integration ON webhook_registrations(integration_id);"
       // The durable inbox. A verified delivery is a row before its 2xx is sent. Times are Unix
       // milliseconds. The body is the raw bytes that were signed.
       "CREATE TABLE webhook_inbox("
       " id INTEGER PRIMARY KEY,"
       " integration_id INTEGER NOT NULL,"
       " webhook_id TEXT NOT NULL,"
       " registration_id INTEGER NOT NULL,"
       " recording_id INTEGER NOT NULL,"
       " received_at INTEGER NOT NULL,"
       " body BLOB NOT NULL,"
       " status TEXT NOT NULL DEFAULT 'pending' CHECK(status IN ('pending','processing','done','dead')),"
       " attempts INTEGER NOT NULL DEFAULT 0,"
       " next_attempt_at INTEGER NOT NULL,"
       " claimed_at INTEGER,"
       " last_error TEXT,"
       " processed_at INTEGER,"
       " UNIQUE(integration_id, webhook_id));"
       "CREATE INDEX webhook_inbox_due ON webhook_inbox(status, next_attempt_at);"},
      {2,
       // Bodies in the body log (body_log.h): body is then empty (a zero-length blob: SQLite cannot
       // drop NOT NULL without rebuilding the table) and the row says where the body is. NULL
       // body_segment: the body is in the row, as before. The index serves the log's collector.
       "ALTER TABLE webhook_inbox ADD COLUMN body_segment TEXT;"
       "ALTER TABLE webhook_inbox ADD COLUMN body_offset INTEGER;"
       "ALTER TABLE webhook_inbox ADD COLUMN body_length INTEGER;"
       "CREATE INDEX webhook_inbox_body_segment ON webhook_inbox(body_segment) WHERE body_segment IS NOT NULL;"},
      {3,
       // The script versions the event's CRM operations ran on, in its last attempt (issue 15):
       // a JSON array of script_versions ids (0: the scripts folder); NULL when it made none.
       "ALTER TABLE webhook_inbox ADD COLUMN script_versions TEXT;"},
      {4,
       // Claim leases (issue 12): which claim holds an event in processing (claim_token: the
       // claiming inbox and its claim number, a fencing token for the outcome) and until when
       // (lease_until, Unix ms; its holder renews it while it works). Events claimed before this
       // step have no lease: expired at once.
       "ALTER TABLE webhook_inbox ADD COLUMN claim_token TEXT;"
       "ALTER TABLE webhook_inbox ADD COLUMN lease_until INTEGER;"
       "UPDATE webhook_inbox SET lease_until=COALESCE(claimed_at, 0) WHERE status='processing';"
       "CREATE INDEX webhook_inbox_lease ON webhook_inbox(lease_until) WHERE status='processing';"},
      {5,
       // PostgreSQL keeps the bodies in the rows (no body log): lz4 instead of the default pglz
       // for them, which took half of the server's CPU of an ingest (a 20 KB body: ~150 us to
       // compress with pglz, ~15 with lz4). A server built without lz4 (or older than 14) keeps
       // pglz. SQLite: nothing to do.
       "SELECT 1",
       "DO 'BEGIN ALTER TABLE webhook_inbox ALTER COLUMN body SET COMPRESSION lz4;"
       " EXCEPTION WHEN OTHERS THEN NULL; END'"},
  };
  return db.migrate("webhooks", kSteps);
}

}  // namespace fb::detail

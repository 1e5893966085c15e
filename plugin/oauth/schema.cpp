#include "oauth/schema.h"

namespace fb::detail {
namespace {

// Append new steps only; a shipped step is never edited.
const std::vector<Migration> kSteps = {
    {1, R"sql(
CREATE TABLE integrations (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  tenant_id            TEXT    NOT NULL,
  user_id              TEXT    NOT NULL,
  team_id              TEXT    NOT NULL DEFAULT '',
  kind                 TEXT    NOT NULL CHECK (kind IN ('oauth', 'api_key')),
  fathom_email         TEXT,
  fathom_name          TEXT,
  status               TEXT    NOT NULL DEFAULT 'active'
                               CHECK (status IN ('active', 'reconnect_required', 'disconnected')),
  is_active            INTEGER NOT NULL DEFAULT 1,
  access_token         BLOB,
  refresh_token        BLOB,
  api_key              BLOB,
  token_version        INTEGER NOT NULL DEFAULT 0,
  token_expires_at     INTEGER,
  last_refresh_at      INTEGER,
  last_refresh_error   TEXT,
  refresh_failures     INTEGER NOT NULL DEFAULT 0,
  cooldown_until       INTEGER,
  refresh_lease_owner  TEXT,
  refresh_lease_until  INTEGER,
  last_sync_at         INTEGER,
  connected_at         INTEGER NOT NULL,
  created_at           INTEGER NOT NULL,
  updated_at           INTEGER NOT NULL,
  UNIQUE (tenant_id, user_id)
);
CREATE INDEX integrations_active ON integrations (is_active, status);

CREATE TABLE oauth_states (
  state_hash     TEXT    PRIMARY KEY,
  tenant_id      TEXT    NOT NULL,
  user_id        TEXT    NOT NULL,
  team_id        TEXT    NOT NULL DEFAULT '',
  mode           TEXT    NOT NULL CHECK (mode IN ('popup', 'redirect')),
  pkce_verifier  BLOB,
  created_at     INTEGER NOT NULL,
  expires_at     INTEGER NOT NULL,
  used_at        INTEGER
);
CREATE INDEX oauth_states_expiry ON oauth_states (expires_at);

CREATE TABLE audit_log (
  id              INTEGER PRIMARY KEY AUTOINCREMENT,
  integration_id  INTEGER,
  tenant_id       TEXT    NOT NULL,
  user_id         TEXT    NOT NULL,
  event           TEXT    NOT NULL,
  detail          TEXT    NOT NULL DEFAULT '',
  at              INTEGER NOT NULL
);
CREATE INDEX audit_log_integration ON audit_log (integration_id, id);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, user_id, id);
)sql"},
    // A refresh sent without an answer may have rotated the refresh token on the server: until a
    // later send settles it, the old access token is not handed out (issue 10, point 2).
    {2, R"sql(
ALTER TABLE integrations ADD COLUMN refresh_in_doubt INTEGER NOT NULL DEFAULT 0;
)sql"},
};

}  // namespace

Status migrate_oauth_schema(Db& db) { return db.migrate("oauth", kSteps); }

}  // namespace fb::detail

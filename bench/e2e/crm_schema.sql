-- The benchmark CRM's tables (bench/e2e): the same schema for the in-process host (e2e_host), the
-- HTTP CRM (e2e_crm_server) and the Node receiver (node/receiver.mjs). Ids are made from natural
-- keys, so every system writes the same rows for the same meetings whatever the order, and an
-- upsert by natural key makes a repeated CRM call harmless (the idempotency the C ABI asks for).
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS companies (
  id TEXT PRIMARY KEY,             -- 'co:' || domain
  domain TEXT NOT NULL UNIQUE,
  name TEXT
);
CREATE TABLE IF NOT EXISTS contacts (
  id TEXT PRIMARY KEY,             -- 'ct:' || email
  email TEXT NOT NULL UNIQUE,
  name TEXT,
  company_id TEXT
);
CREATE TABLE IF NOT EXISTS activities (
  id TEXT PRIMARY KEY,             -- 'act:' || recording_id
  recording_id INTEGER NOT NULL,
  type TEXT, title TEXT, started_at TEXT, ended_at TEXT, duration_s INTEGER,
  share_url TEXT, url TEXT, summary TEXT, owner_email TEXT,
  contact_ids TEXT, company_ids TEXT  -- JSON arrays, compact
);
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,             -- 'task:' || activity_id || ':' || title
  activity_id TEXT, recording_id INTEGER, title TEXT, assignee_email TEXT, playback_url TEXT
);
CREATE TABLE IF NOT EXISTS attachments (
  id TEXT PRIMARY KEY,             -- 'att:' || record_type || ':' || record_id || ':' || recording_id
  record_type TEXT, record_id TEXT, recording_id INTEGER, share_url TEXT, title TEXT
);

// config.h: every setting of fathom-bridge, with its default, and how it is loaded.
//
// Settings come from a JSON config file (keys as in the comments below, grouped by section), then
// from the environment, which wins. load_config() checks everything and fails with kConfig and a
// message that names the setting; a secret's value is never echoed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "fathom_bridge/status.h"

namespace fb {

struct FathomConfig {
  // "fathom": { ... }
  std::string client_id;      // client_id; env FATHOM_CLIENT_ID (required for OAuth)
  std::string client_secret;  // client_secret; env FATHOM_CLIENT_SECRET (required for OAuth)
  std::string redirect_uri;   // redirect_uri; env FATHOM_REDIRECT_URI (required for OAuth)
  std::string authorize_url = "https://fathom.video/external/v1/oauth2/authorize";  // env FATHOM_AUTHORIZE_URL
  std::string token_url = "https://fathom.video/external/v1/oauth2/token";          // env FATHOM_TOKEN_URL
  std::string api_base = "https://api.fathom.ai/external/v1";                       // env FATHOM_API_BASE
  std::string scope = "public_api";
  bool use_pkce = false;          // use_pkce: PKCE S256 (Fathom does not document it)
  std::string ca_file;            // ca_file: extra CA bundle; empty uses the system store
  bool verify_tls = true;         // verify_tls
  int connect_timeout_ms = 10000;
  int read_timeout_ms = 30000;
  // proxy: "http://host:port" for the calls to Fathom (API and token endpoint). Empty: the
  // environment's HTTPS_PROXY / HTTP_PROXY (or lower-case), by the URL's scheme, which every other
  // outbound call (server.crm_url) honours too.
  std::string proxy;
  // no_proxy: comma-separated hosts reached directly ("example.com" and its subdomains,
  // ".example.com", "host:port", "*": all). Empty: the environment's NO_PROXY. Loopback
  // (localhost, 127.0.0.0/8, ::1) is always reached directly.
  std::string no_proxy;
  // OAuth callers may not ask /meetings for transcripts or summaries (fathom-api.md 1.5).
  bool oauth_include_content_on_list = false;
  // issuer; env FATHOM_ISSUER: the authorization server's issuer identifier (RFC 9207). A callback
  // that carries `iss` must carry exactly this value. Empty (Fathom documents none): an `iss` must
  // have the origin of authorize_url (scheme, host and port).
  std::string issuer;
  // require_iss: refuse a callback without `iss` (error iss_missing). Off by default: Fathom is not
  // known to send it. Turn it on when the server advertises RFC 9207 support.
  bool require_iss = false;
  // callback_timeout_ms: the most the OAuth callback (the user's popup) waits for the code
  // exchange, connect and answer included. The code is sent once and never re-sent.
  int callback_timeout_ms = 15000;
};

struct FrontendConfig {
  // "frontend": { ... }
  std::string url;  // url; env FRONTEND_URL: where the redirect flow returns, and the popup's target origin
  std::string success_path = "/settings/integrations/fathom";  // success_path
};

struct TokenConfig {
  // "tokens": { ... }
  // key; env FATHOM_BRIDGE_TOKEN_KEY: "base64(32 bytes)" or "keyid:base64(32 bytes)". Required.
  std::string key;
  // old_keys; env FATHOM_BRIDGE_OLD_TOKEN_KEYS: comma-separated "keyid:base64" still accepted for opening.
  std::vector<std::string> old_keys;
  // refresh_buffer_s: refresh when expiring within this, capped at half the token's lifetime (a
  // 5 s token is refreshed 2.5 s before expiry, not on every call).
  int refresh_buffer_s = 300;
  int state_ttl_s = 600;                 // state_ttl_s: lifetime of an OAuth state
  int refresh_max_attempts = 4;          // refresh_max_attempts
  int refresh_backoff_base_ms = 500;     // refresh_backoff_base_ms
  int refresh_backoff_max_ms = 30000;    // refresh_backoff_max_ms
  int failure_cooldown_s = 900;          // failure_cooldown_s: after transient failures, wait this long
  int keepalive_window_s = 6 * 3600;     // keepalive_window_s: sweep refreshes tokens idle longer than this
  int refresh_lock_ttl_s = 60;           // refresh_lock_ttl_s: cross-process refresh lease
};

struct SyncConfig {
  // "sync": { ... }
  int backfill_days = 90;                  // backfill_days: initial backfill window
  int interval_s = 3600;                   // interval_s: incremental sync period
  int overlap_s = 300;                     // overlap_s: re-read this far behind the high-water mark
  bool fetch_transcripts = false;          // fetch_transcripts: always fetch (else only when a rule asks)
  bool fetch_summaries = false;            // fetch_summaries
  bool include_action_items = true;        // include_action_items: list pages carry them at no extra call
  bool include_crm_matches = false;        // include_crm_matches
  int rate_limit_per_minute = 60;          // rate_limit_per_minute: starting budget per account
  int max_attempts = 5;                    // max_attempts: per API call on 5xx/network errors
  int backoff_base_ms = 500;               // backoff_base_ms
  int backoff_max_ms = 30000;              // backoff_max_ms
  bool scheduler = true;                   // scheduler: run the built-in scheduler thread
  // scheduler_concurrency: integrations the scheduler syncs at once. Each Fathom account has its own
  // rate limit, so one slow or rate-limited account must not delay every other one by an hour.
  int scheduler_concurrency = 4;
  // mapping_claim_ttl_s: a meeting being mapped is claimed in the database for this long. A host
  // killed while mapping leaves its claims behind: those meetings are mapped again (by a sync or a
  // webhook worker) once the claim expires. Must exceed the longest mapping (the scripts' time
  // budget plus the CRM calls it makes), or a slow mapping may run twice.
  int mapping_claim_ttl_s = 600;
  // lease_ttl_s: one sync per integration at a time, in the whole fleet: a running sync holds a lease
  // in the store that it renews every third of this. A host that dies holding it blocks the
  // integration's syncs this long at most (on SQLite, a dead process on the same machine not at all).
  int lease_ttl_s = 120;
};

struct WebhookConfig {
  // "webhooks": { ... }
  std::string public_base_url;   // public_base_url; env FATHOM_BRIDGE_PUBLIC_URL: receiving base URL Fathom can reach
  std::string path_prefix = "/webhooks/fathom";  // path_prefix
  std::vector<std::string> triggered_for = {"my_recordings"};  // triggered_for
  bool include_transcript = true;     // include_transcript
  bool include_summary = true;        // include_summary
  bool include_action_items = true;   // include_action_items
  bool include_crm_matches = false;   // include_crm_matches
  int tolerance_s = 300;              // tolerance_s: timestamp tolerance both ways
  int64_t max_body_bytes = 16 << 20;  // max_body_bytes
  int workers = 2;                    // workers: processing threads
  int max_attempts = 8;               // max_attempts: before dead-letter
  int backoff_base_ms = 1000;         // backoff_base_ms
  int backoff_max_ms = 3600 * 1000;   // backoff_max_ms
  int secret_grace_s = 24 * 3600;     // secret_grace_s: a rotated-out secret stays valid this long
  int retention_days = 30;            // retention_days: processed (done) inbox events are deleted after this; 0 = keep
  // event_deadline_s: an event still processing after this long means its worker is stuck (a script
  // that escaped its budget, a CRM call that never returns): the sidecar's /readyz answers 503.
  // The host gets a "worker_stuck" event, the batch's events of other integrations go back to
  // pending for the other workers, and a replacement thread starts (at most `workers` at a time).
  int event_deadline_s = 300;
  // commit_timeout_ms: a delivery whose commit cannot start this soon (a locked database) is
  // answered 503 so the sender retries, well before its own timeout (about 15 s).
  int commit_timeout_ms = 3000;
  // claim_lease_s: how long a worker's claim holds its webhook events without renewal (renewed
  // every third of it while the worker lives). A host that dies holding events leaves them to the
  // other hosts of a fleet (or to its own next start, on SQLite) this long after its last renewal.
  int claim_lease_s = 60;
};

struct ScriptConfig {
  // "scripts": { ... }
  std::string dir = "scripts";            // dir; env FATHOM_BRIDGE_SCRIPTS_DIR
  std::string mapping = "mapping.lua";    // mapping
  std::string reactions = "reactions.lua";  // reactions
  int64_t instruction_limit = 50'000'000;   // instruction_limit per call
  int time_limit_ms = 2000;                 // time_limit_ms per call
  int64_t memory_limit_bytes = 64 << 20;    // memory_limit_bytes per state
  int max_call_depth = 200;                 // max_call_depth (Lua C stack / recursion)
  int64_t max_pattern_subject = 1 << 20;    // max_pattern_subject: bound on string pattern inputs
  bool hot_reload = true;                   // hot_reload
  int pool_size = 2;                        // pool_size: Lua states (one per worker)
  // hook_mode: "watchdog" arms the instruction hook only once a call has run watchdog_ms (tight
  // loops run at full speed; see plugin/scripting/README.md), "always" arms it for every call.
  std::string hook_mode = "watchdog";
  int watchdog_ms = 10;                     // watchdog_ms: script time before the hook is armed
  int reload_interval_ms = 1000;            // reload_interval_ms: stat script files at most this often (0: every event)
  // company_domains: our own email domains, for util.is_internal; empty: the recorder's domain.
  std::vector<std::string> company_domains;
  int fathom_calls_per_event = 4;           // fathom_calls_per_event: fathom.transcript/summary calls per event
  // crm_calls_per_event: crm.* calls one hook call may make. The time budget leaves out the time
  // the CRM takes, so without it a loop of CRM calls ran for as long as 2 s of its own Lua time
  // allowed (millions of CRM writes for one meeting). Exceeding it stops the script like a budget.
  int crm_calls_per_event = 1000;
  // crm_max_bytes: largest JSON text of one CRM call's arguments, and of its result. The host's
  // copy (the encoded arguments, the result text) also counts against memory_limit_bytes while
  // the call runs: arguments over either bound raise in the script, a larger result is the
  // call's failure ("too_large").
  int64_t crm_max_bytes = 4 << 20;
};

struct StoreConfig {
  // "store": { ... }
  std::string path = "fathom-bridge.db";  // path; env FATHOM_BRIDGE_DB
  bool full_sync = false;                 // full_sync: SQLite synchronous=FULL (power-loss durable)
  int busy_timeout_ms = 10000;            // busy_timeout_ms
  // url; env FATHOM_BRIDGE_STORE_URL: "postgresql://user@host:5432/db?sslmode=require" keeps every
  // piece of state in that PostgreSQL database instead of the SQLite file `path` (a fleet of app
  // servers shares it; README "Running several app servers"). libpq parameters pass through.
  std::string url;
  int pool_size = 4;                      // pool_size: PostgreSQL connections of each component (5 per process)
  // The store to open: url when set, else path.
  const std::string& target() const { return url.empty() ? path : url; }
};

struct ServerConfig {
  // "server": { ... } (sidecar mode)
  std::string host = "127.0.0.1";   // host
  int port = 8787;                  // port; env FATHOM_BRIDGE_PORT
  std::string api_token;            // api_token; env FATHOM_BRIDGE_API_TOKEN: bearer for the host-facing routes
  // threads: host-route requests handled at once (their handlers may wait on the database or on
  // Fathom). Connections are served by event loops, one per core; webhook deliveries never wait
  // on one of these threads.
  int threads = 16;
  // crm_url; env FATHOM_BRIDGE_CRM_URL: in sidecar mode every crm.<op> call of the scripts is
  // POSTed here as {"operation", "args", "idempotency_key", ...}; the host answers 200 with a JSON object.
  std::string crm_url;
  int event_buffer = 1000;          // event_buffer: accepted and unused (GET /v1/events reads the durable feed, see events)
  // shutdown_timeout_s: on SIGTERM/SIGINT, how long `serve` waits for in-flight work (deliveries,
  // webhook events, syncs stopping at their next safe point) before it exits anyway.
  int shutdown_timeout_s = 10;
};

struct EventsConfig {
  // "events": { ... } the durable event feed (fb_events_read, GET /v1/events)
  int64_t retention_s = 7 * 86400;  // retention_s: events older than this are deleted
  // push_url; env FATHOM_BRIDGE_EVENTS_PUSH_URL: when set, every event is also POSTed here, signed
  // with Standard Webhooks (webhook-id/-timestamp/-signature) using push_secret, and retried
  // with backoff (push_max_attempts, push_backoff_ms doubling up to push_backoff_max_ms).
  std::string push_url;
  // push_secret; env FATHOM_BRIDGE_EVENTS_PUSH_SECRET: "whsec_" + base64 of at least 16 bytes. It
  // also signs the sidecar's CRM operation calls (server.crm_url).
  std::string push_secret;
  int push_max_attempts = 8;
  int64_t push_backoff_ms = 1000;
  int64_t push_backoff_max_ms = 600000;
};

struct LogConfig {
  // "log": { ... }
  std::string format = "text";  // format; env FATHOM_BRIDGE_LOG_FORMAT: "text" or "json" (one object per line)
};

struct UserApiConfig {
  // "user_api": { ... } the routes a CRM's browser calls for its signed-in user (/fathom/*,
  // server/user_routes.h), authenticated by the CRM's own session JWT. Off unless jwt_secret or
  // jwks_file is set; then issuer and audience are required.
  std::string jwt_secret;   // jwt_secret; env FATHOM_BRIDGE_JWT_SECRET: HS256 shared secret (at least 32 bytes)
  std::string jwks_file;    // jwks_file; env FATHOM_BRIDGE_JWKS_FILE: JWKS with the CRM's RS256/ES256 public keys
  std::string issuer;       // issuer: the exact `iss` every token must carry
  std::string audience;     // audience: a value the token's `aud` (string or array) must contain
  int leeway_s = 30;        // leeway_s: clock skew allowed on exp and nbf
  std::string tenant_claim = "tenant_id";  // tenant_claim: the claim naming the user's tenant
  std::string user_claim = "sub";          // user_claim: the claim naming the user
  std::string team_claim = "team_id";      // team_claim: the claim naming the user's team (optional in a token)
  // allowed_origins: the CRM's browser origins ("https://crm.example.com") answered with CORS
  // headers; a request from any other Origin is refused (403). No cookies are used.
  std::vector<std::string> allowed_origins;
  bool enabled() const { return !jwt_secret.empty() || !jwks_file.empty(); }
};

struct Config {
  FathomConfig fathom;
  FrontendConfig frontend;
  TokenConfig tokens;
  SyncConfig sync;
  WebhookConfig webhooks;
  ScriptConfig scripts;
  StoreConfig store;
  ServerConfig server;
  std::string log_level = "info";  // log_level (or log.level); env FATHOM_BRIDGE_LOG_LEVEL
  LogConfig log;
  EventsConfig events;
  UserApiConfig user_api;
};

// What load_config needs to be strict about: a host that only uses API keys needs no OAuth app.
struct ConfigRequirements {
  bool oauth = true;
};

// Reads the JSON file at path (empty: none), applies the environment, validates.
Result<Config> load_config(const std::string& path, ConfigRequirements req = {});
// Parses a JSON document (for hosts that hold config in memory), applies the environment when
// use_env is true, validates.
Result<Config> parse_config(const std::string& json_text, bool use_env = true, ConfigRequirements req = {});
// Validates an assembled Config.
Status validate_config(const Config& config, ConfigRequirements req = {});

}  // namespace fb

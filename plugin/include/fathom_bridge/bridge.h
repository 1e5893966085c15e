// bridge.h: the C++ API of fathom-bridge. Start here.
//
//   auto bridge = fb::Bridge::open(config);            // store, scripts, workers
//   bridge.value()->register_crm_operation("upsert_contact", handler);
//   auto start = bridge.value()->connect_start({"acme", "u42"}, fb::ReturnMode::kPopup);
//   ... user approves at Fathom, the browser lands on the redirect URI ...
//   auto outcome = bridge.value()->connect_callback(query_string);   // serve outcome.body
//
// Threading: a Bridge is thread-safe; every method may be called from any thread. Callbacks
// (events, CRM handlers) run on worker threads. Destroying the Bridge stops its workers after
// in-flight work finishes.
// Errors: every method returns Status or Result<T> (status.h); nothing throws.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fathom_bridge/config.h"
#include "fathom_bridge/crm.h"
#include "fathom_bridge/events.h"
#include "fathom_bridge/status.h"

namespace fb {

// Who is asking: every integration belongs to one (tenant, user); every call is scoped by it.
struct Caller {
  std::string tenant_id;
  std::string user_id;
  std::string team_id;  // optional
};

enum class ReturnMode { kPopup, kRedirect };

struct ConnectStart {
  std::string authorize_url;  // open this in the user's browser (popup or full page)
  int64_t expires_at = 0;     // unix seconds; the state is refused after this
};

// The answer to the OAuth callback request, ready to send to the browser.
struct CallbackOutcome {
  bool ok = false;
  int64_t integration_id = 0;
  Code code = Code::kOk;       // why it failed
  std::string error;           // short machine reason: "access_denied", "state_expired", ...
  std::string reason;          // human-readable reason
  ReturnMode mode = ReturnMode::kPopup;
  int http_status = 200;       // 200 with the page (popup) or 302 (redirect)
  std::string content_type;    // "text/html; charset=utf-8" for the popup page
  std::string body;            // the popup page
  std::string location;        // the frontend URL (redirect mode)
  std::string to_json() const;
};

struct WebhookReply {
  int http_status = 500;
  std::string body;    // short reason
  Code code = Code::kOk;
};

struct SyncRequest {
  std::string mode = "incremental";  // "incremental", "backfill" or "manual"
  int64_t since = 0;                 // manual: unix seconds, 0 = open
  int64_t until = 0;
  int64_t recording_id = 0;          // manual: one recording
  // sync() only: when a sync of the integration is already running (in any process on the store),
  // wait for it to end and return its job record instead of kConflict: a "Sync now" pressed while
  // the scheduler or an earlier click is syncing shows that sync's result. When its owner died, the
  // wait ends by running this sync once the lease is free.
  bool wait_if_running = false;
};

struct OpenOptions {
  // Start the webhook workers and (when sync.scheduler is on) the scheduler. One-off tools such
  // as the CLI's status command turn this off; work then runs only when asked (sync, tick).
  bool background = true;
};

// A receiving route for one integration's webhook deliveries: an unguessable URL on this host and
// the signing secret(s) it accepts. Secrets are sealed at rest like tokens and are never returned.
struct WebhookRoute {
  int64_t id = 0;
  int64_t integration_id = 0;
  std::string source;             // "api" (created through Fathom's API) or "manual" (secret given by the host)
  std::string url;                // what Fathom delivers to ("" without webhooks.public_base_url)
  std::string path;               // the path part of url, what reaches receive_webhook
  std::string fathom_webhook_id;  // Fathom's id ("" for a manual route)
  int64_t created_at = 0;         // unix seconds
  // While > now, deliveries signed with the secret that the last rotation replaced are accepted too.
  int64_t previous_secret_expires_at = 0;
  // {"id", "integration_id", "source", "url", "path", "fathom_webhook_id", "created_at",
  //  "previous_secret_expires_at"} (null for the empty / zero ones). Never a secret.
  std::string to_json() const;
};

class Bridge {
 public:
  struct Impl;

  // Opens the store (migrations), loads scripts, starts workers per options and config.
  static Result<std::unique_ptr<Bridge>> open(const Config& config, OpenOptions options = {});
  ~Bridge();
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  const Config& config() const;

  // ---- host registration ----
  // Replaces the host's event sink (events.h). Thread-safe.
  void set_event_sink(EventSink sink);
  // Registers (or replaces) the CRM operation `name` for the scripts (crm.h).
  Status register_crm_operation(const std::string& name, CrmHandler handler);
  // Calls hooks around the CRM operations of each batch (crm.h, CrmBatchHooks); replaces earlier
  // hooks, empty ones remove them.
  Status set_crm_batch_hooks(CrmBatchHooks hooks);

  // ---- connect ----
  Result<ConnectStart> connect_start(const Caller& caller, ReturnMode mode);
  // query: the callback request's raw query string ("code=..&state=..").
  CallbackOutcome connect_callback(const std::string& query);
  // The same, for a host whose callback route runs inside the CRM's own session: signed_in is the
  // CRM user signed in in the browser that brought the callback. A state started by another user
  // is refused ("state_foreign", and burnt), so a sign-in link forwarded to someone else cannot
  // connect their Fathom account to the sender's CRM user (RFC 6749 10.12: the state is bound to
  // the user agent's authenticated session). Hosts that can should always use this one.
  CallbackOutcome connect_callback(const std::string& query, const Caller& signed_in);
  Result<int64_t> connect_api_key(const Caller& caller, const std::string& api_key);
  Status disconnect(const Caller& caller, int64_t integration_id);

  // ---- tokens ----
  // A valid access token (refreshed first when it expires within the buffer).
  Result<std::string> access_token(const Caller& caller, int64_t integration_id);
  // JSON array (see fb_token_health in fathom_bridge.h). Empty tenant: all tenants.
  Result<std::string> token_health_json(const std::string& tenant_id, const std::string& user_id);
  // The same report as a fixed-width table for terminals.
  Result<std::string> token_health_table(const std::string& tenant_id, const std::string& user_id);
  // JSON array of {"integration_id","tenant_id","user_id"} deactivated.
  Result<std::string> deactivate_expired();

  // ---- sync ----
  // Runs one sync and waits for it; returns the job record as JSON. kConflict when a sync of the
  // integration is already running, unless request.wait_if_running.
  Result<std::string> sync(const Caller& caller, int64_t integration_id, const SyncRequest& request);
  // Starts a sync on a thread of the bridge and returns at once with its job record as JSON
  // (status "running", or "skipped" when the integration cannot sync now); kConflict when a sync of
  // the integration is already running. Watch it with sync_job, stop it with sync_cancel; its end
  // raises sync_completed / sync_failed / sync_cancelled as sync() does. Closing the bridge stops it at a safe point.
  Result<std::string> sync_start(const Caller& caller, int64_t integration_id, const SyncRequest& request);
  // The job record as JSON with "progress" (see fb_sync_job in fathom_bridge.h). A job of another
  // caller's integration is kNotFound.
  Result<std::string> sync_job(const Caller& caller, int64_t job_id);
  // Asks a running job to stop at its next page boundary (status "cancelled", checkpoint kept);
  // works for a job run by any process on the same store. kFailedPrecondition once it has ended.
  Status sync_cancel(const Caller& caller, int64_t job_id);
  // Runs due scheduled work once (for hosts that drive time).
  Status tick();
  // JSON array of job records, newest first. integration_id 0 and status "" mean all.
  Result<std::string> sync_jobs_json(int64_t integration_id, const std::string& status, int limit);

  // ---- webhooks ----
  WebhookReply receive_webhook(const std::string& path, const std::vector<std::pair<std::string, std::string>>& headers,
                               std::string_view body);
  // receive_webhook for an event-loop server: done gets the answer exactly once, on this thread for a
  // rejection, else on the inbox's writer thread once the delivery is durable (or could not be
  // stored). body must stay valid until done is called; the headers are kept here. done must be
  // quick and must not call into the Bridge (it runs before the inbox's next batch).
  void receive_webhook_async(const std::string& path, std::vector<std::pair<std::string, std::string>> headers,
                             std::string_view body, std::function<void(const WebhookReply&)> done);
  Result<std::string> webhook_events_json(const std::string& status, int64_t integration_id, int limit);
  // Replays one event by id, or all dead letters when event_id is "dead". Returns how many.
  Result<int> webhook_replay(const std::string& event_id);

  // ---- scripts ----
  Status reload_scripts();

  // ---- stored script versions (issue 15) ----
  // tenant_id "" is the default set, which every tenant without an active version of its own
  // runs; without any active stored version the scripts directory runs (scripts.dir). Versions
  // are immutable; author is the host's name for who made the change.
  // A version as JSON: {"id", "scope" (null for the default), "content_hash", "author", "note",
  // "created_at", "active", "files"}. An activation: {"activation_id", "scope", "version_id"
  // (null: none, the scope falls back), "previous_version_id", "kind", "author", "created_at"}.
  //
  // Stores files_json ({"mapping.lua": "...", "helpers/x.lua": "..."}) as a new version after
  // loading it (kScript "upload/<file>:<line>: message" when it does not load). The same content
  // again returns the existing version.
  Result<std::string> script_upload(const std::string& tenant_id, const std::string& files_json,
                                    const std::string& author, const std::string& note);
  // The same with every *.lua file below folder.
  Result<std::string> script_import(const std::string& tenant_id, const std::string& folder,
                                    const std::string& author, const std::string& note);
  // The scope's versions, newest first (JSON array).
  Result<std::string> script_versions_json(const std::string& tenant_id, int limit);
  // Makes a version of the scope active: this process at once, every process on the same store
  // within about half a second (each polls the activation counter). Events already running finish
  // on their version.
  Result<std::string> script_activate(const std::string& tenant_id, int64_t version_id, const std::string& author);
  // Back to the version that was active before the current one (kFailedPrecondition when none is).
  Result<std::string> script_rollback(const std::string& tenant_id, const std::string& author);
  // Runs version_id's on_meeting in dry-run mode (nothing reaches the CRM) over the tenant's
  // `meetings` most recent stored meetings (every tenant's when tenant_id is ""), and the version
  // the tenant runs now over the same ones, and compares their CRM operations per meeting:
  // {"candidate_version", "running_version" (null: scripts.dir), "scope", "meetings": [{
  // "recording_id", "integration_id", "title", "added", "removed", "changed": [{"operation",
  // "before", "after"}], "unchanged", "error"?}], "summary": {"meetings", "meetings_changed",
  // "added", "removed", "changed", "unchanged", "errors"}}.
  Result<std::string> script_validate(const std::string& tenant_id, int64_t version_id, int meetings);
  // The same over the `meetings` most recent stored meetings created in [since_s, until_s) (Unix
  // seconds; 0: open), e.g. last week's: the version is checked against a chosen period.
  Result<std::string> script_validate(const std::string& tenant_id, int64_t version_id, int meetings,
                                      int64_t since_s, int64_t until_s);

  // ---- the durable event feed ----
  // {"events": [{"id", "type", ..., "created_at"}], "next"}: events with id > after_id, oldest
  // first, at most limit. wait_ms > 0: when there is none yet, waits up to that long for one.
  Result<std::string> events_json(int64_t after_id, int limit, int64_t wait_ms = 0);
  // The push delivery log (events.push_url), newest first: [{"event_id", "status", "attempts",
  // "last_status", "last_error", "next_attempt_at", "updated_at"}].
  Result<std::string> event_deliveries_json(int limit);

  // ---- tenant-scoped listings ----
  // The same as above, restricted to one tenant's integrations when tenant_id is not empty
  // (refused with kInvalidArgument when it is not a valid identifier). Empty: every tenant.
  Result<std::string> sync_jobs_json(int64_t integration_id, const std::string& status, int limit,
                                     const std::string& tenant_id);
  Result<std::string> webhook_events_json(const std::string& status, int64_t integration_id, int limit,
                                          const std::string& tenant_id);

  // ---- webhook routes ----
  // Every call is scoped by the caller: a route of another (tenant, user) is kNotFound.
  //
  // A route for a webhook made by hand in Fathom's settings (User Settings -> API Access), where
  // Fathom shows the signing secret once the webhook exists. secret: "whsec_" + base64
  // (kInvalidArgument otherwise, without echoing it). Fathom asks for the URL first, so the secret
  // may be empty: the route then holds a random secret nobody knows and refuses every delivery
  // (401, so Fathom retries) until rotate_webhook_secret() sets the one Fathom shows.
  Result<WebhookRoute> add_webhook_route(const Caller& caller, int64_t integration_id, const std::string& secret);
  // Creates the webhook through Fathom's API (POST /webhooks, with the integration's OAuth token or
  // API key) and a route for it. kFailedPrecondition without webhooks.public_base_url.
  Result<WebhookRoute> register_webhook_route(const Caller& caller, int64_t integration_id);
  // The caller's routes, oldest first (integration_id 0: of every integration of the caller).
  Result<std::vector<WebhookRoute>> webhook_routes(const Caller& caller, int64_t integration_id);
  // Replaces the route's secret; the replaced one stays accepted for webhooks.secret_grace_s
  // (previous_secret_expires_at in the answer), so deliveries already signed by Fathom still land.
  Result<WebhookRoute> rotate_webhook_secret(const Caller& caller, int64_t route_id, const std::string& secret);
  // Removes the route (and its webhook at Fathom when it was made through the API, best effort);
  // deliveries to its URL are refused from now on.
  Status remove_webhook_route(const Caller& caller, int64_t route_id);

  // Internal services, for the sidecar server and the CLI in this repository.
  Impl& impl() { return *impl_; }

 private:
  explicit Bridge(std::unique_ptr<Impl> impl);
  CallbackOutcome complete_callback(const std::string& query, const Caller* signed_in);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fb

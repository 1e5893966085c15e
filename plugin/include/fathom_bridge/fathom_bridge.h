/* fathom_bridge.h: the C ABI of fathom-bridge. This one header is the whole API a host needs.
 *
 * Conventions
 *  1. Every function returns an int result code: FB_OK (0) or one of FB_* below. Codes are
 *     numbered forever and only appended. fb_code_name() gives a static name for any code.
 *  2. On failure, fb_errmsg(handle) returns the message of the last failed call made by the
 *     calling thread on that handle (valid until that thread's next call on the handle). Messages
 *     name what was wrong and never contain a token, secret or key.
 *  3. Strings are UTF-8 and NUL-terminated. Input strings are borrowed for the duration of the
 *     call. Strings returned through `char **out` belong to the caller: free them with
 *     fb_string_free(). On failure *out is set to NULL.
 *  4. Structured results are JSON documents (objects or arrays), described at each function.
 *  5. Threading: a fb_bridge handle is thread-safe; any function may be called from any thread
 *     concurrently, except fb_bridge_close(), which must be the last call on the handle.
 *     Callbacks (events, CRM operations) run on library worker threads and must be thread-safe.
 *  6. fb_bridge_open() returns a handle even when it fails, so the caller can read fb_errmsg();
 *     such a handle accepts only fb_errmsg() and fb_bridge_close(). Closing NULL is harmless.
 *  7. A handle that is used after close, or a NULL handle, gives FB_MISUSE.
 *  8. Identifiers (tenant_id, user_id, team_id) must be valid UTF-8 of 1..200 bytes without
 *     control characters; anything else is FB_INVALID_ARGUMENT naming the field, before anything
 *     is stored. The same check guards the C++ API and the sidecar.
 */
#ifndef FATHOM_BRIDGE_H
#define FATHOM_BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define FB_API __attribute__((visibility("default")))
#else
#define FB_API
#endif

/* Result codes. The same numbers as fb::Code in the C++ API. */
#define FB_OK 0
#define FB_INVALID_ARGUMENT 1
#define FB_NOT_FOUND 2
#define FB_ALREADY_EXISTS 3
#define FB_PERMISSION_DENIED 4
#define FB_UNAUTHENTICATED 5
#define FB_FAILED_PRECONDITION 6
#define FB_UNAVAILABLE 7
#define FB_RATE_LIMITED 8
#define FB_TIMEOUT 9
#define FB_INTERNAL 10
#define FB_RECONNECT_REQUIRED 11
#define FB_INVALID_GRANT 12
#define FB_IO 13
#define FB_CONFIG 14
#define FB_SCRIPT 15
#define FB_CONFLICT 16
#define FB_TOO_LARGE 17
#define FB_MALFORMED 18
#define FB_REJECTED 19
#define FB_CANCELLED 20
#define FB_MISUSE 100 /* NULL, closed or failed handle, or a NULL required argument */

typedef struct fb_bridge fb_bridge;

/* The library version, e.g. "0.1.0". Static string. */
FB_API const char *fb_version(void);
/* A static name for a result code ("ok", "invalid_grant", ...); "unknown" for others. */
FB_API const char *fb_code_name(int code);
/* Frees a string returned by this library. NULL is harmless. */
FB_API void fb_string_free(char *s);

/* Opens a bridge. config_path: a JSON config file, or NULL. config_json: a JSON config document
 * used instead of the file when not NULL. The environment overrides both (see README).
 * Opens or creates the SQLite store, applies migrations, loads the Lua scripts and starts the
 * background workers (webhook processing, scheduler) unless the config disables them.
 * Always sets *out (unless out is NULL); on failure the handle only serves fb_errmsg/fb_bridge_close. */
FB_API int fb_bridge_open(const char *config_path, const char *config_json, fb_bridge **out);
/* Stops the workers, waits for in-flight work, releases everything. NULL is harmless.
 * Bounded: a webhook worker already reported stuck (event worker_stuck: a CRM callback that has
 * not returned for webhooks.event_deadline_s) is waited for 2 s, then left behind. If that callback
 * returns later, it returns into freed state: a host closing in that case should exit the process. */
FB_API int fb_bridge_close(fb_bridge *b);
/* The message of the calling thread's last failed call on b (see convention 2). Never NULL. */
FB_API const char *fb_errmsg(fb_bridge *b);

/* ---- Host callbacks ---- */

/* Events (connected, reconnect_required, connection_recovered, disconnected, sync_completed,
 * refresh_outcome_unknown, sync_failed, sync_cancelled, webhook_dead_lettered, script_rejected, script_loaded,
 * worker_stuck: a webhook worker on one event past webhooks.event_deadline_s) as a
 * JSON object: {"id", "type", "tenant_id", "user_id", "integration_id", "detail", "data"} ("id": the
 * event's id in the durable feed, see fb_events_read). Replaces any earlier callback;
 * NULL removes it. */
typedef void (*fb_event_fn)(void *user_data, const char *event_json);
FB_API int fb_set_event_callback(fb_bridge *b, fb_event_fn fn, void *user_data);

/* Log lines ("debug", "info", "warn", "error"); replaces the default stderr sink for the whole
 * process. NULL restores it. */
typedef void (*fb_log_fn)(void *user_data, const char *level, const char *component, const char *message);
FB_API int fb_set_log_callback(fb_bridge *b, fb_log_fn fn, void *user_data);

/* A CRM operation the Lua scripts may call as crm.<name>(args). call_json is
 * {"operation", "args", "idempotency_key", "integration_id", "tenant_id", "user_id", "dry_run"}.
 * On success return FB_OK and set *result_json to a JSON object allocated with malloc() (the
 * library frees it with free()). On failure return any non-zero code and optionally set
 * *error_message (malloc'd) to a message the script will see. A handler must treat a repeated
 * idempotency_key as the same request and return the earlier result. */
typedef int (*fb_crm_fn)(void *user_data, const char *call_json, char **result_json, char **error_message);
FB_API int fb_register_crm_operation(fb_bridge *b, const char *name, fb_crm_fn fn, void *user_data);

/* Optional batching of CRM writes. The webhook workers and the sync engine map meetings in
 * batches: begin(user_data, n_meetings) is called on a library worker thread before the first CRM
 * operation of a batch, end(user_data, 1) after its last, and every CRM operation of the batch
 * comes on that same thread in between. A host can open one transaction of its own in begin and
 * commit it in end: when end(..., 1) returns FB_OK the batch's writes must be durable, since the
 * batch is recorded as mapped right after. end(..., 0) follows a begin that failed (roll back).
 * A non-zero return from begin fails the whole batch (retried later); from end(..., 1) it fails
 * every meeting the batch mapped (they are mapped again later with the same idempotency keys, so
 * the host must still honour them). Batches of different threads may overlap. Either function may
 * be NULL; both NULL removes the callbacks. Returns FB_OK, or FB_MISUSE for a closed handle. */
typedef int (*fb_crm_batch_begin_fn)(void *user_data, size_t n_meetings);
typedef int (*fb_crm_batch_end_fn)(void *user_data, int ok);
FB_API int fb_set_crm_batch_callbacks(fb_bridge *b, fb_crm_batch_begin_fn begin, fb_crm_batch_end_fn end,
                                      void *user_data);

/* ---- Connect ---- */

/* The popup callback page's message. In the popup flow the callback page (the "body" that
 * fb_connect_callback() returns) calls window.opener.postMessage(message, <origin of frontend.url>)
 * and closes itself. The event's origin is the origin of fathom.redirect_uri; message is
 *   {"source": "fathom-bridge", "status": "connected", "integration_id": <integer>}   on success,
 *   {"source": "fathom-bridge", "status": "error", "error": "<reason>"}              on failure,
 * where reason is the short machine reason of fb_connect_callback()'s "error" ("access_denied",
 * "state_expired", ...). A frontend checks event.origin and data.source, then data.status.
 * Keys may be added later; existing ones keep their meaning. In the redirect flow the browser is
 * sent to frontend.url + frontend.success_path with ?fathom=connected or ?fathom=error&reason=<reason>.
 * The connect widget (widget/fathom-connect.js, served by the sidecar at /fathom/widget.js) is a
 * ready-made listener for this contract, with the popup-blocked and closed-popup fallbacks.
 *
 * Starts the OAuth flow for a CRM user. team_id may be NULL. popup: 1 for the popup flow (the
 * callback page posts to window.opener, as above), 0 for the redirect flow back to the frontend.
 * *authorize_url receives the URL to open in the user's browser. */
FB_API int fb_connect_start(fb_bridge *b, const char *tenant_id, const char *user_id, const char *team_id,
                            int popup, char **authorize_url);
/* Completes the flow from the callback request's query string (e.g. "code=..&state=.."). Always
 * produces *result_json when b is usable, even for a refused callback:
 * {"ok", "integration_id", "error", "reason", "mode": "popup"|"redirect", "http_status",
 *  "content_type", "body" (the popup page HTML, for popup), "location" (for redirect)}.
 * The return code is FB_OK when the connection was stored, otherwise the reason's code. */
FB_API int fb_connect_callback(fb_bridge *b, const char *query_string, char **result_json);
/* The same, for a host whose callback route runs inside the CRM's own session: tenant_id and
 * user_id name the CRM user signed in in the browser that brought the callback. A state started
 * by another user is refused with "error": "state_foreign" (FB_PERMISSION_DENIED) and burnt, so a
 * sign-in link forwarded to someone else cannot connect their Fathom account to the sender's CRM
 * user (RFC 6749 10.12). Hosts that can should always use this one. */
FB_API int fb_connect_callback_as(fb_bridge *b, const char *query_string, const char *tenant_id,
                                  const char *user_id, char **result_json);
/* Connects with a per-user Fathom API key (single-user setups). */
FB_API int fb_connect_api_key(fb_bridge *b, const char *tenant_id, const char *user_id, const char *api_key,
                              int64_t *integration_id);
/* Deletes the integration's tokens and its Fathom webhooks (best effort), marks it inactive. */
FB_API int fb_disconnect(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id);

/* ---- Tokens ---- */

/* A valid access token for the integration, refreshed first when it expires within the buffer.
 * Only for hosts that call Fathom themselves; free with fb_string_free. */
FB_API int fb_access_token(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id,
                           char **token);
/* Token health: a JSON array of {"integration_id", "tenant_id", "user_id", "kind", "status"
 * (valid|expiring_soon|expired|refresh_in_doubt|reconnect_required|disconnected), "expires_in_s",
 * "has_refresh_token", "last_refresh_at", "last_sync_at"}. tenant_id NULL: all tenants (operators);
 * user_id NULL: all users of the tenant. */
FB_API int fb_token_health(fb_bridge *b, const char *tenant_id, const char *user_id, char **report_json);
/* Deactivates integrations whose tokens are expired and cannot be refreshed. *affected_json is a
 * JSON array of {"integration_id", "tenant_id", "user_id"} to notify. */
FB_API int fb_deactivate_expired(fb_bridge *b, char **affected_json);

/* ---- Sync ---- */

/* Runs a sync now and waits for it. mode: "incremental", "backfill", or "manual"; options_json may
 * be NULL or {"since": ISO8601, "until": ISO8601, "recording_id": n, "wait_if_running": bool}.
 * *job_json is the job record. FB_CONFLICT when a sync of the integration is already running (in
 * any process on the store), unless "wait_if_running" is true: then it waits for that sync to end and
 * *job_json is its record (a "Sync now" pressed during a scheduled sync shows that sync's result). */
FB_API int fb_sync(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id,
                   const char *mode, const char *options_json, char **job_json);
/* Runs due scheduled work once (incremental syncs, token keep-alive) for hosts that drive time. */
FB_API int fb_tick(fb_bridge *b);
/* The sync job log, newest first. filter_json may be NULL or {"integration_id", "status", "limit",
 * "tenant_id"}. status is one of running, succeeded, succeeded_with_errors (the run reached the end
 * but "map_failures" meetings did not reach the CRM, or the store refused to hold some meetings:
 * listed in "skipped_items" with the store's reason), failed, skipped, cancelled, interrupted.
 * Without tenant_id every tenant's jobs are listed (an operator view); with it only that tenant's. */
FB_API int fb_sync_jobs(fb_bridge *b, const char *filter_json, char **jobs_json);
/* Starts a sync on a thread of the bridge and returns at once: *job_json is its job record (as
 * fb_sync_job gives it) with status "running" (or "skipped" when the integration cannot sync now).
 * Same arguments as fb_sync. FB_CONFLICT when a sync of the integration is already running. Its end
 * raises sync_completed, sync_failed or sync_cancelled; fb_close stops a running one at its next page boundary. */
FB_API int fb_sync_start(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id,
                         const char *mode, const char *options_json, char **job_json);
/* One job of the caller's integrations with its progress: the job record plus "progress": {"pages",
 * "meetings_seen", "meetings_mapped", "map_failures", "api_calls", "elapsed_s", "covered" (0..1: the
 * part of the listing's time window done, Fathom listing newest first; null while unknown),
 * "eta_s" (from "covered"; null while unknown), "cancel_requested", "rate_limit": {"limit",
 * "window_s", "remaining"} (the API budget as this process sees it)}. A job of another user's
 * integration is FB_NOT_FOUND. Works for a job run by any process on the same store. */
FB_API int fb_sync_job(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t job_id, char **job_json);
/* Asks a running job to stop at its next page boundary: it ends "cancelled" with its checkpoint
 * kept, so the next sync resumes there. Works for a job run by any process on the same store; asking
 * twice is harmless. FB_FAILED_PRECONDITION when the job has already ended. */
FB_API int fb_sync_cancel(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t job_id);

/* ---- Webhooks ---- */

/* Receives one webhook delivery (the host's HTTP server passes it through). The headers are
 * n_headers name/value pairs; body is the raw request body (not re-serialised). On return
 * *http_status and *response_body hold what to answer. The delivery is durable before this
 * returns a 2xx status. Returns FB_OK when accepted (including duplicates), FB_REJECTED etc. otherwise. */
FB_API int fb_webhook_receive(fb_bridge *b, const char *path, const char *const *header_names,
                              const char *const *header_values, size_t n_headers, const char *body,
                              size_t body_len, int *http_status, char **response_body);
/* fb_webhook_receive for a host whose HTTP server is an event loop: it does not wait for the commit.
 * done(user_data, result, http_status, response_body) is called exactly once: before this returns
 * when the delivery is refused (result and status as fb_webhook_receive would return and answer),
 * else on a library thread (the inbox writer) once the delivery is durable (FB_OK, 2xx) or could
 * not be stored (FB_UNAVAILABLE, 503); response_body is valid during the call only. body must
 * stay valid until done is called; the headers are copied before this returns. done must be quick
 * and must not call into the bridge. Every pending done runs before fb_bridge_close returns.
 * Returns FB_OK when done was or will be called; otherwise (FB_MISUSE: NULL done, closed handle)
 * done is not called. Thread-safe. */
typedef void (*fb_webhook_done_fn)(void *user_data, int result, int http_status, const char *response_body);
FB_API int fb_webhook_receive_async(fb_bridge *b, const char *path, const char *const *header_names,
                                    const char *const *header_values, size_t n_headers, const char *body,
                                    size_t body_len, fb_webhook_done_fn done, void *user_data);
/* The webhook inbox: filter_json NULL or {"status": "pending"|"done"|"dead", "integration_id", "limit",
 * "tenant_id"}; without tenant_id every tenant's events (an operator view), with it only that tenant's. */
FB_API int fb_webhook_events(fb_bridge *b, const char *filter_json, char **events_json);
/* Replays one event by id, or every dead letter when event_id is "dead". *count: events requeued. */
FB_API int fb_webhook_replay(fb_bridge *b, const char *event_id, int *count);

/* ---- Scripts ---- */

/* Reloads the Lua scripts now (they also reload by themselves on change when hot_reload is on).
 * A script that fails to load is rejected with file and line, and the previous version stays. */
FB_API int fb_scripts_reload(fb_bridge *b);

/* ---- Webhook routes ----
 * A route is an unguessable URL on this host ({webhooks.public_base_url}{webhooks.path_prefix}/
 * {token}) that accepts deliveries of one integration signed with its secret. Routes are made
 * automatically when an integration connects (OAuth or API key) and webhooks.public_base_url is
 * set; these functions manage them by hand. Every call is scoped by (tenant_id, user_id): a route
 * of another user gives FB_NOT_FOUND. Secrets are sealed at rest with tokens.key and never
 * returned or logged. A route is the JSON object {"id", "integration_id", "source": "api"|"manual",
 * "url" (null without public_base_url), "path", "fathom_webhook_id" (null for manual),
 * "created_at", "previous_secret_expires_at" (unix seconds while a rotated-out secret is still
 * accepted, else null)}. */

/* Adds a route for a webhook made by hand in Fathom's settings. secret: the "whsec_..." secret
 * Fathom shows (FB_INVALID_ARGUMENT when malformed; the message never quotes it). Fathom asks for
 * the URL before it shows the secret, so secret may be NULL: the route then refuses every delivery
 * (401, Fathom retries) until fb_webhook_route_rotate() sets the secret. *route_json: the route. */
FB_API int fb_webhook_route_add(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id,
                                const char *secret, char **route_json);
/* Creates the webhook through Fathom's API (with the integration's OAuth token or API key) and its
 * route. FB_FAILED_PRECONDITION without webhooks.public_base_url; Fathom's errors pass through. */
FB_API int fb_webhook_route_register(fb_bridge *b, const char *tenant_id, const char *user_id,
                                     int64_t integration_id, char **route_json);
/* The caller's routes as a JSON array, oldest first; integration_id 0: of all the caller's
 * integrations. */
FB_API int fb_webhook_routes(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t integration_id,
                             char **routes_json);
/* Replaces a route's secret. The replaced secret stays accepted for webhooks.secret_grace_s
 * (default 24 h), so deliveries Fathom signed before the change still land. *route_json: the route. */
FB_API int fb_webhook_route_rotate(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t route_id,
                                   const char *secret, char **route_json);
/* Removes a route (deleting its webhook at Fathom first when it was made through the API, best
 * effort). Deliveries to its URL get 404 from now on. */
FB_API int fb_webhook_route_remove(fb_bridge *b, const char *tenant_id, const char *user_id, int64_t route_id);

/* ---- The durable event feed ----
 * Every event (the ones fb_set_event_callback delivers, which carry the same "id") is stored with
 * an id that only grows and survives restarts, and kept for events.retention_s (7 days). A
 * consumer remembers the last id it handled and reads on from there: nothing is lost or
 * renumbered across restarts (at-least-once; the id identifies a repeat). */

/* Events with id > after_id, oldest first, at most limit (1..1000), as
 * {"events": [{"id", "type", "tenant_id", "user_id", "integration_id", "detail", "data",
 * "created_at" (Unix ms)}], "next": the last event's id, or after_id when there is none}.
 * after_id 0 reads from the oldest kept event. */
FB_API int fb_events_read(fb_bridge *b, int64_t after_id, int limit, char **events_json);
/* As fb_events_read, but when no event is newer than after_id, blocks the calling thread up to
 * timeout_ms for one (a long poll). Returns FB_OK with an empty list when none came. */
FB_API int fb_events_wait(fb_bridge *b, int64_t after_id, int limit, int timeout_ms, char **events_json);

/* ---- For hosts on an event loop (Node, Python's asyncio) ----
 * Such a host cannot answer a CRM call on the library thread that makes it, and its blocking calls
 * run on whichever thread of a pool is free (so fb_errmsg, which is per thread, would not find the
 * message of the call). These functions serve it. */

/* Registers the CRM operation `name` as queued: a script's crm.<name>(args) puts the call in the
 * handle's queue and its library thread waits (up to 120 s, then the script sees FB_TIMEOUT)
 * until the host answers it with fb_crm_complete. Replaces an earlier registration of name. */
FB_API int fb_register_crm_operation_queued(fb_bridge *b, const char *name);
/* Takes the next queued CRM call, blocking up to timeout_ms: *call_json is the call_json of
 * fb_crm_fn plus "call_id". FB_TIMEOUT when none came; FB_CANCELLED once the handle is closing
 * (fb_bridge_close cancels waiting calls and waits until no fb_crm_next is inside). */
FB_API int fb_crm_next(fb_bridge *b, int timeout_ms, char **call_json);
/* Answers the queued call call_id: code FB_OK with result_json (JSON text, e.g. an object or
 * "null"), or an error code with error_message (the script sees it). FB_NOT_FOUND when no library
 * thread waits for that call any more (it timed out or was answered). Does not block. */
FB_API int fb_crm_complete(fb_bridge *b, int64_t call_id, int code, const char *result_json,
                           const char *error_message);
/* Runs one operation by name with a JSON object of arguments, on the calling thread, and always
 * sets *result_json (unless it is NULL): the result on FB_OK, otherwise
 * {"error": code name, "code", "message"}. Operations and arguments (the functions above):
 * connect_start {tenant_id, user_id, team_id, popup} -> {"authorize_url"}; connect_callback
 * {query} -> the outcome (plus "error_message" on failure); connect_api_key {tenant_id, user_id,
 * api_key} -> {"integration_id"}; disconnect {tenant_id, user_id, integration_id} -> {};
 * access_token {tenant_id, user_id, integration_id} -> {"access_token"}; token_health
 * {tenant_id, user_id}; deactivate_expired {}; sync {tenant_id, user_id, integration_id, mode,
 * since, until, recording_id}; sync_start {the same}; sync_job {tenant_id, user_id, job_id};
 * sync_cancel {tenant_id, user_id, job_id}; tick {}; sync_jobs {filter}; webhook_events {filter};
 * webhook_replay {event_id} -> {"count"}; scripts_reload {}; events_read {after, limit, wait_ms};
 * script_upload {tenant_id, files (an object of path: text), author, note}; script_import
 * {tenant_id, folder, author, note}; script_versions {tenant_id, limit}; script_activate
 * {tenant_id, version_id, author}; script_rollback {tenant_id, author} (the fb_script_* below). */
FB_API int fb_invoke(fb_bridge *b, const char *operation, const char *args_json, char **result_json);

/* ---- Stored script versions (issue 15) ----
 * The scripts as managed assets: versions of the script set kept in the store, a default set
 * (tenant_id NULL or "") and per-tenant overrides. An event of a tenant runs that tenant's active
 * version, else the default's active version, else the files in scripts.dir (as before any version
 * existed). Versions are immutable. author is the host's name for who made the change (stored as
 * given). Activation reaches this process at once and every other process on the same store within
 * about half a second, without a restart; an event already running finishes on its version. Every
 * CRM call carries the version that made it ("script_version" in fb_crm_fn's call_json; null for
 * scripts.dir). A version is {"id", "scope" (null for the default), "content_hash" (hex SHA-256),
 * "author", "note", "created_at" (unix s), "active", "files" (paths)}; an activation is
 * {"activation_id", "scope", "version_id" (null: none, the scope falls back), "previous_version_id",
 * "kind": "activate"|"rollback", "author", "created_at"}. Without a store they fail with
 * FB_FAILED_PRECONDITION. Thread-safe like every function on the handle. */

/* Loads files_json ({"mapping.lua": "...", "reactions.lua": "...", "helpers/x.lua": "..."}) in a
 * sandboxed state and, when it loads, stores it as a new version: *version_json. A script that
 * does not load is FB_SCRIPT with "upload/<file>:<line>: message" in fb_errmsg and nothing stored.
 * The same content again gives the existing version. */
FB_API int fb_script_upload(fb_bridge *b, const char *tenant_id, const char *files_json, const char *author,
                            const char *note, char **version_json);
/* fb_script_upload with every *.lua file below folder (a scripts.dir of the folder mode). */
FB_API int fb_script_import(fb_bridge *b, const char *tenant_id, const char *folder, const char *author,
                            const char *note, char **version_json);
/* The scope's versions as a JSON array, newest first, at most limit (1..1000). */
FB_API int fb_script_versions(fb_bridge *b, const char *tenant_id, int limit, char **versions_json);
/* Makes version_id (a version of this scope, else FB_NOT_FOUND) the scope's active one. */
FB_API int fb_script_activate(fb_bridge *b, const char *tenant_id, int64_t version_id, const char *author,
                              char **activation_json);
/* Makes the version that was active before the current one active again, in one step (before the
 * first activation: none, so the scope falls back). FB_FAILED_PRECONDITION when none is active. */
FB_API int fb_script_rollback(fb_bridge *b, const char *tenant_id, const char *author, char **activation_json);

#ifdef __cplusplus
}
#endif

#endif /* FATHOM_BRIDGE_H */

'use strict';
// fathom-bridge for Node: connects a CRM to Fathom through libfathom_bridge's C ABI, with koffi.
//
//   const { Bridge } = require('fathom-bridge');
//   const bridge = Bridge.open({ tokens: { key }, store: { path: 'bridge.db' } });
//   bridge.crmOperation('upsert_contact', async (args, call) => ({ id: await crm.save(args) }));
//   bridge.on('event', (event) => console.log(event.type));
//   const integration = await bridge.connectApiKey('acme', 'user-42', apiKey);
//   const job = await bridge.sync('acme', 'user-42', integration, { mode: 'backfill' });
//   await bridge.close();
//
// Blocking calls run on libuv's thread pool (koffi's .async) and return promises, so the event
// loop never waits. CRM operations are async functions: the library queues each call, a pump takes
// it (fb_crm_next) and answers when the promise settles (fb_crm_complete). Events come from the
// durable feed (fb_events_wait): as 'event' emissions, or with `for await (const e of bridge.events())`.
const koffi = require('koffi');
const { EventEmitter } = require('node:events');
const { execFileSync } = require('node:child_process');
const path = require('node:path');

const CODES = {
  0: 'ok', 1: 'invalid_argument', 2: 'not_found', 3: 'already_exists', 4: 'permission_denied',
  5: 'unauthenticated', 6: 'failed_precondition', 7: 'unavailable', 8: 'rate_limited', 9: 'timeout',
  10: 'internal', 11: 'reconnect_required', 12: 'invalid_grant', 13: 'io', 14: 'config', 15: 'script',
  16: 'conflict', 17: 'too_large', 18: 'malformed', 19: 'rejected', 20: 'cancelled', 100: 'misuse',
};
const CODE_OF = Object.fromEntries(Object.entries(CODES).map(([k, v]) => [v, Number(k)]));

// A failed call: err.code is the name ("reconnect_required"), err.number the C code.
class FathomBridgeError extends Error {
  constructor(number, message) {
    const name = CODES[number] || 'unknown';
    super(`${name}: ${message}`);
    this.name = 'FathomBridgeError';
    this.code = name;
    this.number = number;
    this.detail = message;
  }
}

function candidates(explicit) {
  const out = [];
  if (explicit) out.push(explicit);
  if (process.env.FATHOM_BRIDGE_LIBRARY) out.push(process.env.FATHOM_BRIDGE_LIBRARY);
  try {
    const libdir = execFileSync('pkg-config', ['--variable=libdir', 'fathom-bridge'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (libdir) out.push(path.join(libdir, 'libfathom_bridge.so.0'));
  } catch { /* not installed where pkg-config looks */ }
  out.push('libfathom_bridge.so.0');
  return out;
}

let api = null;

// Loads the library once: explicit path, $FATHOM_BRIDGE_LIBRARY, pkg-config's libdir, the loader's path.
function load(libraryPath) {
  if (api) return api;
  const tried = [];
  let lib = null;
  for (const c of candidates(libraryPath)) {
    try {
      lib = koffi.load(c);
      break;
    } catch (e) {
      tried.push(`${c}: ${e.message}`);
    }
  }
  if (!lib) throw new Error(`libfathom_bridge.so.0 not found (set FATHOM_BRIDGE_LIBRARY); tried:\n  ${tried.join('\n  ')}`);
  // Strings the library returns through char ** are read as void * and given back to fb_string_free.
  const fns = {
    fb_version: 'const char *fb_version(void)',
    fb_string_free: 'void fb_string_free(void *s)',
    fb_bridge_open: 'int fb_bridge_open(const char *config_path, const char *config_json, _Out_ void **out)',
    fb_bridge_close: 'int fb_bridge_close(void *b)',
    fb_errmsg: 'const char *fb_errmsg(void *b)',
    // Every other operation goes through fb_invoke (JSON in, JSON out, the error message with it),
    // so a call on a pool thread gets its own message and there are few declarations to get wrong.
    fb_invoke: 'int fb_invoke(void *b, const char *operation, const char *args_json, _Out_ void **result_json)',
    fb_register_crm_operation_queued: 'int fb_register_crm_operation_queued(void *b, const char *name)',
    fb_crm_next: 'int fb_crm_next(void *b, int timeout_ms, _Out_ void **call_json)',
    fb_crm_complete: 'int fb_crm_complete(void *b, int64_t call_id, int code, const char *result_json, const char *error_message)',
    fb_webhook_receive: 'int fb_webhook_receive(void *b, const char *path, const char **names, const char **values, size_t n, const uint8_t *body, size_t len, _Out_ int *status, _Out_ void **response)',
  };
  api = {};
  for (const [name, proto] of Object.entries(fns)) api[name] = lib.func(proto);
  return api;
}

// Calls fn.async(...args) and resolves with its return value.
function callAsync(fn, ...args) {
  return new Promise((resolve, reject) => fn.async(...args, (err, res) => (err ? reject(err) : resolve(res))));
}

function version() { return load().fb_version(); }

class Bridge extends EventEmitter {
  // Opens a bridge (synchronously: it opens the store and loads the scripts). config: an object
  // (the JSON config document) or the path of a JSON config file. options.library: the .so path.
  static open(config, options = {}) { return new Bridge(config, options); }

  constructor(config, options = {}) {
    super();
    this._api = load(options.library);
    const out = [null];
    const rc = typeof config === 'string'
      ? this._api.fb_bridge_open(config, null, out)
      : this._api.fb_bridge_open(null, JSON.stringify(config || {}), out);
    if (rc !== 0) {
      const message = this._api.fb_errmsg(out[0]);
      this._api.fb_bridge_close(out[0]);
      throw new FathomBridgeError(rc, message);
    }
    this._h = out[0];
    this._handlers = new Map();
    this._pumps = [];
    this._eventCursor = null;
    this._closing = false;
    this.on('newListener', (name) => { if (name === 'event') this._startEventPump(); });
  }

  get closed() { return this._h === null; }

  _handle() {
    if (this._h === null || this._closing) throw new FathomBridgeError(100, 'the bridge is closed');
    return this._h;
  }

  _check(rc) {
    if (rc !== 0) throw new FathomBridgeError(rc, this._h ? this._api.fb_errmsg(this._h) : 'closed');
  }

  _take(ptr) {
    if (!ptr) return null;
    try {
      return koffi.decode(ptr, 'char', -1);
    } finally {
      this._api.fb_string_free(ptr);
    }
  }

  // Runs one operation on the thread pool (fb_invoke); resolves with its JSON result or rejects
  // with a FathomBridgeError carrying the code and the library's message.
  async _invoke(operation, args = {}) {
    const out = [null];
    const rc = await callAsync(this._api.fb_invoke, this._handle(), operation, JSON.stringify(args), out);
    const text = this._take(out[0]);
    const doc = text === null ? null : JSON.parse(text);
    if (rc !== 0 && operation !== 'connect_callback') throw new FathomBridgeError(rc, doc ? doc.message : CODES[rc]);
    return doc;
  }

  // ---- CRM operations ----

  // Makes crm.<name>(args) available to the Lua scripts. handler(args, call) is an async function
  // (or returns a value) resolving to a JSON-serialisable result; throw to fail the call (the
  // script sees the message; a FathomBridgeError keeps its code). A repeated
  // call.idempotencyKey must give the earlier result.
  crmOperation(name, handler) {
    this._check(this._api.fb_register_crm_operation_queued(this._handle(), name));
    this._handlers.set(name, handler);
    if (!this._crmPump) this._crmPump = this._pump();
    return this;
  }

  async _pump() {
    // Runs until fb_crm_next says the bridge is closing: calls of work still in flight while
    // close() waits are answered too.
    while (this._h !== null) {
      const out = [null];
      let rc;
      try {
        rc = await callAsync(this._api.fb_crm_next, this._h, 1000, out);
      } catch (e) {
        this.emit('error', e);
        return;
      }
      if (rc === CODE_OF.timeout) continue;
      if (rc !== 0) return;  // cancelled: the bridge is closing
      const call = JSON.parse(this._take(out[0]));
      this._answer(call);  // not awaited: calls run concurrently
    }
  }

  async _answer(call) {
    const handler = this._handlers.get(call.operation);
    const info = {
      operation: call.operation, idempotencyKey: call.idempotency_key, integrationId: call.integration_id,
      tenantId: call.tenant_id, userId: call.user_id, dryRun: !!call.dry_run, callId: call.call_id,
    };
    let code = 0, result = null, message = null;
    try {
      if (!handler) throw new FathomBridgeError(2, `no handler for CRM operation '${call.operation}'`);
      const value = await handler(call.args || {}, info);
      result = JSON.stringify(value === undefined ? null : value);
    } catch (e) {
      code = e instanceof FathomBridgeError ? e.number : CODE_OF.unavailable;
      message = e instanceof FathomBridgeError ? e.detail : `${e && e.name}: ${e && e.message}`;
    }
    if (this._h === null || this._closeCalled) return;  // the close cancelled the call
    // Quick and non-blocking: it hands the answer to the waiting library thread.
    this._api.fb_crm_complete(this._h, call.call_id, code, result, message);
  }

  // ---- events ----

  // Async iterator over the durable event feed, from the event after `after` (0: the oldest
  // kept). With follow (the default) it waits for new events until the bridge closes.
  async *events({ after = 0, follow = true, waitMs = 5000, limit = 100 } = {}) {
    let cursor = after;
    while (this._h !== null && !this._closing) {
      const page = await this.readEvents(cursor, { limit, waitMs: follow ? waitMs : 0 });
      for (const e of page.events) {
        cursor = e.id;
        yield e;
      }
      if (page.events.length === 0 && !follow) return;
    }
  }

  // One page {events, next} of the events with id > after; waitMs: long poll.
  readEvents(after = 0, { limit = 100, waitMs = 0 } = {}) {
    return this._invoke('events_read', { after, limit, wait_ms: waitMs });
  }

  // 'event' listeners get the events that happen from now on (from the durable feed).
  async _startEventPump() {
    if (this._eventPump) return;
    this._eventPump = (async () => {
      const start = (await this.readEvents(0, { limit: 1000 })).next;
      let cursor = await this._skipTo(start);
      for await (const e of this.events({ after: cursor })) this.emit('event', e);
    })().catch((e) => { if (!this._closing) this.emit('error', e); });
  }

  async _skipTo(after) {
    // Pages through to the newest id, so listeners only see what happens after they subscribed.
    let cursor = after;
    for (;;) {
      const page = await this.readEvents(cursor, { limit: 1000 });
      if (page.events.length === 0) return cursor;
      cursor = page.next;
    }
  }

  // ---- connect ----

  async connectStart(tenantId, userId, { teamId = null, popup = true } = {}) {
    return (await this._invoke('connect_start', { tenant_id: tenantId, user_id: userId, team_id: teamId, popup })).authorize_url;
  }

  // The outcome to serve ({ok, integration_id, http_status, body | location, ...}); resolves also
  // for a refused callback (ok false, error and error_message say why). signedIn ({tenantId,
  // userId}): the CRM user signed in where the callback arrived; a state started by another user
  // is refused ("state_foreign"). Pass it whenever the callback route runs inside the CRM's session.
  connectCallback(queryString, signedIn) {
    const args = { query: queryString };
    if (signedIn !== undefined) {
      // Fail closed: a session without a user must not turn into the unchecked callback.
      const ok = (v) => typeof v === 'string' && v !== '';
      if (!signedIn || !ok(signedIn.tenantId) || !ok(signedIn.userId)) {
        return Promise.reject(new FathomBridgeError(1, 'connectCallback: signedIn needs tenantId and userId'));
      }
      Object.assign(args, { tenant_id: signedIn.tenantId, user_id: signedIn.userId });
    }
    return this._invoke('connect_callback', args);
  }

  async connectApiKey(tenantId, userId, apiKey) {
    return (await this._invoke('connect_api_key', { tenant_id: tenantId, user_id: userId, api_key: apiKey })).integration_id;
  }

  async disconnect(tenantId, userId, integrationId) {
    await this._invoke('disconnect', { tenant_id: tenantId, user_id: userId, integration_id: integrationId });
  }

  // ---- tokens ----

  async accessToken(tenantId, userId, integrationId) {
    return (await this._invoke('access_token', { tenant_id: tenantId, user_id: userId, integration_id: integrationId })).access_token;
  }
  tokenHealth(tenantId = null, userId = null) { return this._invoke('token_health', { tenant_id: tenantId, user_id: userId }); }
  deactivateExpired() { return this._invoke('deactivate_expired'); }

  // ---- sync ----

  // Runs a sync and resolves with the job record when it is done.
  sync(tenantId, userId, integrationId, { mode = 'incremental', since, until, recordingId } = {}) {
    return this._invoke('sync', { tenant_id: tenantId, user_id: userId, integration_id: integrationId, mode, since, until, recording_id: recordingId });
  }
  // Starts a sync and resolves at once with its job record (status "running"); watch it with
  // syncJob, stop it at its next page with syncCancel. Its end raises sync_completed,
  // sync_failed or sync_cancelled.
  syncStart(tenantId, userId, integrationId, { mode = 'incremental', since, until, recordingId } = {}) {
    return this._invoke('sync_start', { tenant_id: tenantId, user_id: userId, integration_id: integrationId, mode, since, until, recording_id: recordingId });
  }
  // The job record with "progress" (pages, meetings, API budget left, covered, eta_s).
  syncJob(tenantId, userId, jobId) { return this._invoke('sync_job', { tenant_id: tenantId, user_id: userId, job_id: jobId }); }
  async syncCancel(tenantId, userId, jobId) { await this._invoke('sync_cancel', { tenant_id: tenantId, user_id: userId, job_id: jobId }); }
  async tick() { await this._invoke('tick'); }
  syncJobs(filter = null) { return this._invoke('sync_jobs', { filter }); }

  // ---- webhooks ----

  // Hands one delivery to the bridge. headers: an object or [name, value] pairs (Node's
  // req.headers works); body: a Buffer of the raw bytes. Resolves with {status, body} to answer.
  async webhookReceive(urlPath, headers, body) {
    const pairs = Array.isArray(headers) ? headers : Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]));
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(body);
    const status = [0], out = [null];
    await callAsync(this._api.fb_webhook_receive, this._handle(), urlPath, pairs.map((p) => String(p[0])),
      pairs.map((p) => String(p[1])), pairs.length, buf, buf.length, status, out);
    return { status: status[0], body: this._take(out[0]) || '' };
  }
  webhookEvents(filter = null) { return this._invoke('webhook_events', { filter }); }
  async webhookReplay(eventId) { return (await this._invoke('webhook_replay', { event_id: String(eventId) })).count; }

  // ---- scripts ----

  async reloadScripts() { await this._invoke('scripts_reload'); }

  // Stops the pumps and the bridge's workers; resolves once everything in flight is done.
  // Calls made after it starts reject with code 'misuse'.
  async close() {
    if (this._h === null || this._closing) return;
    this._closing = true;
    // fb_bridge_close must be the last call on the handle: let the event pump's read end first
    // (at most its waitMs). The CRM pump keeps answering until the close cancels its queue.
    await Promise.allSettled([this._eventPump].filter(Boolean));
    const h = this._h;
    this._closeCalled = true;
    await callAsync(this._api.fb_bridge_close, h);  // cancels queued CRM calls; fb_crm_next returns
    this._h = null;
    await Promise.allSettled([this._crmPump].filter(Boolean));
  }
}

module.exports = { Bridge, FathomBridgeError, version, load, CODES };

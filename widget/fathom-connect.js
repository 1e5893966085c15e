// fathom-connect.js: the "Connect Fathom" widget. A dependency-free ES module: a custom element
// <fathom-connect> and a plain function API, fathomConnect(). Served by the sidecar at
// /fathom/widget.js; see widget/README.md for the whole contract.
//
//   <script type="module" src="https://bridge.example.com/fathom/widget.js"></script>
//   <fathom-connect endpoint="https://bridge.example.com"></fathom-connect>
//   <script>document.querySelector('fathom-connect').token = () => crm.sessionJwt();</script>
//
//   import { fathomConnect } from 'https://bridge.example.com/fathom/widget.js';
//   const fc = fathomConnect({ endpoint: '', token: null, onChange: (s) => render(s) });
//   button.onclick = () => fc.connect();   // must run inside the click: it opens the popup
//
// The routes it calls (the sidecar's user routes, or the CRM backend's own with the same shapes):
//   GET  {endpoint}/fathom/connect?mode=popup|redirect -> {url, callback_origin}
//   GET  {endpoint}/fathom/status  -> {state, integration, integrations}
//   POST {endpoint}/fathom/sync    -> the sync job;  POST {endpoint}/fathom/disconnect
// with `Authorization: Bearer <token>` when a token is given, never with cookies of another site.
//
// Connecting: the popup is opened synchronously inside the click (so popup blockers allow it),
// then sent to Fathom. The callback page posts {source: 'fathom-bridge', status, integration_id |
// error} to this window; only a message whose event.origin is exactly callback_origin (from
// /fathom/connect, or the callback-origin attribute) and whose source is the popup is believed.
// A blocked popup (window.open returns null) falls back to the redirect flow: the whole window goes
// to Fathom and comes back to the CRM page (frontend.url + success_path ?fathom=connected). A popup
// closed without a message (the user closed it, or the opener link was lost) falls back to polling
// the status.

const MESSAGE_SOURCE = 'fathom-bridge';
const POLL_AFTER_CLOSE_MS = [0, 1000, 2000, 4000];

function joinUrl(endpoint, path) {
  return String(endpoint || '').replace(/\/+$/, '') + path;
}

/**
 * The plain API. options: endpoint (base URL of the /fathom routes; '' for this origin), token (a
 * string, or a function returning a string or a promise of one; null for none), callbackOrigin
 * (overrides the server's callback_origin), onChange(view) for every state change, popupFeatures.
 * view: {state, integration, integrations, busy, message, error}.
 */
export function fathomConnect(options = {}) {
  const opts = Object.assign({ endpoint: '', token: null, callbackOrigin: '', onChange: () => {},
                               popupFeatures: 'width=520,height=680' }, options);
  // outcome: how the last connect ended: 'message' (the popup's postMessage), 'poll' (the popup
  // closed without one; the status was polled), 'redirect' (back from the redirect flow), or ''.
  let view = { state: 'loading', integration: null, integrations: [], busy: false, message: '', error: '', outcome: '' };
  let pending = null;  // the connect in progress: {popup, origin, done, timer, listener}

  function emit(patch) {
    view = Object.assign({}, view, patch);
    try { opts.onChange(view); } catch (e) { console.error('fathom-connect onChange', e); }
  }

  async function headers(json) {
    const h = {};
    let t = typeof opts.token === 'function' ? opts.token() : opts.token;
    t = await t;
    if (t) h.Authorization = 'Bearer ' + t;
    if (json) h['Content-Type'] = 'application/json';
    return h;
  }

  async function call(method, path, body) {
    const res = await fetch(joinUrl(opts.endpoint, path), {
      method, headers: await headers(body !== undefined), credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const why = (data && (data.reason || data.error)) || ('HTTP ' + res.status);
      const err = new Error((data && data.message) || why);
      err.reason = why;
      err.status = res.status;
      throw err;
    }
    return data;
  }

  async function refresh() {
    try {
      const s = await call('GET', '/fathom/status');
      emit({ state: s.state, integration: s.integration, integrations: s.integrations || [], error: '' });
    } catch (e) {
      emit({ state: view.state === 'loading' ? 'disconnected' : view.state, error: e.reason || 'unreachable',
             message: 'Could not read the Fathom connection: ' + e.message });
    }
    return view;
  }

  function finish() {
    if (!pending) return;
    window.removeEventListener('message', pending.listener);
    clearInterval(pending.timer);
    pending = null;
  }

  // Polls the status a few times after the popup closed without a message.
  async function pollAfterClose(before) {
    emit({ busy: true, message: 'Checking whether Fathom was connected…' });
    for (const wait of POLL_AFTER_CLOSE_MS) {
      await new Promise((r) => setTimeout(r, wait));
      await refresh();
      if (view.state === 'connected' && before !== 'connected') break;
    }
    emit({ busy: false, outcome: 'poll',
           message: view.state === 'connected' ? '' : 'The Fathom window was closed before connecting.' });
  }

  function onMessage(e) {
    if (!pending || e.origin !== pending.origin) return;      // exact origin: the callback page's
    if (pending.popup && e.source !== pending.popup) return;  // and from the popup we opened
    const d = e.data;
    if (!d || typeof d !== 'object' || d.source !== MESSAGE_SOURCE) return;
    const popup = pending.popup;
    finish();
    try { if (popup && !popup.closed) popup.close(); } catch (err) { /* already gone */ }
    if (d.status === 'connected') {
      emit({ busy: false, message: '', outcome: 'message' });
      refresh();
    } else {
      emit({ busy: false, outcome: 'message', error: String(d.error || 'unknown_error'),
             message: 'Fathom was not connected: ' + String(d.error || 'unknown error') });
      refresh();
    }
  }

  // Starts connecting. Call it synchronously from a click handler: the popup opens right here.
  function connect() {
    if (pending) {
      try { pending.popup && pending.popup.focus(); } catch (e) { /* ignore */ }
      return;
    }
    let popup = null;
    try { popup = window.open('', 'fathom-connect', opts.popupFeatures); } catch (e) { popup = null; }
    const mode = popup ? 'popup' : 'redirect';
    const before = view.state;
    emit({ busy: true, error: '', message: popup ? 'Waiting for you to approve in the Fathom window…'
                                                  : 'Pop-up blocked: continuing to Fathom in this window…' });
    call('GET', '/fathom/connect?mode=' + mode).then((r) => {
      if (mode === 'redirect') {
        window.location.assign(r.url);
        return;
      }
      if (popup.closed) throw Object.assign(new Error('the Fathom window was closed'), { reason: 'popup_closed' });
      pending = { popup, origin: opts.callbackOrigin || r.callback_origin, listener: onMessage, timer: 0 };
      window.addEventListener('message', onMessage);
      popup.location.href = r.url;
      pending.timer = setInterval(() => {
        if (pending && pending.popup.closed) {
          // Give a message posted just before closing its turn, then ask the server.
          setTimeout(() => {
            if (!pending || !pending.popup.closed) return;
            finish();
            pollAfterClose(before);
          }, 300);
          clearInterval(pending.timer);
        }
      }, 400);
    }).catch((e) => {
      try { if (popup && !popup.closed) popup.close(); } catch (err) { /* ignore */ }
      finish();
      emit({ busy: false, error: e.reason || 'connect_failed', message: 'Could not start connecting: ' + e.message });
    });
  }

  async function sync() {
    emit({ busy: true, error: '', message: 'Syncing meetings from Fathom…' });
    try {
      const job = await call('POST', '/fathom/sync', {});
      await refresh();
      const ok = job && job.status === 'succeeded';
      // A sync that found the grant revoked needs no message: the status line says reconnect.
      emit({ busy: false, message: ok ? 'Sync finished: ' + (job.meetings_seen || 0) + ' meeting(s) read from Fathom.'
                                 : view.state === 'reconnect_required' ? ''
                                 : 'Sync ended: ' + ((job && (job.message || job.status)) || 'unknown') });
      return job;
    } catch (e) {
      await refresh();
      emit({ busy: false, error: e.reason || 'sync_failed',
             message: view.state === 'reconnect_required' ? '' : 'Sync failed: ' + e.message });
      return null;
    }
  }

  async function disconnect() {
    emit({ busy: true, error: '', message: 'Disconnecting…' });
    try {
      await call('POST', '/fathom/disconnect', {});
      await refresh();
      emit({ busy: false, message: 'Fathom was disconnected.' });
    } catch (e) {
      emit({ busy: false, error: e.reason || 'disconnect_failed', message: 'Could not disconnect: ' + e.message });
    }
  }

  // Back from the redirect flow: the callback sent the browser here with ?fathom=...
  function returnedFromRedirect() {
    const q = new URLSearchParams(window.location.search);
    const outcome = q.get('fathom');
    if (outcome) emit({ outcome: 'redirect' });
    if (outcome === 'error') {
      emit({ error: q.get('reason') || 'unknown_error', message: 'Fathom was not connected: ' + (q.get('reason') || 'unknown error') });
    }
    return outcome;
  }

  return {
    connect, refresh, sync, disconnect, returnedFromRedirect,
    get view() { return view; },
    set token(t) { opts.token = t; },
  };
}

const STYLE = `
:host { display: block; font: var(--fathom-font, 14px/1.4 system-ui, sans-serif); color: var(--fathom-fg, #1f2330); }
.card { border: 1px solid var(--fathom-border, #d9dce5); border-radius: var(--fathom-radius, 10px);
        background: var(--fathom-bg, #fff); padding: var(--fathom-padding, 16px); display: flex; gap: 14px; align-items: center; }
.logo { width: 36px; height: 36px; border-radius: 8px; background: var(--fathom-accent, #5636d3); color: #fff;
        display: grid; place-items: center; font-weight: 700; flex: none; }
.body { flex: 1; min-width: 0; }
.title { font-weight: 600; margin: 0 0 2px; }
.status { margin: 0; color: var(--fathom-muted, #5b6275); }
.badge { display: inline-block; border-radius: 999px; padding: 1px 8px; font-size: 12px; font-weight: 600; margin-right: 6px; }
.badge.connected { background: var(--fathom-ok-bg, #e3f6ea); color: var(--fathom-ok, #137a3a); }
.badge.reconnect_required { background: var(--fathom-warn-bg, #fff1db); color: var(--fathom-warn, #9a5b00); }
.badge.disconnected, .badge.loading { background: var(--fathom-off-bg, #eef0f4); color: var(--fathom-muted, #5b6275); }
.actions { display: flex; gap: 8px; flex: none; }
button { font: inherit; border-radius: var(--fathom-radius, 8px); padding: 7px 14px; cursor: pointer;
         border: 1px solid var(--fathom-accent, #5636d3); background: var(--fathom-accent, #5636d3); color: var(--fathom-on-accent, #fff); }
button.secondary { background: transparent; color: var(--fathom-accent, #5636d3); }
button:focus-visible { outline: 3px solid var(--fathom-focus, #9f8cf0); outline-offset: 2px; }
button[disabled] { opacity: .6; cursor: progress; }
.message { margin: 6px 0 0; font-size: 13px; }
.message.error { color: var(--fathom-error, #b42318); }
`;

const LABELS = { loading: 'Checking…', connected: 'Connected', reconnect_required: 'Reconnect required',
                 disconnected: 'Not connected' };

function text(tag, cls, content) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (content !== undefined) el.textContent = content;
  return el;
}

/**
 * <fathom-connect endpoint="..." callback-origin="..."> with a `token` property (string or
 * function). Events: `fathom-change` (detail: the view) on every change, `fathom-synced` (detail:
 * the job) after Sync now. Parts for styling: card, status, connect, reconnect, sync, disconnect.
 */
export class FathomConnectElement extends HTMLElement {
  constructor() {
    super();
    this._root = this.attachShadow({ mode: 'open' });
    this._token = null;
    this._api = null;
  }

  set token(t) {
    this._token = t;
    if (this._api) this._api.token = t;
  }
  get token() { return this._token; }
  get view() { return this._api ? this._api.view : null; }
  refresh() { return this._api ? this._api.refresh() : Promise.resolve(null); }

  connectedCallback() {
    if (this._api) return;
    // A token set on the element before this module defined it is an own property: take it over.
    if (Object.prototype.hasOwnProperty.call(this, 'token')) {
      const t = this.token;
      delete this.token;
      this._token = t;
    }
    const style = document.createElement('style');
    style.textContent = STYLE;
    this._card = text('div', 'card');
    this._card.setAttribute('part', 'card');
    this._card.setAttribute('role', 'group');
    this._card.setAttribute('aria-label', 'Fathom connection');
    this._root.append(style, this._card);
    this._api = fathomConnect({
      endpoint: this.getAttribute('endpoint') || '',
      callbackOrigin: this.getAttribute('callback-origin') || '',
      token: this._token || this.getAttribute('token'),
      onChange: (v) => this._render(v),
    });
    this._render(this._api.view);
    this._api.returnedFromRedirect();
    // The first status read waits a turn, so a page may set .token right after adding the element.
    setTimeout(() => this._api.refresh(), 0);
  }

  _button(label, part, cls, onClick) {
    const b = text('button', cls, label);
    b.type = 'button';
    b.setAttribute('part', part);
    b.dataset.action = part;
    b.addEventListener('click', (e) => {
      this._focusAction = part;
      onClick(e);
    });
    return b;
  }

  _render(v) {
    // Keyboard focus stays in the widget when its buttons are replaced (a button that was focused,
    // or clicked, and is gone leaves focus on the body: it moves to the new primary button).
    const inside = this._root.activeElement && this._root.activeElement.dataset;
    if (inside) this._focusAction = this._root.activeElement.dataset.action;
    const card = this._card;
    card.replaceChildren();
    card.dataset.state = v.state;
    card.setAttribute('aria-busy', v.busy ? 'true' : 'false');
    card.append(text('div', 'logo', 'F'));
    const body = text('div', 'body');
    body.append(text('p', 'title', 'Fathom'));
    const status = text('p', 'status');
    status.setAttribute('part', 'status');
    status.setAttribute('role', 'status');
    status.setAttribute('aria-live', 'polite');
    status.append(text('span', 'badge ' + v.state, LABELS[v.state] || v.state));
    const i = v.integration;
    let detail = '';
    if (v.state === 'connected') {
      detail = i && i.fathom_email ? 'as ' + i.fathom_email : 'to your Fathom account';
      if (i && i.last_sync_at) detail += ' · last sync ' + new Date(i.last_sync_at).toLocaleString();
    } else if (v.state === 'reconnect_required') {
      detail = 'Fathom access was revoked or has expired. Reconnect to resume syncing.';
    } else if (v.state === 'disconnected') {
      detail = 'Connect your Fathom account to bring your meetings into the CRM.';
    }
    status.append(document.createTextNode(detail));
    body.append(status);
    if (v.message) {
      const m = text('p', 'message' + (v.error ? ' error' : ''), v.message);
      m.setAttribute('part', 'message');
      body.append(m);
    }
    card.append(body);

    const actions = text('div', 'actions');
    const api = this._api;
    if (v.state === 'connected') {
      actions.append(this._button('Sync now', 'sync', '', async () => {
        const job = await api.sync();
        this.dispatchEvent(new CustomEvent('fathom-synced', { detail: job, bubbles: true }));
      }));
      actions.append(this._button('Disconnect', 'disconnect', 'secondary', () => api.disconnect()));
    } else if (v.state === 'reconnect_required') {
      actions.append(this._button('Reconnect Fathom', 'reconnect', '', () => api.connect()));
    } else if (v.state === 'disconnected') {
      actions.append(this._button('Connect Fathom', 'connect', '', () => api.connect()));
    }
    for (const b of actions.querySelectorAll('button')) b.disabled = !!v.busy;
    card.append(actions);

    const lost = document.activeElement === document.body || document.activeElement === this;
    if (this._focusAction && lost) {
      const next = actions.querySelector('[data-action="' + this._focusAction + '"]') || actions.querySelector('button');
      if (next && !next.disabled) {
        next.focus();
        this._focusAction = next.dataset.action;
      }
    }
    this.dispatchEvent(new CustomEvent('fathom-change', { detail: v, bubbles: true }));
  }
}

if (typeof customElements !== 'undefined' && !customElements.get('fathom-connect')) {
  customElements.define('fathom-connect', FathomConnectElement);
}

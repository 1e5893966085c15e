"""fathom-bridge for Python: connects a CRM to Fathom through libfathom_bridge's C ABI (ctypes).

    import fathom_bridge

    with fathom_bridge.Bridge({"tokens": {"key": KEY}, "store": {"path": "bridge.db"}}) as bridge:
        bridge.on_event(lambda event: print(event["type"]))

        @bridge.crm_operation("upsert_contact")
        def upsert_contact(args, call):
            return {"id": crm.save_contact(args["email"], key=call.idempotency_key)}

        integration = bridge.connect_api_key("acme", "user-42", api_key)
        job = bridge.sync("acme", "user-42", integration, mode="backfill")

Every blocking call releases the GIL. Event callbacks and CRM operations run on the library's
worker threads (several at once): make them thread-safe. Failures raise fathom_bridge.Error
subclasses that carry the code's number, its name and the library's message.
"""
import ctypes
import json
import threading
from collections import namedtuple

from . import _native

__all__ = ["Bridge", "Error", "CrmCall", "version", "code_name", "load_library"]
__version__ = "0.1.0"

# Result codes of fathom_bridge.h; numbered forever.
CODES = {
    0: "ok", 1: "invalid_argument", 2: "not_found", 3: "already_exists", 4: "permission_denied",
    5: "unauthenticated", 6: "failed_precondition", 7: "unavailable", 8: "rate_limited", 9: "timeout",
    10: "internal", 11: "reconnect_required", 12: "invalid_grant", 13: "io", 14: "config", 15: "script",
    16: "conflict", 17: "too_large", 18: "malformed", 19: "rejected", 20: "cancelled", 100: "misuse",
}


class Error(Exception):
    """A failed call: `code` (the number), `name` ("reconnect_required", ...) and `message`."""

    code = None
    name = "unknown"

    def __init__(self, message, code=None):
        if code is not None:
            self.code = code
            self.name = CODES.get(code, "unknown")
        self.message = message
        super().__init__(f"{self.name}: {message}")


_ERRORS = {}
for _code, _name in CODES.items():
    if _code == 0:
        continue
    _cls_name = "".join(part.capitalize() for part in _name.split("_")) + "Error"
    _cls = type(_cls_name, (Error,), {"code": _code, "name": _name, "__doc__": f"Code {_code} ({_name})."})
    _ERRORS[_code] = _cls
    globals()[_cls_name] = _cls
    __all__.append(_cls_name)


def _error(code, message):
    cls = _ERRORS.get(code)
    return cls(message) if cls else Error(message, code)


# The call a CRM operation receives beside its args.
CrmCall = namedtuple("CrmCall", "operation args idempotency_key integration_id tenant_id user_id dry_run")


def load_library(path=None):
    """Loads libfathom_bridge.so.0 from `path` (else $FATHOM_BRIDGE_LIBRARY, pkg-config, the loader)."""
    return _native.load(path)


def version():
    return load_library().fb_version().decode()


def code_name(code):
    return load_library().fb_code_name(code).decode()


_UNSET = object()  # an argument left out (None is a value: "no user signed in")


def _b(s):
    return None if s is None else str(s).encode("utf-8")


class Bridge:
    """One bridge: the store, the scripts and the workers. Use it as a context manager, or call
    close(). `config` is a dict (the JSON config document) or the path of a JSON config file."""

    def __init__(self, config=None, *, library=None):
        self._lib = load_library(library)
        self._handle = ctypes.c_void_p()
        self._lock = threading.Lock()
        self._callbacks = {}  # ctypes callback objects must live as long as the library may call them
        if isinstance(config, dict):
            rc = self._lib.fb_bridge_open(None, _b(json.dumps(config)), ctypes.byref(self._handle))
        else:
            rc = self._lib.fb_bridge_open(_b(config), None, ctypes.byref(self._handle))
        if rc != 0:
            message = self._lib.fb_errmsg(self._handle).decode("utf-8", "replace")
            self._lib.fb_bridge_close(self._handle)
            self._handle = None
            raise _error(rc, message)

    # ---- lifetime ----

    def close(self):
        """Stops the workers and waits for work in flight. Idempotent."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle:
            self._lib.fb_bridge_close(handle)
        self._callbacks.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    @property
    def closed(self):
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            raise _ERRORS[100]("the bridge is closed")
        return h

    def _check(self, rc):
        if rc != 0:
            raise _error(rc, self._lib.fb_errmsg(self._handle).decode("utf-8", "replace") if self._handle else "closed")

    def _take(self, out):
        """The string behind a char ** output, freed with fb_string_free."""
        if not out.value:
            return None
        try:
            return ctypes.string_at(out.value).decode("utf-8")
        finally:
            self._lib.fb_string_free(out.value)

    def _call_json(self, fn, *args):
        out = ctypes.c_void_p()
        rc = fn(self._h(), *args, ctypes.byref(out))
        text = self._take(out)
        self._check(rc)
        return json.loads(text) if text is not None else None

    # ---- host callbacks ----

    def on_event(self, callback):
        """callback(event: dict) for every event, on a library thread; None removes it. The event
        carries its "id" in the durable feed (see events())."""
        if callback is None:
            self._check(self._lib.fb_set_event_callback(self._h(), _native.EVENT_FN(), None))
            self._callbacks.pop("event", None)
            return None

        def trampoline(_user_data, event_json):
            try:
                callback(json.loads(event_json.decode("utf-8")))
            except Exception as e:  # an exception must not unwind into C
                _report("event callback", e)

        c_fn = _native.EVENT_FN(trampoline)
        self._callbacks["event"] = c_fn
        self._check(self._lib.fb_set_event_callback(self._h(), c_fn, None))
        return callback

    def register_crm_operation(self, name, handler):
        """Makes crm.<name>(args) available to the Lua scripts. handler(args: dict, call: CrmCall)
        returns a JSON-serialisable result (a dict, or None for "not found") and runs on library
        threads. Raise fathom_bridge.Error (or any exception) to fail the call: the script sees
        the message. A repeated call.idempotency_key must return the earlier result."""

        def trampoline(_user_data, call_json, result_out, error_out):
            try:
                call = json.loads(call_json.decode("utf-8"))
                info = CrmCall(call.get("operation"), call.get("args") or {}, call.get("idempotency_key"),
                               call.get("integration_id"), call.get("tenant_id"), call.get("user_id"),
                               bool(call.get("dry_run")))
                result = handler(info.args, info)
                result_out[0] = _native.c_strdup(json.dumps(result))
                return 0
            except Error as e:
                error_out[0] = _native.c_strdup(e.message)
                return e.code if e.code else 7
            except Exception as e:
                error_out[0] = _native.c_strdup(f"{type(e).__name__}: {e}")
                return 7  # unavailable: the CRM could not do it

        c_fn = _native.CRM_FN(trampoline)
        self._check(self._lib.fb_register_crm_operation(self._h(), _b(name), c_fn, None))
        self._callbacks["crm:" + name] = c_fn
        return handler

    def crm_operation(self, name):
        """Decorator form of register_crm_operation."""
        return lambda handler: self.register_crm_operation(name, handler)

    # ---- connect ----

    def connect_start(self, tenant_id, user_id, team_id=None, popup=True):
        """The Fathom authorize URL to open in the user's browser."""
        out = ctypes.c_void_p()
        rc = self._lib.fb_connect_start(self._h(), _b(tenant_id), _b(user_id), _b(team_id), 1 if popup else 0,
                                        ctypes.byref(out))
        url = self._take(out)
        self._check(rc)
        return url

    def connect_callback(self, query_string, tenant_id=_UNSET, user_id=_UNSET):
        """Completes the flow from the callback's query string. Returns the outcome dict
        ({"ok", "integration_id", "http_status", "body" | "location", ...}) to serve, also for a
        refused callback (then "ok" is false and "error" says why). tenant_id and user_id: the CRM
        user signed in where the callback arrived; a state started by another user is refused
        ("state_foreign"). Pass them whenever the callback route runs inside the CRM's session."""
        out = ctypes.c_void_p()
        if tenant_id is not _UNSET or user_id is not _UNSET:
            # Given, even as None: checked against the state's user, and a missing one fails closed.
            tenant_id = None if tenant_id is _UNSET else tenant_id
            user_id = None if user_id is _UNSET else user_id
            rc = self._lib.fb_connect_callback_as(self._h(), _b(query_string), _b(tenant_id), _b(user_id),
                                                  ctypes.byref(out))
            if rc != 0 and not out.value:
                self._check(rc)
        else:
            self._lib.fb_connect_callback(self._h(), _b(query_string), ctypes.byref(out))
        text = self._take(out)
        if text is None:
            self._check(7)
        return json.loads(text)

    def connect_api_key(self, tenant_id, user_id, api_key):
        """Connects with a Fathom API key; returns the integration id."""
        out = ctypes.c_int64()
        self._check(self._lib.fb_connect_api_key(self._h(), _b(tenant_id), _b(user_id), _b(api_key), ctypes.byref(out)))
        return out.value

    def disconnect(self, tenant_id, user_id, integration_id):
        self._check(self._lib.fb_disconnect(self._h(), _b(tenant_id), _b(user_id), integration_id))

    # ---- tokens ----

    def access_token(self, tenant_id, user_id, integration_id):
        out = ctypes.c_void_p()
        rc = self._lib.fb_access_token(self._h(), _b(tenant_id), _b(user_id), integration_id, ctypes.byref(out))
        token = self._take(out)
        self._check(rc)
        return token

    def token_health(self, tenant_id=None, user_id=None):
        return self._call_json(self._lib.fb_token_health, _b(tenant_id), _b(user_id))

    def deactivate_expired(self):
        return self._call_json(self._lib.fb_deactivate_expired)

    # ---- sync ----

    def sync(self, tenant_id, user_id, integration_id, mode="incremental", *, since=None, until=None,
             recording_id=None):
        """Runs a sync and waits for it; returns the job record."""
        options = {k: v for k, v in (("since", since), ("until", until), ("recording_id", recording_id)) if v is not None}
        return self._call_json(self._lib.fb_sync, _b(tenant_id), _b(user_id), integration_id, _b(mode),
                               _b(json.dumps(options)) if options else None)

    def sync_start(self, tenant_id, user_id, integration_id, mode="incremental", *, since=None, until=None,
                   recording_id=None):
        """Starts a sync and returns its job record at once (status "running"); watch it with
        sync_job, stop it at its next page with sync_cancel."""
        options = {k: v for k, v in (("since", since), ("until", until), ("recording_id", recording_id)) if v is not None}
        return self._call_json(self._lib.fb_sync_start, _b(tenant_id), _b(user_id), integration_id, _b(mode),
                               _b(json.dumps(options)) if options else None)

    def sync_job(self, tenant_id, user_id, job_id):
        """The job record with "progress" (pages, meetings, API budget left, covered, eta_s)."""
        return self._call_json(self._lib.fb_sync_job, _b(tenant_id), _b(user_id), job_id)

    def sync_cancel(self, tenant_id, user_id, job_id):
        """Asks a running job to stop at its next page (FailedPreconditionError once it ended)."""
        self._check(self._lib.fb_sync_cancel(self._h(), _b(tenant_id), _b(user_id), job_id))

    def tick(self):
        self._check(self._lib.fb_tick(self._h()))

    def sync_jobs(self, integration_id=None, status=None, limit=None):
        f = {k: v for k, v in (("integration_id", integration_id), ("status", status), ("limit", limit)) if v is not None}
        return self._call_json(self._lib.fb_sync_jobs, _b(json.dumps(f)) if f else None)

    # ---- webhooks ----

    def webhook_receive(self, path, headers, body):
        """Hands one webhook delivery to the bridge. headers: a mapping or (name, value) pairs;
        body: the raw bytes. Returns (http_status, response_body) to answer with."""
        pairs = list(headers.items()) if hasattr(headers, "items") else list(headers)
        n = len(pairs)
        names = (ctypes.c_char_p * max(n, 1))(*[_b(k) for k, _ in pairs])
        values = (ctypes.c_char_p * max(n, 1))(*[_b(v) for _, v in pairs])
        data = body if isinstance(body, (bytes, bytearray)) else str(body).encode("utf-8")
        status = ctypes.c_int()
        out = ctypes.c_void_p()
        self._lib.fb_webhook_receive(self._h(), _b(path), names, values, n, bytes(data), len(data),
                                     ctypes.byref(status), ctypes.byref(out))
        return status.value, self._take(out) or ""

    def webhook_events(self, status=None, integration_id=None, limit=None):
        f = {k: v for k, v in (("status", status), ("integration_id", integration_id), ("limit", limit)) if v is not None}
        return self._call_json(self._lib.fb_webhook_events, _b(json.dumps(f)) if f else None)

    def webhook_replay(self, event_id):
        """Replays one inbox event by id, or every dead letter with "dead". Returns how many."""
        count = ctypes.c_int()
        self._check(self._lib.fb_webhook_replay(self._h(), _b(event_id), ctypes.byref(count)))
        return count.value

    # ---- scripts ----

    def reload_scripts(self):
        self._check(self._lib.fb_scripts_reload(self._h()))

    # ---- the durable event feed ----

    def read_events(self, after=0, limit=100, wait=0.0):
        """One page {"events": [...], "next": id} of the events with id > after. wait (seconds):
        when there is none yet, block up to that long for one."""
        return self._call_json(self._lib.fb_events_wait, int(after), int(limit), int(wait * 1000))

    def events(self, after=0, *, follow=True, wait=5.0, limit=100):
        """Iterates over the durable event feed from the event after `after`. With follow (the
        default) it waits for new events forever (until the bridge is closed); otherwise it ends
        at the newest event. Remember the last event's "id" to resume after a restart."""
        cursor = after
        while self._handle is not None:
            try:
                page = self.read_events(cursor, limit, wait if follow else 0)
            except Error:
                if self._handle is None:
                    return
                raise
            for event in page["events"]:
                cursor = event["id"]
                yield event
            if not page["events"] and not follow:
                return


def _report(where, e):
    import sys
    import traceback
    print(f"fathom_bridge: {where} raised {type(e).__name__}: {e}", file=sys.stderr)
    traceback.print_exc()

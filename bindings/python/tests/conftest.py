"""Fixtures: fathom-sim on loopback, a CRM that stores what the bridge's scripts send it, and a
webhook endpoint that hands Fathom's deliveries to the bridge, as a Python host would have.

Environment (set by CTest, see bindings/python/run_tests.sh):
  FATHOM_BRIDGE_LIBRARY  path of libfathom_bridge.so.0
  FATHOM_SIM_BIN         path of fathom-sim
  FB_SOURCE_DIR          the repository (for the default scripts)
"""
import base64
import json
import os
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

SOURCE_DIR = os.environ.get("FB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "../../..")))
TOKEN_KEY = base64.b64encode(b"p" * 32).decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sim:
    """fathom-sim as a child process."""

    def __init__(self, args):
        binary = os.environ.get("FATHOM_SIM_BIN")
        if not binary or not os.path.exists(binary):
            pytest.fail("FATHOM_SIM_BIN must name the fathom-sim binary")
        self.proc = subprocess.Popen([binary, "--port", "0", "--quiet", *args], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            pytest.fail(f"fathom-sim did not start: {line!r}")
        self.base = line.strip().split("listening on ", 1)[1]

    def admin(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
        return json.loads(text) if text else None

    def api_key(self, email):
        users = self.admin("GET", "/_sim/users")
        users = users["users"] if isinstance(users, dict) else users
        return next(u["api_key"] for u in users if u["email"] == email)

    def authorize_as(self, authorize_url, email):
        """Plays the browser at Fathom's consent page; returns the redirect's Location."""
        with urllib.request.urlopen(authorize_url, timeout=30) as r:
            assert r.status == 200
        fields = urllib.parse.parse_qsl(urllib.parse.urlsplit(authorize_url).query) + [("user", email),
                                                                                       ("decision", "approve")]

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        req = urllib.request.Request(self.base + "/external/v1/oauth2/authorize",
                                     data=urllib.parse.urlencode(fields).encode(), method="POST")
        try:
            opener.open(req, timeout=30)
        except urllib.error.HTTPError as e:
            if e.code == 302:
                return e.headers["Location"]
            raise
        raise AssertionError("fathom-sim's consent did not redirect")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Crm:
    """Stores what crm.<op> calls create, honouring idempotency keys; records the threads."""

    OPERATIONS = ["find_company_by_domain", "find_contact_by_email", "find_deal", "upsert_company", "upsert_contact",
                  "log_activity", "create_task", "create_deal", "attach_recording"]

    def __init__(self):
        self.lock = threading.Lock()
        self.records = {}   # operation -> list of args
        self.by_key = {}
        self.threads = set()
        self.seq = 0

    def handler(self, operation):
        def handle(args, call):
            with self.lock:
                self.threads.add(threading.get_ident())
                if call.idempotency_key in self.by_key:
                    return self.by_key[call.idempotency_key]
                if operation.startswith("find_"):
                    result = None
                else:
                    self.seq += 1
                    self.records.setdefault(operation, []).append(args)
                    result = {"id": f"{operation}_{self.seq}"}
                self.by_key[call.idempotency_key] = result
                return result
        return handle

    def count(self, operation):
        with self.lock:
            return len(self.records.get(operation, []))


class WebhookEndpoint:
    """The host's HTTP server: POST /webhooks/... goes to bridge.webhook_receive()."""

    def __init__(self, port):
        self.bridge = None
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, text = endpoint.bridge.webhook_receive(self.path, list(self.headers.items()), body)
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def host(tmp_path):
    """fathom-sim, the CRM, the webhook endpoint and a bridge config wired to them."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sim = Sim(["--meetings", "12", "--seed", "5", "--redirect-uri", base + "/oauth/callback"])
    endpoint = WebhookEndpoint(port)
    config = {
        "fathom": {"client_id": "sim-client", "client_secret": "sim-secret", "redirect_uri": base + "/oauth/callback",
                   "authorize_url": sim.base + "/external/v1/oauth2/authorize",
                   "token_url": sim.base + "/external/v1/oauth2/token", "api_base": sim.base + "/external/v1"},
        "frontend": {"url": base},
        "tokens": {"key": TOKEN_KEY},
        "webhooks": {"public_base_url": base},
        "store": {"path": str(tmp_path / "bridge.db")},
        "scripts": {"dir": os.path.join(SOURCE_DIR, "scripts")},
        "sync": {"scheduler": False},
        "log_level": "warn",
    }
    yield sim, Crm(), endpoint, config
    endpoint.stop()
    sim.stop()

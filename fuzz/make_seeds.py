#!/usr/bin/env python3
"""Builds the seed corpora in fuzz/corpus/<target>/ from the tests' inputs.

    python3 fuzz/make_seeds.py [BUILD_DIR]

Sources: the C++ string literals of the HTTP server, config and verifier tests, the pattern
harness of tests/scripting/pattern_test.cpp, the meeting fixtures of tests/scripting/fixtures, and
pages that fathom-sim serves (BUILD_DIR/tests/sim/fathom-sim; skipped when it is not built).
Seeds are named by the SHA-1 of their content, as libFuzzer names what it adds, so running this
again only adds what changed. Review the diff before committing it.
"""
import base64, glob, hashlib, hmac, json, os, re, subprocess, sys, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def save(target, data):
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def c_literals(path):
    """Plain "..." C++ literals of a file, unescaped, adjacent ones joined."""
    text = open(path, encoding="utf-8").read()
    out = []
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"(?:\s*"((?:[^"\\\n]|\\.)*)")*', text):
        parts = re.findall(r'"((?:[^"\\\n]|\\.)*)"', m.group(0))
        out.append("".join(bytes(p, "utf-8").decode("unicode_escape") for p in parts))
    return out


def lua_unescape(s):
    s = re.sub(r"\\(\d{1,3})", lambda m: chr(int(m.group(1))), s)
    return s.replace("\\t", "\t").replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


# --- HTTP/1.1 requests: every literal of the server test that starts a request, alone and pipelined.
reqs = [l for l in c_literals(os.path.join(ROOT, "tests/server/http_server_test.cpp"))
        if re.match(r"(GET|POST|PUT|HEAD|DELETE|OPTIONS) ", l)]
for r in reqs:
    save("fuzz_http_request", r.replace("/echo", "/x").replace("/async/", "/hooks/"))
for a, b in zip(reqs, reqs[1:]):
    save("fuzz_http_request", (a + b).replace("/echo", "/x").replace("/async/", "/hooks/"))
save("fuzz_http_request", "HEAD /x HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /x?a=1&b=%41 HTTP/1.1\r\n\r\n")

# --- Webhook deliveries: the Standard Webhooks vectors of the verifier test, re-signed for the
# fuzz target's clock and keys, plus svix-* names and a secret header.
def b64key(secret):
    return base64.b64decode(secret[len("whsec_"):])
KEY_A = b64key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
KEY_B = b"previous-key"
NOW = 1712345678
bodies = ['{"test": 2432232314}', '{"type":"meeting_content_ready","data":{"recording_id":123}}', ""]
for i, body in enumerate(bodies):
    for key in (KEY_A, KEY_B):
        mid, ts = "msg_p5jXN8AQM9LWM0D4loKWxJek", str(NOW - 10 * i)
        mac = base64.b64encode(hmac.new(key, f"{mid}.{ts}.{body}".encode(), hashlib.sha256).digest()).decode()
        save("fuzz_webhook_verify", f"webhook-id: {mid}\nwebhook-timestamp: {ts}\nwebhook-signature: v1,{mac}\n\n{body}")
        save("fuzz_webhook_verify", f"Svix-Id: {mid}\nSvix-Timestamp: {ts}\nSvix-Signature: v2,x v1,AAAA v1,{mac}\n\n{body}")
save("fuzz_webhook_verify", "secret: whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY\nwebhook-id: a\nwebhook-timestamp: 1614265330\nwebhook-signature: v1,\n\nx")

# --- JSON to Lua: the meeting fixtures, and the sim's meetings with transcripts (below).
for f in glob.glob(os.path.join(ROOT, "tests/scripting/fixtures/*.json")):
    save("fuzz_json_lua", open(f, "rb").read())
save("fuzz_json_lua", '{"transcript":[{"text":"a"},{"text":"b"}],"action_items":[1,null,2.5,"x"],"n":null,"e":{},"a":[]}')

# --- OAuth callbacks (the token endpoint's answer after a newline), from the flow's cases.
for q in ["code=abc&state=@S", "?state=@S&code=c%20d", "error=access_denied&state=@S", "error=server_error&state=@S",
          "state=@S", "code=a&code=b&state=@S", "code=x&state=unknown", "state=&code=x", "code=x",
          "code=x&state=@S\n{\"access_token\":\"a\",\"token_type\":\"Bearer\",\"expires_in\":1}",
          "code=x&state=@S\n{\"error\":\"invalid_grant\"}", "code=x&state=@S\nnot json", "%zz=1&state=@S"]:
    save("fuzz_oauth_callback", q)

# --- Config: the documents of the config tests.
for l in c_literals(os.path.join(ROOT, "tests/core/config_test.cpp")) + c_literals(os.path.join(ROOT, "tests/oauth/config_test.cpp")):
    if l.lstrip().startswith("{"):
        save("fuzz_config", l)
for f in ("tests/core/config_test.cpp", "tests/oauth/config_test.cpp"):
    for raw in re.findall(r'R"\((.*?)\)"', open(os.path.join(ROOT, f), encoding="utf-8").read(), re.S):
        if raw.lstrip().startswith("{"):
            save("fuzz_config", raw)
KEY = "k1:" + base64.b64encode(b"a" * 32).decode()
save("fuzz_config", json.dumps({"fathom": {"client_id": "cid", "client_secret": "s", "redirect_uri": "http://127.0.0.1:8787/oauth/callback",
                                          "use_pkce": True}, "tokens": {"key": KEY, "refresh_buffer_s": 300},
                                "sync": {"interval_s": 60}, "webhooks": {"tolerance_s": 300}, "log_level": "debug",
                                "server": {"port": 8787}, "store": {"path": "x.db"}}))

# --- Lua patterns: every pattern of the differential test, against every subject (pattern NUL subject).
harness = open(os.path.join(ROOT, "tests/scripting/pattern_test.cpp"), encoding="utf-8").read()
def lua_table(name):
    body = re.search(r"local %s = \{(.*?)\n\}" % name, harness, re.S).group(1)
    return [lua_unescape(s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', body)]
subjects, patterns = lua_table("subjects"), lua_table("patterns")
for i, p in enumerate(patterns):
    save("fuzz_lua_pattern", p + "\0" + subjects[i % len(subjects)])
save("fuzz_lua_pattern", ".-.-.-.-.-b\0" + "a" * 200)

# --- Fathom pages: what fathom-sim serves (meetings with every include, transcript, summary, teams).
sim = os.path.join(BUILD, "tests/sim/fathom-sim")
if os.path.exists(sim):
    p = subprocess.Popen([sim, "--port", "0", "--meetings", "6", "--quiet"], stdout=subprocess.PIPE, text=True)
    try:
        base = re.search(r"http://127\.0\.0\.1:\d+", p.stdout.readline()).group(0)
        users = json.load(urllib.request.urlopen(base + "/_sim/users"))
        key = users[0]["api_key"] if isinstance(users, list) else users["users"][0]["api_key"]
        def get(path):
            req = urllib.request.Request(base + "/external/v1" + path, headers={"X-Api-Key": key})
            return urllib.request.urlopen(req).read()
        page = get("/meetings?include_transcript=true&include_summary=true&include_action_items=true&include_crm_matches=true")
        save("fuzz_fathom_page", page)
        save("fuzz_fathom_page", get("/meetings"))
        save("fuzz_fathom_page", get("/teams"))
        save("fuzz_fathom_page", get("/team_members"))
        for m in json.loads(page)["items"][:2]:
            rid = m["recording_id"]
            save("fuzz_fathom_page", get(f"/recordings/{rid}/transcript"))
            save("fuzz_fathom_page", get(f"/recordings/{rid}/summary"))
            save("fuzz_fathom_page", json.dumps(m))
            save("fuzz_json_lua", json.dumps(m))
    finally:
        p.terminate()
        p.wait()
else:
    print("fathom-sim not built: Fathom page seeds skipped", file=sys.stderr)
print("seeds:", {d: len(os.listdir(os.path.join(CORPUS, d))) for d in sorted(os.listdir(CORPUS))})

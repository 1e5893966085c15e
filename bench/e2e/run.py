#!/usr/bin/env python3
"""bench/e2e: one command for the end-to-end comparison of issue 11 (see bench/README.md).

    bench/e2e/run.py BUILD_DIR [--duration 10] [--rounds 2] [--systems host,serve,node]
                     [--sync-meetings 10000] [--conns 32] [--base-lib DIR --systems host-base,host,...]
    bench/e2e/run.py BUILD_DIR --steady 5000 [--steady-seconds 60] [--sync-meetings 0]

Systems, run one after the other and interleaved (host, serve, node, host, serve, node, ...), each
fed the same kind of signed 20 KB deliveries (bench/webhooks' generator) by wrk:
  host   fathom-bridge in process: e2e_host (the C ABI only) with SQLite CRM tables, CRM writes of a
         batch in one CRM transaction (fb_set_crm_batch_callbacks)
  serve  `fathom-bridge serve` with the CRM over HTTP: e2e_crm_server, the same tables
  node   node/receiver.mjs: node:http + standardwebhooks + the mapping in JS + better-sqlite3
Variants for experiments: host-base (e2e_host on the library in --base-lib, for an A/B of a library
change in one run), host-noreact (without reactions.lua) and host-threads (e2e_host serving HTTP with
cpp-httplib, a thread per connection blocked in fb_webhook_receive, as before issue 11's last round;
host serves from one epoll thread through fb_webhook_receive_async). Then the sync path: a backfill of
--sync-meetings meetings from fathom-sim (rate limit lifted) through the real mapping into e2e_host.

Figures per system: deliveries/s and p50/p99 (wrk); CPU per delivery while ingesting (the
ingesting threads' CPU during wrk's window: every thread but the bridge's workers "fb-worker" and
the HTTP CRM); events mapped per second from wrk's start until the last activity is in the CRM;
CPU per mapped event (every process of the system, from wrk's start to the last mapped event,
from /proc); and a check that the systems wrote the same CRM rows (a canonical dump of the rows
of the recordings every system mapped, plus companies and contacts).
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECRET = "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY"
TOKEN_KEY = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="
TICK = os.sysconf("SC_CLK_TCK")
# glibc settings the sidecar makes itself (bench/README.md, "Webhooks"); an embedding host sets them
# through the environment.
MALLOC_ENV = {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=67108864"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def cpu_of(pid):
    """(total CPU seconds of the process, {thread name: CPU seconds}) from /proc."""
    def ticks(path):
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    total = ticks(f"/proc/{pid}/stat")
    by_name = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
                by_name[name] = by_name.get(name, 0.0) + ticks(f"/proc/{pid}/task/{tid}/stat")
            except OSError:
                pass
    except OSError:
        pass
    return total, by_name


class Proc:
    """A child process whose first stdout line announces it."""

    def __init__(self, argv, env=None, cwd=None, stderr_path=None):
        self.err = open(stderr_path, "w") if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.err, text=True,
                                  env={**os.environ, **(env or {})}, cwd=cwd)
        self.line = self.p.stdout.readline().strip()
        if not self.line:
            raise RuntimeError(f"{argv[0]} did not start (see {stderr_path})")

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def http_json(url, body=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def bridge_config(work, name, sim_url, extra=None):
    cfg = {
        "fathom": {"api_base": sim_url + "/external/v1", "client_id": "sim-client", "client_secret": "sim-secret",
                   "redirect_uri": "http://127.0.0.1:8787/oauth/callback",
                   "authorize_url": sim_url + "/external/v1/oauth2/authorize",
                   "token_url": sim_url + "/external/v1/oauth2/token"},
        "frontend": {"url": "http://127.0.0.1:3000"},
        "tokens": {"key": TOKEN_KEY},
        "store": {"path": f"{work}/{name}.db"},
        "scripts": {"dir": f"{ROOT}/scripts", "company_domains": ["example.com"], "hot_reload": False},
        "sync": {"scheduler": False, "backfill_days": 100000, "fetch_summaries": True},
        "webhooks": {"workers": 2},
        "log_level": "warn",
    }
    for k, v in (extra or {}).items():
        cfg.setdefault(k, {}).update(v)
    path = f"{work}/{name}.json"
    with open(path, "w") as f:
        json.dump(cfg, f)
    return path


def activities(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return c.execute("SELECT count(*) FROM activities").fetchone()[0]
        finally:
            c.close()
    except sqlite3.Error:
        return 0



def wait_drained(count, expected, since, timeout, poll=0.1):
    """Polls count() until it reaches expected and has not moved for 1 s, it has not moved for 30 s
    (stuck, or wrk ran out of deliveries and resent some), or timeout s have passed since `since`.
    Returns the last count and when it last changed."""
    n, t_last = count(), time.monotonic()
    while time.monotonic() - since < timeout:
        time.sleep(poll)
        m = count()
        if m != n:
            n, t_last = m, time.monotonic()
        elif (n >= expected and time.monotonic() - t_last > 1.0) or time.monotonic() - t_last > 30:
            break
    return n, t_last

def dump(db):
    """The CRM rows: {table: {id: row}}."""
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    out = {}
    for t in ("companies", "contacts", "activities", "tasks", "attachments"):
        cur = c.execute(f"SELECT * FROM {t} ORDER BY id")
        cols = [d[0] for d in cur.description]
        out[t] = {r[0]: dict(zip(cols, r)) for r in cur}
    c.close()
    return out


def compare(dumps):
    """Rows of the recordings every system mapped, plus companies and contacts: same in all?"""
    names = list(dumps)
    common = None
    for d in dumps.values():
        rids = {r["recording_id"] for r in d["activities"].values()}
        common = rids if common is None else common & rids
    digests = {}
    for n, d in dumps.items():
        h = hashlib.sha256()
        for t in ("companies", "contacts"):
            for k in sorted(d[t]):
                h.update(json.dumps(d[t][k], sort_keys=True).encode())
        for t in ("activities", "tasks", "attachments"):
            for k in sorted(d[t]):
                if d[t][k]["recording_id"] in common:
                    h.update(json.dumps(d[t][k], sort_keys=True).encode())
        digests[n] = h.hexdigest()[:16]
    same = len(set(digests.values())) == 1
    return same, len(common or ()), digests, names


def wrk(url, path, deliveries, seconds, conns):
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
                          f"{ROOT}/bench/webhooks/deliver.lua", url, "--", path, deliveries, "2"],
                         capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    return reqs - (int(non2xx.group(1)) if non2xx else 0), int(non2xx.group(1)) if non2xx else 0, lat, out


def run_system(name, a, work, sim_url, alice_key, round_no):
    """One timed run of one system; returns its figures and the path of its CRM database."""
    tag = f"{name}-{round_no}"
    deliveries = f"{work}/deliveries-{tag}"
    subprocess.run([f"{a.build}/bench/webhooks/fb_webhook_bench_gen", "--secret", SECRET, "--count",
                    str(a.max_rate * a.duration), "--size", "20000", "--bodies", "64", "--out", deliveries],
                   check=True, capture_output=True)
    crm_db = f"{work}/crm-{tag}.db"
    schema = f"{HERE}/crm_schema.sql"
    procs, worker_pids = [], []
    try:
        if name in ("host", "host-base", "host-noreact", "host-threads"):
            # host-noreact: without reactions.lua, to see what the default reaction hook costs
            cfg = bridge_config(work, tag, sim_url,
                                {"scripts": {"reactions": ""}} if name == "host-noreact" else None)
            # host-base: the same host on another build of the library (A/B in one run)
            env = {**MALLOC_ENV, **({"LD_LIBRARY_PATH": a.base_lib} if name == "host-base" else {})}
            host = a.base_host if name == "host-base" and a.base_host else f"{a.build}/bench/e2e/e2e_host"
            p = Proc([host, "webhooks", "--config", cfg, "--crm-db", crm_db, "--schema",
                      schema, "--api-key", alice_key, "--secret", SECRET] +
                     (["--http", "threads"] if name == "host-threads" else []), env=env, stderr_path=f"{work}/{tag}.err")
            procs.append(p)
            _, port, path = p.line.split()
        elif name == "serve":
            crm = Proc([f"{a.build}/bench/e2e/e2e_crm_server", "--crm-db", crm_db, "--schema", schema],
                       stderr_path=f"{work}/{tag}-crm.err")
            procs.append(crm)
            port = free_port()
            cfg = bridge_config(work, tag, sim_url, {"server": {"port": port,
                                                                "crm_url": f"http://127.0.0.1:{crm.line.split()[1]}/crm"}})
            p = Proc([f"{a.build}/plugin/cli/fathom-bridge", "serve", "--config", cfg], stderr_path=f"{work}/{tag}.err")
            procs.insert(0, p)
            base = f"http://127.0.0.1:{port}"
            iid = http_json(base + "/v1/connect/api-key", {"tenant_id": "bench", "user_id": "u0",
                                                           "api_key": alice_key})["integration_id"]
            path = http_json(base + "/v1/webhooks/routes", {"tenant_id": "bench", "user_id": "u0",
                                                            "integration_id": iid, "secret": SECRET})["path"]
        else:
            p = Proc(["node", f"{HERE}/node/receiver.mjs", "--db", crm_db, "--schema", schema, "--secret", SECRET,
                      "--domains", "example.com"], stderr_path=f"{work}/{tag}.err")
            procs.append(p)
            port = p.line.split()[1]
            path = "/webhooks/fathom"
        url = f"http://127.0.0.1:{port}"
        pids = [q.p.pid for q in procs]
        load0 = loadavg()
        c0 = {pid: cpu_of(pid) for pid in pids}
        accepted, non2xx, lat, _ = wrk(url, path, deliveries, a.duration, a.conns)
        t_wrk = time.monotonic()
        t_send = t_wrk - a.duration  # wrk sends for exactly --duration after loading its requests
        c1 = {pid: cpu_of(pid) for pid in pids}
        load1 = loadavg()
        # Until the last delivery is an activity in the CRM: at least wrk's count (wrk does not count
        # answers still in flight when it stops, which were accepted too), and no new one for 1 s.
        mapped, t_last = wait_drained(lambda: activities(crm_db), accepted, t_wrk, a.drain_timeout, poll=0.05)
        c2 = {pid: cpu_of(pid) for pid in pids}
    finally:
        for q in procs:
            q.stop()
        shutil.rmtree(deliveries, ignore_errors=True)

    def processing(c):  # CPU of the threads that map: the bridge's workers, and the HTTP CRM
        return c[pids[0]][1].get("fb-worker", 0.0) + sum(c[pid][0] for pid in pids[1:])
    ingest_cpu = sum(c1[p][0] - c0[p][0] for p in pids) - (processing(c1) - processing(c0))
    total_cpu = sum(c2[p][0] - c0[p][0] for p in pids)
    by_thread = {}
    for pid in pids:
        for k, v in c2[pid][1].items():
            by_thread[k] = by_thread.get(k, 0.0) + v - c0[pid][1].get(k, 0.0)
    return {
        "system": name, "round": round_no, "accepted": accepted, "non2xx": non2xx, "mapped": mapped,
        "deliv_per_s": accepted / a.duration, "ingest_us": 1e6 * ingest_cpu / max(accepted, 1),
        "mapped_per_s": mapped / (t_last - t_send), "cpu_us_per_event": 1e6 * total_cpu / max(mapped, 1),
        "processing_us_per_event": 1e6 * (processing(c2) - processing(c0)) / max(mapped, 1),
        "p50": lat.get("50", "-"), "p99": lat.get("99", "-"), "load": f"{load0:.1f}-{load1:.1f}",
        "drain_s": t_last - t_wrk, "threads_cpu_s": {k: round(v, 2) for k, v in by_thread.items() if v > 0.05},
    }, crm_db


def run_steady(a, work, sim_url, alice_key):
    """--steady RATE: e2e_host fed at a steady RATE deliveries/s for --steady-seconds by paced_send
    (wrk cannot pace); every second, how many are mapped and the backlog (due so far - mapped)."""
    rate, secs = a.steady, a.steady_seconds
    deliveries = f"{work}/deliveries-steady"
    subprocess.run([f"{a.build}/bench/webhooks/fb_webhook_bench_gen", "--secret", SECRET, "--count",
                    str(rate * secs + 1), "--size", "20000", "--bodies", "64", "--out", deliveries],
                   check=True, capture_output=True)
    crm_db = f"{work}/crm-steady.db"
    cfg = bridge_config(work, "steady", sim_url)
    p = Proc([f"{a.build}/bench/e2e/e2e_host", "webhooks", "--config", cfg, "--crm-db", crm_db, "--schema",
              f"{HERE}/crm_schema.sql", "--api-key", alice_key, "--secret", SECRET],
             env=MALLOC_ENV, stderr_path=f"{work}/steady.err")
    samples = []
    try:
        _, port, path = p.line.split()
        load0, c0 = loadavg(), cpu_of(p.p.pid)[0]
        sender = subprocess.Popen([f"{a.build}/bench/e2e/paced_send", "--port", port, "--path", path, "--dir",
                                   deliveries, "--rate", str(rate), "--seconds", str(secs), "--conns", str(a.conns)],
                                  stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while sender.poll() is None:
            time.sleep(1.0)
            t = time.monotonic() - t0
            m = activities(crm_db)
            samples.append({"t": round(t, 1), "mapped": m, "backlog": max(0, int(min(t, secs) * rate) - m)})
        report = json.loads(sender.stdout.read().strip().splitlines()[-1])
        t_sent = time.monotonic()
        mapped, t_last = wait_drained(lambda: activities(crm_db), report["ok"], t_sent, a.drain_timeout)
        cpu = cpu_of(p.p.pid)[0] - c0
    finally:
        p.stop()
        shutil.rmtree(deliveries, ignore_errors=True)
    return {"rate": rate, "seconds": secs, "sender": report, "mapped": mapped, "drain_after_send_s": t_last - t_sent,
            "cpu_us_per_event": 1e6 * cpu / max(mapped, 1), "load": f"{load0:.1f}-{loadavg():.1f}",
            "backlog_every_10s": [x["backlog"] for x in samples if int(x["t"]) % 10 == 0][:8],
            "samples": samples}


def run_sync(a, work, sim, sim_url, keys, base=False):
    """The backfill into e2e_host; base: the --base-host binary on the --base-lib library."""
    tag = "sync-base" if base else "sync"
    crm_db = f"{work}/crm-{tag}.db"
    cfg = bridge_config(work, tag, sim_url)
    s0 = cpu_of(sim.p.pid)[0]
    load0 = loadavg()
    host = (a.base_host or f"{a.build}/bench/e2e/e2e_host") if base else f"{a.build}/bench/e2e/e2e_host"
    env = {**os.environ, **MALLOC_ENV, **({"LD_LIBRARY_PATH": a.base_lib} if base and a.base_lib else {})}
    out = subprocess.run([host, "sync", "--config", cfg, "--crm-db", crm_db, "--schema",
                          f"{HERE}/crm_schema.sql"] + sum((["--api-key", k] for k in keys), []),
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError("e2e_host sync failed: " + out.stderr[-2000:])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    meetings = sum(j.get("meetings_seen", j.get("meetings", 0)) for j in r["jobs"])
    return {"system": tag, "meetings": a.sync_meetings, "jobs": [{k: j.get(k) for k in ("status", "meetings_seen", "meetings_mapped",
                                                                            "map_failures", "api_calls")
                                                  if k in j} for j in r["jobs"]],
            "reported": meetings, "activities": activities(crm_db), "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
            "per_s": a.sync_meetings / r["wall_s"], "cpu_us": 1e6 * r["cpu_s"] / a.sync_meetings,
            "sim_cpu_s": cpu_of(sim.p.pid)[0] - s0, "load": f"{load0:.1f}-{loadavg():.1f}"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--systems", default="host,serve,node")
    ap.add_argument("--sync-meetings", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--max-rate", type=int, default=20000, help="deliveries generated per second of a run")
    ap.add_argument("--drain-timeout", type=int, default=900)
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--steady", type=int, default=0,
                    help="instead of the comparison: feed e2e_host STEADY deliveries/s (bench/e2e/paced_send) "
                         "and report the backlog every second")
    ap.add_argument("--steady-seconds", type=int, default=60)
    ap.add_argument("--base-lib", help="directory of another libfathom_bridge.so for the system host-base "
                                       "(an A/B of a library change in the same run)")
    ap.add_argument("--base-host", help="another e2e_host binary for the system host-base (with --base-lib: the "
                                        "whole host as it was), also run for the sync backfill (sync-base)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    systems = [s for s in a.systems.split(",") if s]
    for tool in ("wrk", "node", "npm"):
        if not shutil.which(tool):
            sys.exit(f"run.py: {tool} is not installed")
    if "node" in systems and not os.path.isdir(f"{HERE}/node/node_modules/better-sqlite3"):
        log("== npm ci in bench/e2e/node")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=f"{HERE}/node", check=True)
    work = tempfile.mkdtemp(prefix="fb-e2e-bench-")
    sim = None
    results, checks, sync, syncs = [], [], None, []
    try:
        sim = Proc([f"{a.build}/tests/sim/fathom-sim", "--port", "0", "--quiet", "--meetings", str(a.sync_meetings),
                    "--rate-limit", "100000000"], stderr_path=f"{work}/sim.err")
        sim_url = sim.line.rsplit(" ", 1)[1]
        users = {u["email"]: u["api_key"] for u in http_json(sim_url + "/_sim/users")}
        if a.steady:
            log(f"== steady: {a.steady} deliveries/s for {a.steady_seconds} s into host")
            st = run_steady(a, work, sim_url, users["alice@example.com"])
            print(json.dumps({k: v for k, v in st.items() if k != "samples"}))
            if a.json:
                with open(a.json, "w") as f:
                    json.dump(st, f, indent=1)
            return
        for rnd in range(1, a.rounds + 1):
            dbs = {}
            for name in systems:
                log(f"== round {rnd}: {name}")
                r, dbs[name] = run_system(name, a, work, sim_url, users["alice@example.com"], rnd)
                log(json.dumps(r))
                results.append(r)
            if len(dbs) > 1:
                same, n, digests, _ = compare({k: dump(v) for k, v in dbs.items()})
                checks.append({"round": rnd, "same": same, "common_recordings": n, "digests": digests})
                log(json.dumps(checks[-1]))
            for v in dbs.values():
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(v + suffix):
                        os.remove(v + suffix)
            for f in os.listdir(work):  # the bridges' stores and body logs of this round
                if f.endswith(f"-{rnd}.db") or f"-{rnd}.db-" in f:
                    p = os.path.join(work, f)
                    shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        if a.sync_meetings > 0:
            log("== sync backfill")
            keys = [users["alice@example.com"], users["carol@example.com"]]
            syncs = []
            if a.base_host:  # before and after, one after the other on the same fathom-sim
                syncs.append(run_sync(a, work, sim, sim_url, keys, base=True))
                log(json.dumps(syncs[-1]))
            syncs.append(run_sync(a, work, sim, sim_url, keys))
            log(json.dumps(syncs[-1]))
            sync = syncs[-1]
    finally:
        if sim:
            sim.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nbench/e2e: {a.duration} s of wrk per run, {a.conns} connections, 20 KB signed deliveries, "
          f"{os.cpu_count()} cores\n")
    print("| system | round | deliveries/s | CPU µs/delivery (ingest) | events mapped/s (until last) | "
          "CPU µs/mapped event (all processes) | of which mapping | p50 | p99 | load | accepted | drain after wrk |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['system']} | {r['round']} | {r['deliv_per_s']:,.0f} | {r['ingest_us']:,.0f} | "
              f"{r['mapped_per_s']:,.0f} | {r['cpu_us_per_event']:,.0f} | {r['processing_us_per_event']:,.0f} | "
              f"{r['p50']} | {r['p99']} | {r['load']} | {r['accepted']:,} ({r['non2xx']} non-2xx), mapped "
              f"{r['mapped']:,} | {r['drain_s']:.1f} s |")
    for c in checks:
        print(f"\nround {c['round']}: CRM rows {'IDENTICAL' if c['same'] else 'DIFFERENT'} across systems "
              f"({c['common_recordings']:,} recordings mapped by all, plus companies and contacts): {c['digests']}")
    for sync in syncs:
        print(f"\n{sync['system']} backfill: {sync['meetings']:,} meetings from fathom-sim through scripts/mapping.lua into "
              f"e2e_host: {sync['wall_s']:.2f} s = {sync['per_s']:,.0f} meetings/s, {sync['cpu_us']:,.0f} µs CPU "
              f"per meeting (host process; fathom-sim used {sync['sim_cpu_s']:.2f} s), "
              f"{sync['activities']:,} activities, load {sync['load']}; jobs {sync['jobs']}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"runs": results, "checks": checks, "sync": syncs}, f, indent=1)
    ok = all(c["same"] for c in checks) and all(r["mapped"] >= r["accepted"] for r in results)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

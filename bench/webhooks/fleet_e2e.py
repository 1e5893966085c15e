#!/usr/bin/env python3
"""bench/webhooks/fleet_e2e.py: webhook to CRM rows with the real mapping on PostgreSQL, with 1 and
3 hosts, against one host on SQLite in the same run (issue 12; see bench/README.md).

    bench/webhooks/fleet_e2e.py BUILD_DIR [--duration 10] [--cases sqlite,pg1,pg3] [--conns 32]
                                [--json FILE]

A case is HOSTS `e2e_host webhooks` processes (bench/e2e: fathom-bridge through the C ABI only,
scripts/mapping.lua and the reactions, the CRM tables in a SQLite file of each host's own, a
batch's CRM writes in one CRM transaction) on one store: a SQLite file (sqlite: one host) or one
throwaway PostgreSQL (pgN: tests/support/pg_server.sh, on the same cores, with pg_stat_statements
and autovacuum every second so that the tables' statistics follow their growth as a long-running
server's do). Every host connects the same fathom-sim user (one integration in the store) and
adds a route; each host gets its own wrk (1 thread, CONNS / HOSTS connections) with signed 20 KB
deliveries of distinct webhook-ids, all at once, for DURATION s. Any host's workers map any host's
events (SKIP LOCKED claims), into that host's CRM tables.

Figures: deliveries/s (wrk); CPU per accepted delivery while wrk sends, by hosts, PostgreSQL
and wrk (from /proc); events mapped per second from wrk's start to the last activity in the CRM
tables; CPU per mapped event (hosts, PostgreSQL) until then; PostgreSQL statements per mapped event
(pg_stat_statements: each is a round trip); load. Check: the activities of all hosts are exactly
the deliveries the store accepted, no recording twice (exactly once across the fleet).
"""
import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bench", "e2e"))
from run import (MALLOC_ENV, SECRET, TICK, Proc, activities, bridge_config, cpu_of, http_json,  # noqa: E402
                 loadavg, wait_drained)

PG_SERVER = os.path.join(ROOT, "tests", "support", "pg_server.sh")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def proc_ticks(pid, children=False):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    t = int(fields[11]) + int(fields[12])
    return (t + int(fields[13]) + int(fields[14]) if children else t) / TICK


def postgres_cpu(postmaster):
    """CPU seconds of the server: the postmaster, its live backends, and its reaped ones."""
    if postmaster is None:
        return {}
    out = {postmaster: proc_ticks(postmaster, children=True)}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                    out[int(d)] = proc_ticks(int(d))
        except (OSError, ValueError, IndexError):
            pass
    return out


def spent(before, after):
    return sum(v - before.get(k, 0.0) for k, v in after.items())


def crm_recordings(db):
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [r[0] for r in c.execute("SELECT recording_id FROM activities")]
        finally:
            c.close()
    except sqlite3.Error:
        return []


def mapped(dbs):
    return sum(activities(db) for db in dbs)


def wrk_one(port, path, deliveries, seconds, conns):
    return subprocess.Popen(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
                             f"{ROOT}/bench/webhooks/deliver.lua", f"http://127.0.0.1:{port}", "--", path,
                             deliveries, "1"], stdout=subprocess.PIPE, text=True)


def wrk_result(out):
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.M))
    bad = int(non2xx.group(1)) if non2xx else 0
    return reqs - bad, bad, lat


class Postgres:
    def __init__(self, work):
        self.dir = tempfile.mkdtemp(prefix="fb-pgb-", dir="/tmp")  # the server's user must reach its socket
        subprocess.run([PG_SERVER, "start", self.dir], check=True, capture_output=True)
        with open(f"{self.dir}/url") as f:
            self.url = f.read().strip()
        conf = f"{self.dir}/data/postgresql.conf"
        with open(conf, "a") as f:
            f.write("shared_preload_libraries = 'pg_stat_statements'\nautovacuum_naptime = 1\n")
        bindir = max(os.listdir("/usr/lib/postgresql"), key=lambda v: [int(x) for x in v.split(".")])
        ctl = [f"/usr/lib/postgresql/{bindir}/bin/pg_ctl", "-D", f"{self.dir}/data", "restart", "-w", "-l",
               f"{self.dir}/server.log"]
        if os.getuid() == 0:
            ctl = ["runuser", "-u", "postgres", "--"] + ctl
        subprocess.run(ctl, check=True, capture_output=True)
        self.sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def sql(self, q):
        return subprocess.run(["psql", "-qAt", self.url, "-c", q], check=True, capture_output=True,
                              text=True).stdout.strip()

    def postmaster(self):
        with open(f"{self.dir}/data/postmaster.pid") as f:
            return int(f.readline())

    def stop(self):
        subprocess.run([PG_SERVER, "stop", self.dir], capture_output=True)


def run_case(name, a, work, sim_url, key):
    hosts = 1 if name == "sqlite" else int(name[2:])
    pg = Postgres(work) if name != "sqlite" else None
    procs, crm_dbs, wrks, targets = [], [], [], []
    try:
        for h in range(1, hosts + 1):
            tag = f"{name}-h{h}"
            extra = {"store": {"url": pg.url}} if pg else None
            cfg = bridge_config(work, tag, sim_url, extra)
            crm_dbs.append(f"{work}/crm-{tag}.db")
            p = Proc([f"{a.build}/bench/e2e/e2e_host", "webhooks", "--config", cfg, "--crm-db", crm_dbs[-1],
                      "--schema", f"{ROOT}/bench/e2e/crm_schema.sql", "--api-key", key, "--secret", SECRET],
                     env=MALLOC_ENV, stderr_path=f"{work}/{tag}.err")
            procs.append(p)
        now = int(time.time())
        for h, p in enumerate(procs, 1):
            _, port, path = p.line.split()
            d = f"{work}/deliveries-{name}-{h}"
            subprocess.run([f"{a.build}/bench/webhooks/fb_webhook_bench_gen", "--secret", SECRET, "--count",
                            str(a.max_rate * a.duration // hosts), "--size", "20000", "--bodies", "64", "--ts",
                            str(now + h), "--first-recording", str(100000000 * h), "--out", d], check=True, capture_output=True)
            targets.append((port, path, d))
        if pg:
            pg.sql("SELECT pg_stat_statements_reset()")
        pm = pg.postmaster() if pg else None
        pids = [p.p.pid for p in procs]
        load0 = loadavg()
        h0, g0 = {pid: cpu_of(pid)[0] for pid in pids}, postgres_cpu(pm)
        wrks = [wrk_one(port, path, d, a.duration, max(1, a.conns // hosts)) for port, path, d in targets]
        # wrk loads its requests first; its window starts when it sends (about --duration before it ends).
        outs = [w.communicate()[0] for w in wrks]
        t_wrk = time.monotonic()
        t_send = t_wrk - a.duration
        h1, g1 = {pid: cpu_of(pid)[0] for pid in pids}, postgres_cpu(pm)
        load1 = loadavg()
        results = [wrk_result(o) for o in outs]
        accepted = sum(r[0] for r in results)
        non2xx = sum(r[1] for r in results)
        n, t_last = wait_drained(lambda: mapped(crm_dbs), accepted, t_wrk, a.drain_timeout)
        h2, g2 = {pid: cpu_of(pid)[0] for pid in pids}, postgres_cpu(pm)
        load2 = loadavg()
        statements, top = None, []
        if pg:
            statements = int(pg.sql("SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements") or 0)
            rows = pg.sql("SELECT calls, ROUND(total_exec_time::numeric, 1), LEFT(regexp_replace(query, '\\s+', ' ', 'g'), 90)"
                          " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 30")
            top = [r.split("|", 2) for r in rows.splitlines()]
        recordings = [r for db in crm_dbs for r in crm_recordings(db)]
        # What the store accepted (wrk does not count the answers in flight when it stops).
        if pg:
            stored = int(pg.sql("SELECT COUNT(*) FROM webhook_inbox"))
        else:
            c = sqlite3.connect(f"file:{work}/{name}-h1.db?mode=ro", uri=True)
            stored = c.execute("SELECT COUNT(*) FROM webhook_inbox").fetchone()[0]
            c.close()
    finally:
        for w in wrks:
            if w.poll() is None:
                w.kill()
        for p in procs:
            p.stop()
        if pg:
            pg.stop()
        for _, _, d in targets:
            shutil.rmtree(d, ignore_errors=True)
    return {
        "case": name, "hosts": hosts, "accepted": accepted, "non2xx": non2xx, "mapped": n,
        "deliv_per_s": accepted / a.duration,
        "ingest_us_hosts": 1e6 * spent(h0, h1) / max(accepted, 1),
        "ingest_us_postgres": 1e6 * spent(g0, g1) / max(accepted, 1),
        "mapped_per_s": n / max(t_last - t_send, 1e-3),
        "event_us_hosts": 1e6 * spent(h0, h2) / max(n, 1),
        "event_us_postgres": 1e6 * spent(g0, g2) / max(n, 1),
        "statements_per_event": statements / max(n, 1) if statements is not None else None,
        "p50_p99": " ".join(f"{r[2].get('50', '-')}/{r[2].get('99', '-')}" for r in results),
        "load": f"{load0:.1f}-{load1:.1f}-{load2:.1f}", "drain_s": t_last - t_wrk,
        "stored": stored, "exactly_once": n == stored and len(recordings) == len(set(recordings)),
        "distinct_recordings": len(set(recordings)), "top_statements": top,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("build")
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--cases", default="sqlite,pg1,pg3")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--max-rate", type=int, default=15000, help="deliveries generated per second of a run")
    ap.add_argument("--drain-timeout", type=int, default=600)
    ap.add_argument("--json", help="also write every figure to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (hosts' logs, CRM tables)")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    for tool in ("wrk", "psql"):
        if not shutil.which(tool):
            sys.exit(f"fleet_e2e.py: {tool} is not installed")
    work = tempfile.mkdtemp(prefix="fb-fleet-e2e-")
    sim, results = None, []
    try:
        sim = Proc([f"{a.build}/tests/sim/fathom-sim", "--port", "0", "--quiet", "--meetings", "0",
                    "--rate-limit", "100000000"], stderr_path=f"{work}/sim.err")
        sim_url = sim.line.rsplit(" ", 1)[1]
        key = {u["email"]: u["api_key"] for u in http_json(sim_url + "/_sim/users")}["alice@example.com"]
        for name in [c for c in a.cases.split(",") if c]:
            log(f"== {name}")
            r = run_case(name, a, work, sim_url, key)
            log(json.dumps(r))
            results.append(r)
    finally:
        if sim:
            sim.stop()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nbench/webhooks/fleet_e2e.py: {a.duration} s of wrk per case, {a.conns} connections in all, "
          f"20 KB signed deliveries, {os.cpu_count()} cores\n")
    print("| case | deliveries/s | CPU µs/delivery while sending: hosts + PostgreSQL | events mapped/s (until last) | "
          "CPU µs/mapped event: hosts + PostgreSQL | statements/event | p50/p99 per host | load (start-wrk end-drained) | "
          "exactly once |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        st = "-" if r["statements_per_event"] is None else f"{r['statements_per_event']:.1f}"
        print(f"| {r['case']} | {r['deliv_per_s']:,.0f} | {r['ingest_us_hosts']:,.0f} + {r['ingest_us_postgres']:,.0f} | "
              f"{r['mapped_per_s']:,.0f} | {r['event_us_hosts']:,.0f} + {r['event_us_postgres']:,.0f} | {st} | "
              f"{r['p50_p99']} | {r['load']} | {'yes' if r['exactly_once'] else 'NO'}: stored {r['stored']:,} "
              f"({r['non2xx']} non-2xx), mapped {r['mapped']:,}, drained {r['drain_s']:.1f} s after wrk |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    sys.exit(0 if all(r["exactly_once"] for r in results) else 1)


if __name__ == "__main__":
    main()

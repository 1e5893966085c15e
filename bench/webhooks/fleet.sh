#!/usr/bin/env bash
# Webhook ingest on PostgreSQL with 1 or 3 hosts (issue 12): HOSTS fb_webhook_bench_server processes
# (HttpServer -> Receiver -> Inbox, bodies in the rows) on ONE throwaway PostgreSQL (tests/support/
# pg_server.sh, Unix socket, fsync off), each fed by a wrk of its own with its share of the
# connections, all at once. With WORKERS > 0 each host also runs that many inbox workers (SKIP LOCKED
# claims, the bench server's counting pipeline: MeetingStore upsert and mapped versions, no Lua), and
# the row gives the events processed per second until the last one. Prints one Markdown row: hosts,
# workers per host, deliveries/s, CPU per delivery (hosts + PostgreSQL), p50/p99 per host,
# processed/s, check.
#
#   bench/webhooks/fleet.sh [BUILD_DIR] [DURATION_S] [HOSTS] [WORKERS]
#
# Needs wrk and curl; the PostgreSQL server shares the machine's cores with the hosts and wrk.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../../build}
DUR=${2:-10}
HOSTS=${3:-1}
WORKERS=${4:-0}
BIN=$BUILD/bench/webhooks
SECRET=whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY
CONNS=${CONNS:-32}
SIZE=${SIZE:-20000}
for tool in wrk curl; do command -v $tool >/dev/null || { echo "fleet.sh: $tool is not installed" >&2; exit 2; }; done
[ -x "$BIN/fb_webhook_bench_server" ] || { echo "fleet.sh: build fb_webhook_bench_server first ($BIN)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fb-fleet-bench-XXXXXX")
PG=$(mktemp -d /tmp/fb-pgb-XXXXXX)  # directly in /tmp: the server's user must reach its socket
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  "$HERE/../../tests/support/pg_server.sh" stop "$PG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
field() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -1 | cut -d: -f2; }

"$HERE/../../tests/support/pg_server.sh" start "$PG"
URL=$(cat "$PG/url")
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
sql() { "$PSQL" -qAt "$URL" -c "$1"; }
# Autovacuum every second: the tables' statistics follow their growth, as a long-running server's
# do (with the default minute, a run's plans stay those made for empty tables, e.g. a meeting
# looked up through the index of all its integration's meetings).
sql "ALTER SYSTEM SET autovacuum_naptime = 1" >/dev/null
sql "SELECT pg_reload_conf()" >/dev/null
# CPU seconds of the server: the postmaster with its reaped children, and its live backends.
pg_cpu() {
  local pm; pm=$(head -1 "$PG/data/postmaster.pid")
  awk -v pm="$pm" -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); split($0, f, " ");
      if (FILENAME ~ "/" pm "/stat$") t += f[12] + f[13] + f[14] + f[15]; else if (f[2] == pm) t += f[12] + f[13] }
      END { printf "%.3f", t / hz }' /proc/[0-9]*/stat 2>/dev/null
}
now=$(date +%s)
declare -a PORT PATHS
for h in $(seq "$HOSTS"); do
  # Distinct webhook-ids per host (the run tag comes from --ts), so nothing is a duplicate.
  "$BIN/fb_webhook_bench_gen" --secret $SECRET --count $((40000 * DUR / HOSTS)) --size "$SIZE" --bodies 64 \
    --ts $((now + h)) --first-recording $((100000000 * h)) --out "$WORK/h$h" >/dev/null
  "$BIN/fb_webhook_bench_server" --db "$URL" --inline-bodies --secret $SECRET --workers "$WORKERS" \
    >"$WORK/h$h.out" 2>"$WORK/h$h.err" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/h$h.out" ] && break; sleep 0.1; done
  read -r _ PORT[$h] PATHS[$h] <"$WORK/h$h.out"
done
for h in $(seq "$HOSTS"); do curl -s -d '' "http://127.0.0.1:${PORT[$h]}/_bench/mark" >/dev/null; done
load0=$(cut -d' ' -f1 /proc/loadavg)
pg0=$(pg_cpu)
WRKS=()
for h in $(seq "$HOSTS"); do
  wrk -t1 -c$((CONNS / HOSTS)) -d"${DUR}s" --latency -s "$HERE/deliver.lua" \
    "http://127.0.0.1:${PORT[$h]}" -- "${PATHS[$h]}" "$WORK/h$h" 1 >"$WORK/h$h.wrk" &
  WRKS+=($!)
done
wait "${WRKS[@]}"
pg1=$(pg_cpu)
e2e=-
if [ "$WORKERS" -gt 0 ]; then
  # Any host processes any host's events: the fleet's rate is from the first receipt to the last
  # event done, read from the shared inbox.
  for _ in $(seq 1200); do
    [ "$(sql "SELECT COUNT(*) FROM webhook_inbox WHERE status IN ('pending','processing')")" = 0 ] && break
    sleep 0.1
  done
  e2e=$(sql "SELECT ROUND(COUNT(*) * 1000.0 / GREATEST(MAX(processed_at) - MIN(received_at), 1)) FROM webhook_inbox WHERE status='done'")
fi
rps=0; accepted=0; non2xx=0; lat=""; host_us=0
for h in $(seq "$HOSTS"); do
  out=$(cat "$WORK/h$h.wrk")
  rps=$(awk -v a="$rps" '/Requests\/sec/ {printf "%.0f", a + $2}' <<<"$out")
  lat="$lat $(awk '$1=="50%" {print $2}' <<<"$out")/$(awk '$1=="99%" {print $2}' <<<"$out")"
  n=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=$((non2xx + ${n:-0}))
  report=$(curl -s "http://127.0.0.1:${PORT[$h]}/_bench/report")
  accepted=$((accepted + $(field accepted "$report")))
  host_us=$(awk -v a="$host_us" -v u="$(field cpu_user_s "$report")" -v s="$(field cpu_sys_s "$report")" 'BEGIN { print a + (u + s) * 1e6 }')
done
load1=$(cut -d' ' -f1 /proc/loadavg)
# CPU per accepted delivery while wrk sent: the hosts' processes (from their reports, workers
# included when WORKERS > 0) and the PostgreSQL server's.
cpu=$(awk -v h="$host_us" -v p0="$pg0" -v p1="$pg1" -v n="$accepted" 'BEGIN { printf "%.0f + %.0f", h / n, (p1 - p0) * 1e6 / n }')
printf "| %d host(s) | %d | %7s | %s µs | %s | %s | accepted %d, non-2xx %d, load %s -> %s |\n" "$HOSTS" "$WORKERS" "$rps" \
  "$cpu" "${lat# }" "$e2e" "$accepted" "$non2xx" "$load0" "$load1"

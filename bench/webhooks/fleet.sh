#!/usr/bin/env bash
# Webhook ingest on PostgreSQL with 1 or 3 hosts (issue 12): HOSTS fb_webhook_bench_server processes
# (HttpServer -> Receiver -> Inbox, bodies in the rows) on ONE throwaway PostgreSQL (tests/support/
# pg_server.sh, Unix socket, fsync off), each fed by a wrk of its own with its share of the
# connections, all at once. With WORKERS > 0 each host also runs that many inbox workers (SKIP LOCKED
# claims, the bench server's counting pipeline: MeetingStore upsert and mapped versions, no Lua), and
# the row gives the events processed per second until the last one. Prints one Markdown row.
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
now=$(date +%s)
declare -a PORT PATHS
for h in $(seq "$HOSTS"); do
  # Distinct webhook-ids per host (the run tag comes from --ts), so nothing is a duplicate.
  "$BIN/fb_webhook_bench_gen" --secret $SECRET --count $((40000 * DUR / HOSTS)) --size "$SIZE" --bodies 64 \
    --ts $((now + h)) --out "$WORK/h$h" >/dev/null
  "$BIN/fb_webhook_bench_server" --db "$URL" --inline-bodies --secret $SECRET --workers "$WORKERS" \
    >"$WORK/h$h.out" 2>"$WORK/h$h.err" &
  PIDS+=($!)
  for _ in $(seq 100); do [ -s "$WORK/h$h.out" ] && break; sleep 0.1; done
  read -r _ PORT[$h] PATHS[$h] <"$WORK/h$h.out"
done
for h in $(seq "$HOSTS"); do curl -s -d '' "http://127.0.0.1:${PORT[$h]}/_bench/mark" >/dev/null; done
load0=$(cut -d' ' -f1 /proc/loadavg)
WRKS=()
for h in $(seq "$HOSTS"); do
  wrk -t1 -c$((CONNS / HOSTS)) -d"${DUR}s" --latency -s "$HERE/deliver.lua" \
    "http://127.0.0.1:${PORT[$h]}" -- "${PATHS[$h]}" "$WORK/h$h" 1 >"$WORK/h$h.wrk" &
  WRKS+=($!)
done
wait "${WRKS[@]}"
PSQL=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)/psql
sql() { "$PSQL" -qAt "$URL" -c "$1"; }
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
rps=0; accepted=0; non2xx=0; lat=""
for h in $(seq "$HOSTS"); do
  out=$(cat "$WORK/h$h.wrk")
  rps=$(awk -v a="$rps" '/Requests\/sec/ {printf "%.0f", a + $2}' <<<"$out")
  lat="$lat $(awk '$1=="50%" {print $2}' <<<"$out")/$(awk '$1=="99%" {print $2}' <<<"$out")"
  n=$(awk '/Non-2xx/ {print $5}' <<<"$out"); non2xx=$((non2xx + ${n:-0}))
  report=$(curl -s "http://127.0.0.1:${PORT[$h]}/_bench/report")
  accepted=$((accepted + $(field accepted "$report")))
done
load1=$(cut -d' ' -f1 /proc/loadavg)
printf "| %d host(s) | %d | %7s | %s | %s | accepted %d, non-2xx %d, load %s -> %s |\n" "$HOSTS" "$WORKERS" "$rps" \
  "${lat# }" "$e2e" "$accepted" "$non2xx" "$load0" "$load1"

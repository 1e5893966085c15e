#!/usr/bin/env bash
# Webhook ingest benchmark: wrk posts distinct signed deliveries over loopback to the built-in HTTP
# server (fb_webhook_bench_server: HttpServer -> Receiver -> Inbox group commit on a real SQLite
# file). Prints one Markdown row per case; see bench/README.md, "Webhooks".
#
#   bench/webhooks/run.sh [BUILD_DIR] [DURATION_S] [CASE...]
#   CLAIM_BATCH=N sets the workers' batch size in e2e-20k (default 32, as the workers).
#   cases: ingest-20k ingest-20k-full ingest-1m ingest-1m-full ingest-1k e2e-20k   (default: all)
#
# Needs wrk and curl. Uses a temporary directory under $TMPDIR (removed afterwards; ~4 GB of disk
# for the 20 KB cases).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-$HERE/../../build}
DUR=${2:-10}
shift $(( $# > 2 ? 2 : $# ))
CASES=${*:-"ingest-20k ingest-20k-full ingest-1m ingest-1m-full ingest-1k e2e-20k"}
BIN=$BUILD/bench/webhooks
SECRET=whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcY
CONNS=${CONNS:-32}
WRK_THREADS=${WRK_THREADS:-2}
for tool in wrk curl; do command -v $tool >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }; done
[ -x "$BIN/fb_webhook_bench_server" ] || { echo "run.sh: build fb_webhook_bench_server first ($BIN)" >&2; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fb-webhook-bench-XXXXXX")
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

field() { grep -o "\"$1\":[^,}]*" <<<"$2" | head -1 | cut -d: -f2; }

# run_case NAME BODY_BYTES COUNT BODIES [server flags...]
run_case() {
  local name=$1 size=$2 count=$3 bodies=$4
  shift 4
  local dir=$WORK/$name
  "$BIN/fb_webhook_bench_gen" --secret $SECRET --count "$count" --size "$size" --bodies "$bodies" --out "$dir" >/dev/null
  "$BIN/fb_webhook_bench_server" --db "$WORK/$name.db" --secret $SECRET "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  SERVER_PID=$!
  for _ in $(seq 100); do [ -s "$WORK/$name.out" ] && break; sleep 0.1; done
  local port path
  read -r _ port path <"$WORK/$name.out"
  curl -s -d '' "http://127.0.0.1:$port/_bench/mark" >/dev/null
  local out
  out=$(wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --latency -s "$HERE/deliver.lua" \
        "http://127.0.0.1:$port" -- "$path" "$dir" "$WRK_THREADS")
  local report
  report=$(curl -s "http://127.0.0.1:$port/_bench/report")
  local e2e="-"
  if [[ " $* " == *" --workers "* ]]; then
    for _ in $(seq 600); do
      report=$(curl -s "http://127.0.0.1:$port/_bench/report")
      [ "$(field drained "$report")" = "true" ] && break
      sleep 0.1
    done
    e2e=$(printf "%.0f" "$(field processed_per_s_until_last "$report")")
  fi
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf "| %-15s | %7s | %8s | %6.1f | %8s | %8s | %8s | %s |\n" "$name" "$(stat -c %s "$dir/body_0.json")" \
    "$rps" "$(field cpu_us_per_delivery "$report")" "$p50" "$p99" "$e2e" \
    "accepted $(field accepted "$report"), dup $(field duplicates "$report"), non-2xx ${non2xx:-0}"
  rm -rf "$dir" "$WORK/$name".db*
}

echo "| case            | body B  | deliv/s  | CPU µs | p50      | p99      | e2e ev/s | check |"
echo "|-----------------|---------|----------|--------|----------|----------|----------|-------|"
for c in $CASES; do
  case $c in
    ingest-20k)      run_case "$c" 20000   $((50000 * DUR)) 64 ;;
    ingest-20k-full) run_case "$c" 20000   $((50000 * DUR)) 64 --full-sync ;;
    ingest-1m)       run_case "$c" 1000000 $((1500 * DUR))  8 ;;
    ingest-1m-full)  run_case "$c" 1000000 $((1500 * DUR))  8 --full-sync ;;
    ingest-1k)       run_case "$c" 1000    $((150000 * DUR)) 64 ;;
    e2e-20k)         run_case "$c" 20000   $((50000 * DUR)) 64 --workers 2 --claim-batch "${CLAIM_BATCH:-32}" ;;
    *) echo "run.sh: unknown case $c" >&2; exit 2 ;;
  esac
done

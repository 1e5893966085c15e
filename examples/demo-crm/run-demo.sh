#!/usr/bin/env bash
# Runs the demo: fathom-sim with generated meetings, then the demo CRM's scripted story against it.
#   run-demo.sh BUILD_DIR [--serve]   (--serve keeps the CRM running for a browser afterwards)
set -euo pipefail
BUILD=${1:?build dir}
shift || true
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PORT=${FB_DEMO_PORT:-8787}
DATA=$(mktemp -d /tmp/fathom-bridge-demo-XXXXXX)
SIM_LOG=$DATA/fathom-sim.log

"$BUILD/tests/sim/fathom-sim" --port 0 --seed 7 --meetings 36 --quiet \
  --redirect-uri "http://127.0.0.1:$PORT/oauth/callback" >"$SIM_LOG" 2>&1 &
SIM_PID=$!
trap 'kill $SIM_PID 2>/dev/null || true; wait $SIM_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  SIM_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$SIM_LOG" | head -1 || true)
  [ -n "$SIM_URL" ] && break
  sleep 0.05
done
[ -n "${SIM_URL:-}" ] || { echo "fathom-sim did not start:"; cat "$SIM_LOG"; exit 1; }
echo "fathom-sim (the Fathom simulator) at $SIM_URL; demo data in $DATA"

ARGS=(--sim "$SIM_URL" --data "$DATA" --port "$PORT" --scripts "$ROOT/scripts" --scenario)
[ "${1:-}" = "--serve" ] && ARGS+=(--serve)
"$BUILD/examples/demo-crm/demo-crm" "${ARGS[@]}"

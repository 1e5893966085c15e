#!/usr/bin/env bash
# The README's demo command runs examples/demo-crm/run-demo.sh: the demo CRM's scripted story
# against fathom-sim. This runs that same script and checks what each step shows, so a change that
# breaks the story fails a suite (a signed-in-user check once refused Bob's redirect flow there).
#   demo_scenario_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=${1:?build dir}
SRC=${2:?source dir}
OUT=$(mktemp)
cleanup() {
  # The demo keeps its data directory for a person to look at; a test run does not.
  local data
  data=$(grep -o 'demo data in /tmp/fathom-bridge-demo-[A-Za-z0-9]*' "$OUT" 2>/dev/null | head -1 | cut -d' ' -f4 || true)
  [ -n "$data" ] && rm -rf "$data"
  rm -f "$OUT"
}
trap cleanup EXIT
# A port nobody holds now (fathom-sim needs the CRM's redirect URI before the CRM starts); another
# suite's connection may take it meanwhile, so a busy port is tried again with a new one.
rc=0
for attempt in 1 2 3; do
  FB_DEMO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  export FB_DEMO_PORT
  rc=0
  "$SRC/examples/demo-crm/run-demo.sh" "$BUILD" >"$OUT" 2>&1 || rc=$?
  grep -q "is busy (set FB_DEMO_PORT)" "$OUT" || break
  cleanup; OUT=$(mktemp)
done
cat "$OUT"
failed=0
expect() {  # a line of the story: an extended regular expression
  if ! grep -qE -- "$1" "$OUT"; then
    echo "MISSING from the demo's output: $1" >&2
    failed=1
  fi
}
[ "$rc" -eq 0 ] || { echo "run-demo.sh exited with $rc" >&2; failed=1; }
expect "posts to window.opener: yes$"
expect "'connected' events: 1$"
expect "bob's browser is sent to: http://127\.0\.0\.1:$FB_DEMO_PORT/integrations\?fathom=connected$"
expect "carol's browser is sent to: http://127\.0\.0\.1:$FB_DEMO_PORT/integrations\?fathom=error&reason=access_denied$"
expect "mapped to a new CRM activity$"
expect "API calls spent: 1;"
expect "refresh requests made: 1$"
expect "bob's sync: failed \(integration [0-9]+ needs the user to connect Fathom again"
expect "'reconnect_required' events: 1$"
expect "u-bob +integration [0-9]+ +reconnect_required "
expect "u-alice +integration [0-9]+ +valid "
expect "CRM tasks asking a user to reconnect Fathom: 1$"
if grep -q '"meetings_mapped":0' "$OUT"; then echo "the backfill mapped nothing" >&2; failed=1; fi
exit $failed

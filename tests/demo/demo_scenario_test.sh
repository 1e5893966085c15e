#!/usr/bin/env bash
# The README's demo command runs examples/demo-crm/run-demo.sh: the demo CRM's scripted story
# against fathom-sim. This runs that same script and checks what each step shows, so a change that
# breaks the story fails a suite (a signed-in-user check once refused Bob's redirect flow there).
#   demo_scenario_test.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD=${1:?build dir}
SRC=${2:?source dir}
# A port nobody holds now (the simulator needs the CRM's redirect URI before the CRM starts).
FB_DEMO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export FB_DEMO_PORT
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
rc=0
"$SRC/examples/demo-crm/run-demo.sh" "$BUILD" >"$OUT" 2>&1 || rc=$?
cat "$OUT"
failed=0
expect() {  # what: a fixed string the story must print
  if ! grep -qF -- "$1" "$OUT"; then
    echo "MISSING from the demo's output: $1" >&2
    failed=1
  fi
}
[ "$rc" -eq 0 ] || { echo "run-demo.sh exited with $rc" >&2; failed=1; }
expect "posts to window.opener: yes"
expect "'connected' events: 1"
expect "bob's browser is sent to: http://127.0.0.1:$FB_DEMO_PORT/integrations?fathom=connected"
expect "carol's browser is sent to: http://127.0.0.1:$FB_DEMO_PORT/integrations?fathom=error&reason=access_denied"
expect "mapped to a new CRM activity"
expect "API calls spent: 1;"
expect "refresh requests made: 1"
expect "bob's sync: failed (integration"
expect "'reconnect_required' events: 1"
expect "reconnect_required   expires"
expect "CRM tasks asking a user to reconnect Fathom: 1"
if grep -q '"meetings_mapped":0' "$OUT"; then echo "the backfill mapped nothing" >&2; failed=1; fi
exit $failed

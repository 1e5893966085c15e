#!/usr/bin/env bash
# Runs the benchmarks against a build (see bench/README.md for the figures and what each measures).
#   bench/run-bench.sh BUILD_DIR [sync|oauth|mapping|webhooks|e2e ...]   (default: all but e2e, ~10 min alone)
set -euo pipefail
BUILD=${1:?build dir}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
WHICH=${*:-"sync oauth mapping webhooks"}
for b in $WHICH; do
  echo "== $b"
  case "$b" in
    sync) "$BUILD/bench/sync/fb_bench_sync" ;;
    oauth) "$BUILD/bench/oauth/fb_bench_oauth" ;;
    mapping) "$BUILD/bench/mapping/fb_mapping_bench" ;;
    webhooks) "$HERE/webhooks/run.sh" "$BUILD" 10 ;;
    e2e) "$HERE/e2e/run.py" "$BUILD" ;;
    *) echo "unknown benchmark '$b'" >&2; exit 2 ;;
  esac
done

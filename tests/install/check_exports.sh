#!/bin/sh
# Exported-symbol policy: every shared object we ship exports the C ABI (fb_*) and nothing else,
# and every function the header declares (FB_API ... fb_name(...)) is really exported.
#   check_exports.sh HEADER LIB [LIB...]
set -eu
header=$1
shift
status=0
declared=$(grep -o 'FB_API[^(]*[ *]fb_[a-z0-9_]*(' "$header" | sed 's/.*\(fb_[a-z0-9_]*\)(/\1/' | sort -u)
[ -n "$declared" ] || { echo "FAIL: no FB_API function found in $header"; exit 1; }
for lib in "$@"; do
  exported=$(nm -D --defined-only "$lib" | awk 'NF >= 3 {print $3}' | sed 's/@.*//' | sort -u)
  foreign=$(printf '%s\n' "$exported" | grep -v '^fb_' | grep -v '^$' || true)
  if [ -n "$foreign" ]; then
    n=$(printf '%s\n' "$foreign" | wc -l)
    echo "FAIL: $lib exports $n symbols that are not fb_*; the first ones:"
    printf '%s\n' "$foreign" | head -n 15 | sed 's/^/    /'
    status=1
  fi
  for f in $declared; do
    printf '%s\n' "$exported" | grep -qx "$f" || { echo "FAIL: $lib does not export $f (declared in $(basename "$header"))"; status=1; }
  done
  count=$(printf '%s\n' "$exported" | grep -c '^fb_' || true)
  [ $status -ne 0 ] || echo "ok: $lib exports $count symbols, all fb_*"
done
exit $status

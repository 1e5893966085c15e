#!/usr/bin/env bash
# A compiler launcher that records each compile's CPU seconds (user+sys) and output file, to see which
# translation units a cold build spends its time on (bench/README.md, "Hardening"):
#   cmake -B b -DCMAKE_CXX_COMPILER_LAUNCHER=$PWD/bench/time-compile.sh ... 
#   FB_COMPILE_TIMES=/tmp/times.txt cmake --build b -j2; sort -rn /tmp/times.txt | head
# Without FB_COMPILE_TIMES it just runs the compiler.
set -u
[ -z "${FB_COMPILE_TIMES-}" ] && exec "$@"
out=unknown
prev=
for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done
tmp=$(mktemp)
/usr/bin/time -f '%U %S' -o "$tmp" "$@"
rc=$?
awk -v o="$out" 'NF == 2 { print $1 + $2, o }' "$tmp" >>"$FB_COMPILE_TIMES"
rm -f "$tmp"
exit $rc

#!/bin/sh
# Checks fathom-bridge.service with `systemd-analyze verify` (syntax, directives, the binary it
# starts). The unit names /usr/local/bin/fathom-bridge; the check runs on a copy that names the
# binary just built, so it works before installation.
#   verify-unit.sh <path to the built fathom-bridge>
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=$1
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (Debian package systemd)"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|/usr/local/bin/fathom-bridge|$bin|" "$here/fathom-bridge.service" > "$dir/fathom-bridge.service"
# The EnvironmentFile is read at start, not by verify; output lists every problem found.
out=$(systemd-analyze verify --man=no "$dir/fathom-bridge.service" 2>&1) || { echo "$out"; exit 1; }
# verify exits 0 on some warnings (unknown directives among them): treat any output as a failure.
if [ -n "$out" ]; then echo "$out"; exit 1; fi
# The hardening itself: systemd's own exposure score (0 best, 10 worst; this unit scores 1.2).
if ! sec=$(systemd-analyze security --offline=yes --threshold=20 "$dir/fathom-bridge.service" 2>&1); then
  echo "$sec" | tail -5
  exit 1
fi
echo "fathom-bridge.service: verified; $(echo "$sec" | grep 'Overall exposure level' | sed 's/.*: //')"

#!/bin/sh
# The Python binding's suite as CTest runs it: `pip install` the package (offline: --no-index)
# into a fresh virtual environment that sees Debian's python3-pytest, then run pytest on the
# installed copy against the built library and fathom-sim.
#   run_tests.sh WORK_DIR SOURCE_DIR LIBRARY FATHOM_SIM [pytest args...]
set -eu
work=$1 src=$2 lib=$3 sim=$4
shift 4
python=/usr/bin/python3
[ -x "$python" ] || python=python3
mkdir -p "$work"
venv=$work/venv
rm -rf "$venv"
"$python" -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install --no-index --disable-pip-version-check --quiet "$src/bindings/python"
cd "$work"
FATHOM_BRIDGE_LIBRARY=$lib FATHOM_SIM_BIN=$sim FB_SOURCE_DIR=$src \
  exec "$venv/bin/python" -m pytest -p no:cacheprovider -q "$src/bindings/python/tests" "$@"

#!/usr/bin/env bash
# pg_server.sh start|stop DIR: a throwaway PostgreSQL for the tests (issue 12).
#
#   start: initdb into DIR/data, start the server listening on a Unix socket in DIR only (no TCP
#          at all), on a random port number (it names the socket file), and write the URL the
#          tests connect with to DIR/url. A server already running in DIR is reused.
#   stop:  stop the server (fast shutdown) and delete DIR.
#   halt:  stop the server (fast shutdown), keeping DIR: a test's "PostgreSQL is down".
#   resume: start a halted server again, on the same port and socket.
#
# CTest runs `start` as the setup of the fixture "postgresql" and `stop` as its cleanup, so every
# suite labelled postgresql in one ctest run shares one server (each test makes its own databases,
# see tests/support/store_target.h). PostgreSQL refuses to run as root: as root, the server runs
# as the user `postgres` (created by Debian's postgresql package), which then owns DIR.
set -euo pipefail
cmd=${1:?start|stop|halt|resume}
dir=${2:?directory}
bin=${FB_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
if [ ! -x "$bin/initdb" ]; then
  echo "pg_server.sh: no PostgreSQL server binaries (install the postgresql package: ./run setup)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    if [ -f "$dir/url" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      exit 0
    fi
    rm -rf "$dir/data" "$dir/url"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U fb --auth=trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # A test server: no fsync (the data is thrown away), enough connections for three bridge
    # processes with their pools plus the suites running beside them.
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
log_min_messages = warning
EOF
    for attempt in 1 2 3 4 5; do
      port=$((20000 + RANDOM % 30000))
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 30 start >/dev/null; then
        echo "postgresql:///postgres?host=$dir&port=$port&user=fb" >"$dir/url"
        exit 0
      fi
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  halt)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
  resume)
    port=$(sed -n 's/.*port=\([0-9]*\).*/\1/p' "$dir/url")
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 30 start >/dev/null
    ;;
  *) echo "usage: pg_server.sh start|stop|halt|resume DIR" >&2; exit 2 ;;
esac

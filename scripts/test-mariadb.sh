#!/usr/bin/env bash
# Run the test suite against MariaDB/MySQL (through mysqlclient) instead of SQLite.
#
#   scripts/test-mariadb.sh [pytest args...]
#
# The server comes from TECHBANK_TEST_MYSQL_URL (default
# mysql://root@127.0.0.1:3306/techbank); pytest-django creates and drops its own
# test database beside the named one, so the user needs CREATE/DROP rights.
# If the server cannot be reached this says so and exits 0, except on CI (CI set
# to anything but empty, false or 0: scripts/is-ci.sh), where a suite that
# silently did not run must fail: exit 1.
# Needs mysqlclient in the venv: scripts/install-mysqlclient.sh installs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${VENV:-$ROOT/.venv}/bin"
URL="${TECHBANK_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/techbank}"
ME="test-mariadb"

unavailable() {
    if "$ROOT/scripts/is-ci.sh"; then
        echo "$ME: ERROR: $1 (CI=${CI}, so this is a failure)" >&2
        exit 1
    fi
    echo "$ME: SKIPPED, MariaDB tests not run: $1" >&2
    exit 0
}

[[ -x "$BIN/python" ]] || unavailable "no virtualenv at ${BIN%/bin} (make install-dev)"

# Can we reach it? Same URL parsing as the settings, 3 s connect timeout.
if ! reason="$(DATABASE_URL="$URL" "$BIN/python" - 2>&1 <<'PY'
import os, sys
try:
    import MySQLdb
except ImportError:
    sys.exit("mysqlclient is not installed in the venv (run scripts/install-mysqlclient.sh)")
import dj_database_url
db = dj_database_url.parse(os.environ["DATABASE_URL"])
if db["ENGINE"] != "django.db.backends.mysql":
    sys.exit(f"TECHBANK_TEST_MYSQL_URL is not a mysql:// URL (engine {db['ENGINE']})")
kwargs = {"user": db.get("USER") or "root", "passwd": db.get("PASSWORD") or "", "connect_timeout": 3}
host = db.get("HOST") or "localhost"
if host.startswith("/"):
    kwargs["unix_socket"] = host
else:
    kwargs["host"] = host
    kwargs["port"] = int(db.get("PORT") or 3306)
try:
    MySQLdb.connect(**kwargs).close()
except MySQLdb.Error as error:
    sys.exit(f"cannot connect to {kwargs.get('host', host)}:{kwargs.get('port', '')} as {kwargs['user']}: {error}")
PY
)"; then
    unavailable "${reason:-MariaDB check failed}"
fi

echo "$ME: running pytest against ${URL%%\?*}" >&2
export DATABASE_URL="$URL"
exec "$BIN/python" -m pytest "$@"

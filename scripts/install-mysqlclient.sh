#!/usr/bin/env bash
# Install mysqlclient (the MySQL/MariaDB driver) into a virtualenv, idempotently.
#
#   scripts/install-mysqlclient.sh [VENV]      (VENV defaults to .venv at the repo root)
#
# Does nothing if MySQLdb already imports in VENV. Otherwise makes sure the client
# headers are there (apt-get install default-libmysqlclient-dev, as root, running
# apt-get update only if the install fails without it), then pip-installs
# requirements-mysql.txt into VENV. Prints one line saying what it did; exits
# non-zero with a message saying why if it could not.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$ROOT/.venv}"
REQUIREMENTS="$ROOT/requirements-mysql.txt"
HEADERS_PACKAGE="default-libmysqlclient-dev"
ME="install-mysqlclient"

fail() { echo "$ME: ERROR: $*" >&2; exit 1; }

PY="$VENV/bin/python"
[[ -x "$PY" ]] || fail "no virtualenv at '$VENV' (expected $PY); create it first (make install-dev)"
[[ -f "$REQUIREMENTS" ]] || fail "missing $REQUIREMENTS"

installed_version() {
    "$PY" - 2>/dev/null <<'PY'
import MySQLdb
print(".".join(str(p) for p in MySQLdb.version_info[:3]))
PY
}

if version="$(installed_version)"; then
    echo "$ME: mysqlclient $version already installed in $VENV; nothing to do"
    exit 0
fi

have_headers() { pkg-config --exists mysqlclient || pkg-config --exists libmariadb; }

log="$(mktemp "${TMPDIR:-/tmp}/$ME.XXXXXX.log")"
trap 'rm -f "$log"' EXIT

headers_note="client headers already present"
command -v pkg-config >/dev/null || fail "pkg-config is not installed; it is needed to build mysqlclient (apt-get install pkg-config)"
if ! have_headers; then
    command -v apt-get >/dev/null \
        || fail "MySQL/MariaDB client headers are missing and apt-get is not available; install them (libmysqlclient-dev or libmariadb-dev) by hand"
    SUDO=""
    if [[ "$(id -u)" -ne 0 ]]; then
        command -v sudo >/dev/null && sudo -n true 2>/dev/null \
            || fail "MySQL/MariaDB client headers are missing; run as root or: sudo apt-get install $HEADERS_PACKAGE"
        SUDO="sudo -n"
    fi
    apt_install() {
        $SUDO env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "$HEADERS_PACKAGE" >>"$log" 2>&1
    }
    if apt_install; then
        headers_note="installed $HEADERS_PACKAGE"
    else
        # The package lists may be missing or stale: refresh them once and retry.
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 \
            || { tail -n 20 "$log" >&2; fail "apt-get update failed while installing $HEADERS_PACKAGE (log above)"; }
        apt_install || { tail -n 20 "$log" >&2; fail "could not apt-get install $HEADERS_PACKAGE (log above)"; }
        headers_note="installed $HEADERS_PACKAGE after apt-get update"
    fi
    have_headers || fail "installed $HEADERS_PACKAGE but pkg-config still finds neither mysqlclient nor libmariadb"
fi

"$PY" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >>"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; fail "pip could not build/install mysqlclient into $VENV (log above)"; }

version="$(installed_version)" \
    || fail "pip installed mysqlclient into $VENV but 'import MySQLdb' still fails there"
echo "$ME: installed mysqlclient $version into $VENV ($headers_note)"

#!/usr/bin/env bash
# Install a Compose implementation that can validate docker-compose.yml, idempotently.
#
#   scripts/install-compose-validator.sh
#
# tests/e2e/test_docker_compose.py runs `docker-compose config -q` (and/or
# `docker compose config -q`) on the compose file. Neither needs a Docker engine
# to do that, so this only installs the client: Debian's `docker-compose` package
# (Compose v1.29, Python), when neither `docker compose` nor `docker-compose` works.
# As root, or with password-less sudo; runs apt-get update only if the install
# fails without it. Prints one line saying what it did; exits non-zero with a
# message saying why if it could not.
set -euo pipefail

PACKAGE="docker-compose"
ME="install-compose-validator"

fail() { echo "$ME: ERROR: $*" >&2; exit 1; }

have_plugin() { command -v docker >/dev/null && docker compose version >/dev/null 2>&1; }
have_v1() { command -v docker-compose >/dev/null && docker-compose version --short >/dev/null 2>&1; }

if have_plugin; then
    echo "$ME: $(docker compose version --short 2>/dev/null || echo '?') (docker compose plugin) already installed; nothing to do"
    exit 0
fi
if have_v1; then
    echo "$ME: docker-compose $(docker-compose version --short) already installed; nothing to do"
    exit 0
fi

command -v apt-get >/dev/null \
    || fail "no Compose found and apt-get is not available; install docker-compose or the docker compose plugin by hand"
SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null && sudo -n true 2>/dev/null \
        || fail "no Compose found; run as root or: sudo apt-get install $PACKAGE"
    SUDO="sudo -n"
fi

log="$(mktemp "${TMPDIR:-/tmp}/$ME.XXXXXX.log")"
trap 'rm -f "$log"' EXIT

apt_install() {
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$PACKAGE" >>"$log" 2>&1
}

note="installed"
if ! apt_install; then
    # The package lists may be missing or stale: refresh them once and retry.
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >>"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; fail "apt-get update failed while installing $PACKAGE (log above)"; }
    apt_install || { tail -n 20 "$log" >&2; fail "could not apt-get install $PACKAGE (log above)"; }
    note="installed (after apt-get update)"
fi

have_v1 || { tail -n 20 "$log" >&2; fail "installed $PACKAGE but 'docker-compose version' still fails"; }
echo "$ME: $note docker-compose $(docker-compose version --short)"

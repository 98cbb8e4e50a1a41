#!/usr/bin/env bash
# Runs the techbank users' Postman collection (../shared/compat by default) with newman
# against a real TechBank server started here on a free port, with a throwaway database.
# Usage: scripts/run-compat.sh [COMPAT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
compat_dir="${1:-${TECHBANK_COMPAT_DIR:-../shared/compat}}"
[ -f "$compat_dir/techbank.postman_collection.json" ] || { echo "run-compat: no collection in $compat_dir" >&2; exit 1; }
[ -x node_modules/.bin/newman ] || { echo "run-compat: newman missing: run 'npm ci' first" >&2; exit 1; }

work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

export DATABASE_URL="sqlite:///$work/compat.sqlite3" TECHBANK_SECRET_KEY="$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(50))')"
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/python manage.py migrate --no-input -v0
token=$(.venv/bin/python manage.py shell -v0 -c '
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token
user = get_user_model().objects.create_user("compat")
user.groups.add(Group.objects.get(name="Account manager"))  # the collection also closes and restores
print(Token.objects.create(user=user).key)')
.venv/bin/python manage.py runserver --noreload "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
  sleep 0.1
done

.venv/bin/python - "$compat_dir/techbank.postman_collection.json" "$token" >"$work/collection.json" <<'PY'
import json, sys
collection = json.load(open(sys.argv[1]))
collection["auth"] = {"type": "apikey", "apikey": [
    {"key": "key", "value": "Authorization"},
    {"key": "value", "value": f"Token {sys.argv[2]}"},
    {"key": "in", "value": "header"}]}
json.dump(collection, sys.stdout)
PY
node_modules/.bin/newman run "$work/collection.json" -e "$compat_dir/local.postman_environment.json" \
  --env-var "baseUrlCmd=http://127.0.0.1:$port" --env-var "baseUrlQry=http://127.0.0.1:$port" --color off

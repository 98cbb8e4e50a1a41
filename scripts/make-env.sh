#!/usr/bin/env bash
# Print .env.example with a fresh random secret in every empty value, for docker compose:
#
#   scripts/make-env.sh > .env
#
# Each is 50 random letters and digits (Python's secrets): safe in the URLs and command lines the
# compose file puts them in, and as long as Django's deploy check wants a secret key.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 - "$ROOT/.env.example" <<'PY'
import re
import secrets
import string
import sys

ALPHABET = string.ascii_letters + string.digits

for line in open(sys.argv[1]).read().splitlines():
    match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=", line)
    print(f"{match[1]}={''.join(secrets.choice(ALPHABET) for _ in range(50))}" if match else line)
PY

"""Production settings: `check --deploy` is clean, DEBUG is off unless asked
for, `make run` stays plain HTTP, and no secret is in the repository."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

from tests.servers.processes import unavailable

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()
PRODUCTION = {
    "TECHBANK_SECRET_KEY": secrets.token_urlsafe(50),
    "TECHBANK_ALLOWED_HOSTS": "bank.example.com",
    "TECHBANK_CSRF_TRUSTED_ORIGINS": "https://bank.example.com",
    "TECHBANK_BEHIND_TLS_PROXY": "1",
    "TECHBANK_EVENT_STORE": "mongo",
    "TECHBANK_EVENT_BUS": "kafka",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    """manage.py in a fresh process, with only these TECHBANK_* variables (and DATABASE_URL unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHBANK_") and k != "DATABASE_URL"}
    env.update(environment, DJANGO_SETTINGS_MODULE="techbank_site.settings")
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def settings_values(**environment: str) -> dict:
    shown = manage(
        "shell",
        "-v0",
        "-c",
        "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in "
        "('DEBUG', 'SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE')}))",
        **environment,
    )
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_production_settings():
    checked = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "no issues" in checked.stdout


def test_production_settings_are_https_only():
    assert settings_values(**PRODUCTION) == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
    }


def test_debug_is_off_unless_asked_for_and_make_run_stays_plain_http():
    key = secrets.token_urlsafe(50)  # so the checkout's .secret_key is left alone
    assert settings_values(TECHBANK_SECRET_KEY=key) == {
        "DEBUG": False,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
    }
    assert settings_values(TECHBANK_SECRET_KEY=key, TECHBANK_DEBUG="1")["DEBUG"] is True


def _tracked_files() -> list[str]:
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        unavailable("git is not installed: cannot list the repository's files")
    if listed.returncode != 0:
        unavailable(f"{ROOT} is not a git checkout: {listed.stderr.strip()}")
    return [name for name in listed.stdout.split("\0") if name]


# Literal keys handed to a process that signs nothing (the image's collectstatic step).
NOT_SECRETS = {"collectstatic-build-only-not-a-secret"}


def test_no_secret_is_in_the_repository():
    tracked = _tracked_files()
    assert not {".env", ".secret_key"} & {Path(name).name for name in tracked}
    assert not [name for name in tracked if re.fullmatch(r"db\.sqlite3.*|\.test-db.*", Path(name).name)]
    ignored = subprocess.run(["git", "check-ignore", ".env", ".secret_key"], cwd=ROOT, capture_output=True, text=True)
    assert ignored.stdout.split() == [".env", ".secret_key"], "keep .env and .secret_key in .gitignore"

    found = []
    for name in tracked:
        path = ROOT / name
        if name == THIS_FILE or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if "django-insecure-" in text or re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text):
            found.append(name)
        if name.endswith(".py") and re.search(r"\bSECRET_KEY\s*=\s*[\"']", text):
            found.append(f"{name}: SECRET_KEY = '...'")
        if not name.startswith("tests/"):  # test servers get throwaway keys
            for value in re.findall(r"TECHBANK_SECRET_KEY(?:=[\"']?|:\s*[\"'])([^\s\"'$]+)", text):
                if value not in NOT_SECRETS:
                    found.append(f"{name}: TECHBANK_SECRET_KEY={value}")
    assert not found, f"secrets in tracked files: {found}"

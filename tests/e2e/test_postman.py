"""End to end: the Postman collections, run by newman against a real server.

`test_our_collection` runs postman/techbank.postman_collection.json (both APIs);
`test_users_compat_collection` runs the techbank course users' own collection
(../shared/compat, or $TECHBANK_COMPAT_DIR) the way its README says: collection-level
apikey auth added on the fly, both base URLs pointed at our one server.

Needs `npm install` (node_modules/.bin/newman) and the users' collection beside the
checkout. Without either these tests skip, except on CI (CI set, and not false or 0),
where they fail: CI always has ../shared beside its clone, and `.ci/run` runs the
collection against a real server too.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from tests.servers.processes import unavailable
from tests.staff import ALL_ACCOUNT_PERMISSIONS, grant

pytestmark = [pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
NEWMAN = ROOT / "node_modules" / ".bin" / "newman"
COLLECTION = ROOT / "postman" / "techbank.postman_collection.json"
ENVIRONMENT = ROOT / "postman" / "local.postman_environment.json"
NEWMAN_TIMEOUT_SECONDS = 300


def _compat_dir() -> Path:
    return Path(os.environ.get("TECHBANK_COMPAT_DIR") or ROOT.parent / "shared" / "compat")


def _compat_missing(reason: str):
    """Asked for by name and missing: a failure. Not beside the checkout: a skip, except on CI."""
    if os.environ.get("TECHBANK_COMPAT_DIR"):
        pytest.fail(f"{reason} (TECHBANK_COMPAT_DIR names it)", pytrace=False)
    unavailable(f"{reason}: put the techbank users' collection at ../shared/compat or name it in TECHBANK_COMPAT_DIR")


def _newman() -> Path:
    if not NEWMAN.exists():
        unavailable(f"newman is not installed at {NEWMAN.relative_to(ROOT)}: run `npm install` in {ROOT}")
    if shutil.which("node") is None:
        unavailable("node is not on PATH: newman needs Node.js")
    return NEWMAN


@pytest.fixture
def api_token() -> str:
    user = get_user_model().objects.create_user(username="newman", password=None)
    grant(user, *ALL_ACCOUNT_PERMISSIONS)  # the collections open, move, close and restoreReadDb
    return Token.objects.create(user=user).key


def _count_requests(collection: dict) -> int:
    return sum(_count_requests(item) if "item" in item else 1 for item in collection.get("item", []))


def _run_newman(newman: Path, collection: Path, environment: Path, env_vars: dict, report: Path) -> dict:
    """Run newman; fail the test with its output unless every request and assertion passed."""
    command = [str(newman), "run", str(collection), "-e", str(environment)]
    for name, value in env_vars.items():
        command += ["--env-var", f"{name}={value}"]
    command += [
        "--color",
        "off",
        "--timeout-request",
        "30000",
        "--reporters",
        "cli,json",
        "--reporter-json-export",
        str(report),
    ]
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            # --color off leaves colour codes in newman's failure table; FORCE_COLOR=0 removes them.
            env={**os.environ, "FORCE_COLOR": "0"},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=NEWMAN_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        output = "\n".join(
            (part.decode(errors="replace") if isinstance(part, bytes) else part)
            for part in (exc.stdout, exc.stderr)
            if part
        )
        pytest.fail(
            f"newman did not finish within {NEWMAN_TIMEOUT_SECONDS}s; its output so far:\n{output}", pytrace=False
        )
    output = f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        pytest.fail(f"newman exited with {result.returncode}:\n{output}", pytrace=False)
    run = json.loads(report.read_text())["run"]
    if run["failures"]:
        pytest.fail(f"newman exited 0 but reported {len(run['failures'])} failure(s):\n{output}", pytrace=False)
    return run


def test_our_collection(api_token, live_server, tmp_path):
    run = _run_newman(
        _newman(),
        COLLECTION,
        ENVIRONMENT,
        {"baseUrl": live_server.url, "token": api_token},
        tmp_path / "newman-report.json",
    )
    stats = run["stats"]
    assert stats["requests"]["total"] == _count_requests(json.loads(COLLECTION.read_text()))
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["total"] > stats["requests"]["total"]
    assert stats["assertions"]["failed"] == 0


def test_users_compat_collection(api_token, live_server, tmp_path):
    compat = _compat_dir()
    users_collection = compat / "techbank.postman_collection.json"
    users_environment = compat / "local.postman_environment.json"
    if not (users_collection.is_file() and users_environment.is_file()):
        _compat_missing(
            f"the users' compat collection is not at {compat} (expected techbank.postman_collection.json and "
            "local.postman_environment.json there; set TECHBANK_COMPAT_DIR to its folder)"
        )
    newman = _newman()
    # As the compat README says: the same collection with our token added at collection level.
    collection = json.loads(users_collection.read_text())
    collection["auth"] = {
        "type": "apikey",
        "apikey": [
            {"key": "key", "value": "Authorization", "type": "string"},
            {"key": "value", "value": f"Token {api_token}", "type": "string"},
            {"key": "in", "value": "header", "type": "string"},
        ],
    }
    with_auth = tmp_path / "compat.postman_collection.json"
    with_auth.write_text(json.dumps(collection))

    run = _run_newman(
        newman,
        with_auth,
        users_environment,
        {"baseUrlCmd": live_server.url, "baseUrlQry": live_server.url},
        tmp_path / "newman-report.json",
    )
    stats = run["stats"]
    assert stats["requests"]["total"] == _count_requests(collection)
    assert stats["requests"]["failed"] == 0
    assert stats["assertions"]["total"] > 0
    assert stats["assertions"]["failed"] == 0

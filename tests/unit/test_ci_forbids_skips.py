"""One rule for "this is CI, nothing may skip", everywhere: CI set to anything
but empty, false or 0. Runners set CI=true, CI=1, CI=TRUE; each must count, in
the tests' helper and in the scripts the Makefile and .ci/run use."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.processes import ci_forbids_skips, unavailable

ROOT = Path(__file__).resolve().parents[2]
IS_CI = ROOT / "scripts" / "is-ci.sh"
TEST_MARIADB = ROOT / "scripts" / "test-mariadb.sh"
ON_CI = ["true", "1", "TRUE", "True", "yes", "on", "github-actions"]
NOT_ON_CI = [None, "", "false", "FALSE", "False", "0"]


def _env(ci: str | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CI"}
    if ci is not None:
        env["CI"] = ci
    return env


@pytest.mark.parametrize("ci", ON_CI)
def test_every_ci_value_a_runner_sets_forbids_skips_in_the_tests_and_the_scripts(ci):
    assert ci_forbids_skips(_env(ci)) is True
    assert subprocess.run([str(IS_CI)], env=_env(ci)).returncode == 0


@pytest.mark.parametrize("ci", NOT_ON_CI)
def test_an_unset_empty_false_or_zero_ci_allows_skips_in_the_tests_and_the_scripts(ci):
    assert ci_forbids_skips(_env(ci)) is False
    assert subprocess.run([str(IS_CI)], env=_env(ci)).returncode == 1


@pytest.mark.parametrize("ci", ["1", "TRUE"])
def test_a_missing_service_fails_the_test_on_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception), match="no such server") as outcome:
        unavailable("no such server")
    assert outcome.type is pytest.fail.Exception, "skipped on CI"


def test_a_missing_service_skips_the_test_elsewhere(monkeypatch):
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="no such server"):
        unavailable("no such server")


def _test_mariadb_against_nothing(ci: str | None) -> subprocess.CompletedProcess:
    # Port 1 on the loopback: refused at once; the script's own venv check uses this interpreter's.
    env = {**_env(ci), "TECHBANK_TEST_MYSQL_URL": "mysql://root@127.0.0.1:1/techbank", "VENV": sys.prefix}
    return subprocess.run(
        [str(TEST_MARIADB), "--collect-only", "-q"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("ci", ["1", "TRUE", "true"])
def test_the_mariadb_pass_fails_on_ci_when_its_server_is_unreachable(ci):
    result = _test_mariadb_against_nothing(ci)
    assert result.returncode == 1, result.stderr
    assert "ERROR" in result.stderr and "SKIPPED" not in result.stderr


def test_the_mariadb_pass_says_it_skipped_elsewhere_when_its_server_is_unreachable():
    result = _test_mariadb_against_nothing(None)
    assert result.returncode == 0, result.stderr
    assert "SKIPPED, MariaDB tests not run" in result.stderr


def test_the_makefile_and_scripts_ask_is_ci_sh_rather_than_compare_ci_themselves():
    own_comparison = re.compile(r"""\$\$?\{?CI\b[^}]*\}?"?\s*[!=]=|==\s*"?\$\$?\{?CI\b""")
    for path in [ROOT / "Makefile", ROOT / ".ci" / "run", *sorted((ROOT / "scripts").glob("*.sh"))]:
        if path == IS_CI:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not own_comparison.search(line), f"{path.name}:{number} tests CI by itself: {line.strip()}"

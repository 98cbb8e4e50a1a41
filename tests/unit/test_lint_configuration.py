"""CI lints before it tests, with the rule set and the strict typing the README promises."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_ci_runs_make_lint_before_make_test():
    steps = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("make ")]
    assert "make lint" in steps
    assert steps.index("make lint") < steps.index("make test")


def test_ruff_checks_at_least_pyflakes_pycodestyle_isort_and_bugbear():
    selected = set(PYPROJECT["tool"]["ruff"]["lint"]["select"])
    assert {"F", "E", "W", "I", "B"} <= selected
    # The code's `noqa: BLE001` comments mean something only if BLE is checked.
    assert "BLE" in selected


def test_mypy_is_strict_on_the_domain_and_the_service_layer():
    strict_flags = {
        "disallow_untyped_defs",
        "disallow_incomplete_defs",
        "disallow_untyped_calls",
        "disallow_any_generics",
        "warn_return_any",
    }
    strict = [
        override
        for override in PYPROJECT["tool"]["mypy"]["overrides"]
        if {"accounts.domain.*", "accounts.service_layer.*"} <= set(override["module"])
    ]
    assert len(strict) == 1
    assert all(strict[0].get(flag) is True for flag in strict_flags)

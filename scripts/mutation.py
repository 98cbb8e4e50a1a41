"""Mutation testing: runs mutmut on the targets below, then scores each one.

    .venv/bin/python scripts/mutation.py            # make mutation: every target (about half an hour)
    .venv/bin/python scripts/mutation.py --sample   # make mutation-sample: a fixed few functions (about a minute)
    .venv/bin/python scripts/mutation.py --report   # score the last run again, run nothing

mutmut reads its configuration from setup.cfg ([mutmut]: what is copied, what
may be mutated, which tests may kill). It runs one worker: the machines this
runs on are shared. A target's score is the share of its mutants the tests
kill (a timeout counts as a kill: the tests noticed); equivalent mutants,
listed with a reason in docs/mutation.md, are left out of the count. Exit
status 1 if a target is below its goal or a mutant of it was not run.
"""
import argparse
import fnmatch
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "docs" / "mutation.md"
SEP = "\u01c1"  # how mutmut joins a class and its method in a mutant's name: xǁClassǁmethod


@dataclass
class Target:
    name: str
    goal: float
    patterns: list[str]  # mutmut mutant names (fnmatch)
    counts: dict = field(default_factory=dict)


def _method(module: str, cls: str, method: str) -> str:
    return f"{module}.x{SEP}{cls}{SEP}{method}__mutmut_*"


_ORM = "eventstore.backends.django_orm"
TARGETS = [
    Target("domain (accounts/domain/)", 0.90, ["accounts.domain.*"]),
    Target("service layer (accounts/service_layer/)", 0.90, ["accounts.service_layer.*"]),
    # The append path only: the reads and the snapshot store are not in this target.
    Target("SQL event store append (eventstore/backends/django_orm.py)", 0.80, [
        _method(_ORM, "_AppendSql", "*"),
        f"{_ORM}.x__append_sql__mutmut_*",
        _method(_ORM, "DjangoEventStore", "append"),
        _method(_ORM, "DjangoEventStore", "_append_once"),
        _method(_ORM, "DjangoEventStore", "_insert"),
        _method(_ORM, "DjangoEventStore", "_is_deadlock"),
    ]),
    Target("projectors (projections/projectors.py)", 0.80, ["projections.projectors.*"]),
]

# Small, money-critical functions whose every mutant the unit tests kill: a check, in a
# minute, that the set-up still works and that these rules still have tests that bite.
SAMPLE = [
    _method("accounts.domain.bank_account", "BankAccount", "check_has_sufficient_funds"),
    _method("accounts.domain.bank_account", "BankAccount", "check_balance_stays_within_limit"),
    "accounts.domain.money.x_positive_money__mutmut_*",
]

# mutmut's exit codes, as its own report reads them (mutmut.stats.status_by_exit_code).
KILLED, TIMEOUT = {1, 3}, {36, -24, 24, 152, 255}


def equivalent_mutants() -> set[str]:
    """The mutants docs/mutation.md lists as equivalent: a backticked name at the start of a table row."""
    if not EQUIVALENTS.exists():
        return set()
    return set(re.findall(r"^\| `([^`]+__mutmut_\d+)`", EQUIVALENTS.read_text(encoding="utf-8"), re.MULTILINE))


def results() -> dict[str, int | None]:
    """Every mutant of the last run and its exit code (None: not run)."""
    exit_codes = {}
    for meta in (ROOT / "mutants").rglob("*.py.meta"):
        exit_codes.update(json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"])
    return exit_codes


def status(exit_code: int | None) -> str:
    if exit_code in KILLED:
        return "killed"
    if exit_code in TIMEOUT:
        return "timeout"
    if exit_code is None:
        return "not run"
    if exit_code == 0:
        return "survived"
    if exit_code in (5, 33):
        return "no tests"
    return f"other ({exit_code})"


def report(patterns_run: list[str] | None = None) -> int:
    """Print the score of each target (or, for a sample, of the mutants run); exit status as the module says."""
    exit_codes, equivalents = results(), equivalent_mutants()
    targets = TARGETS if patterns_run is None else [Target("sample", 1.0, patterns_run)]
    failed = False
    print(f"{'target':60} {'mutants':>7} {'killed':>6} {'timeout':>7} {'equiv.':>6} {'survived':>8} {'score':>6}  goal")
    for target in targets:
        names = sorted(n for n in exit_codes if any(fnmatch.fnmatchcase(n, p) for p in target.patterns))
        by_status: dict[str, list[str]] = {}
        for name in names:
            verdict = "equivalent" if name in equivalents and exit_codes[name] == 0 else status(exit_codes[name])
            by_status.setdefault(verdict, []).append(name)
        detected = len(by_status.get("killed", [])) + len(by_status.get("timeout", []))
        counted = len(names) - len(by_status.get("equivalent", []))
        score = detected / counted if counted else 0.0
        undetected = [n for verdict, group in by_status.items() if verdict not in ("killed", "timeout", "equivalent") for n in group]
        print(
            f"{target.name:60} {len(names):7} {len(by_status.get('killed', [])):6} {len(by_status.get('timeout', [])):7}"
            f" {len(by_status.get('equivalent', [])):6} {len(undetected):8} {score:6.1%}  {target.goal:.0%}"
        )
        for name in undetected:
            if status(exit_codes[name]) != "not run":
                print(f"    {status(exit_codes[name]):9} {name}")
        if by_status.get("not run"):
            print(f"    {len(by_status['not run'])} not run (run make mutation)")
        failed |= not names or score < target.goal or bool(by_status.get("not run"))
    stale = sorted(equivalents - set(exit_codes))
    for name in stale:  # the code moved on: the list needs looking at again
        print(f"    listed as equivalent in docs/mutation.md but no such mutant now: {name}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="only the fixed sample of functions")
    parser.add_argument("--report", action="store_true", help="score the last run; run nothing")
    args = parser.parse_args()
    patterns = SAMPLE if args.sample else [p for target in TARGETS for p in target.patterns]
    if not args.report:
        # Named mutants are always run again, so a run never reports an older verdict.
        run = subprocess.run([str(Path(sys.executable).parent / "mutmut"), "run", "--max-children", "1", *patterns], cwd=ROOT)
        if run.returncode != 0:
            print(f"mutmut run failed (exit status {run.returncode})", file=sys.stderr)
            return run.returncode
    return report(patterns if args.sample else None)


if __name__ == "__main__":
    sys.exit(main())

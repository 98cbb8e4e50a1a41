"""Mutation testing: runs mutmut on the targets below, then scores each one.

    .venv/bin/python scripts/mutation.py            # make mutation: every target (about 12 minutes here)
    .venv/bin/python scripts/mutation.py --sample   # make mutation-sample: a fixed few functions (under a minute)
    .venv/bin/python scripts/mutation.py --report   # score the last run again, run nothing
    .venv/bin/python scripts/mutation.py --no-mariadb  # the SQL append on SQLite only

mutmut reads its configuration from setup.cfg ([mutmut]: what is copied, what
may be mutated, which tests may kill). It runs one worker: the machines this
runs on are shared. A target's score is the share of its mutants the tests
kill (a timeout counts as a kill: the tests noticed); equivalent mutants,
listed with a reason in docs/mutation.md, are left out of the count. Exit
status 1 if a target is below its goal or a mutant of it was not run.

The SQL append has branches only MySQL/MariaDB take (its transaction statement,
FROM DUAL, its parameter style, deadlock retries). As `make test` runs the
database-backed tests on SQLite and then on MariaDB, the append mutants that
survive SQLite are run again with the tests on MariaDB (TECHBANK_TEST_MYSQL_URL,
as scripts/test-mariadb.sh): a mutant either database's tests kill counts as
killed. Without a reachable server this says so and scores SQLite alone (with
CI=true it fails instead).
"""

import argparse
import fnmatch
import json
import os
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
    Target(
        "SQL event store append (eventstore/backends/django_orm.py)",
        0.80,
        [
            _method(_ORM, "_AppendSql", "*"),
            f"{_ORM}.x__append_sql__mutmut_*",
            _method(_ORM, "DjangoEventStore", "append"),
            _method(_ORM, "DjangoEventStore", "_append_once"),
            _method(_ORM, "DjangoEventStore", "_insert"),
            _method(_ORM, "DjangoEventStore", "_is_deadlock"),
        ],
    ),
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
    """The mutants docs/mutation.md lists as equivalent: a backticked name starting a table row of that section."""
    if not EQUIVALENTS.exists():
        return set()
    section = EQUIVALENTS.read_text(encoding="utf-8").split("\n## Equivalent mutants\n", 1)[-1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^`]+__mutmut_\d+)`", section, re.MULTILINE))


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
        undetected = [
            n
            for verdict, group in by_status.items()
            if verdict not in ("killed", "timeout", "equivalent")
            for n in group
        ]
        killed, timeouts = len(by_status.get("killed", [])), len(by_status.get("timeout", []))
        print(
            f"{target.name:60} {len(names):7} {killed:6} {timeouts:7}"
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


def mutmut_run(names: list[str], env: dict | None = None) -> int:
    # Named mutants are always run again, so a run never reports an older verdict.
    mutmut = str(Path(sys.executable).parent / "mutmut")
    return subprocess.run([mutmut, "run", "--max-children", "1", *names], cwd=ROOT, env=env).returncode


APPEND = next(target for target in TARGETS if target.name.startswith("SQL event store append"))
MYSQL_URL_DEFAULT = "mysql://root@127.0.0.1:3306/techbank"


def mariadb_pass() -> int:
    """Run the append mutants SQLite's tests left alive again, with the tests on MariaDB."""
    exit_codes = results()
    alive = sorted(
        name
        for name, code in exit_codes.items()
        if status(code) in ("survived", "no tests") and any(fnmatch.fnmatchcase(name, p) for p in APPEND.patterns)
    )
    if not alive:
        return 0
    url = os.environ.get("TECHBANK_TEST_MYSQL_URL", MYSQL_URL_DEFAULT)
    base, _, query = url.partition("?")
    name = base.rstrip("/").rsplit("/", 1)[1] + "_mutants"  # its own test databases: test_<name>_<pid>
    server = base.rstrip("/").rsplit("/", 1)[0]
    reachable = subprocess.run(
        [str(ROOT / "scripts" / "test-mariadb.sh"), "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "TECHBANK_TEST_MYSQL_URL": url},
    )
    if reachable.returncode != 0 or "SKIPPED" in reachable.stderr:
        print(f"MariaDB pass not run: {reachable.stderr.strip() or 'server unreachable'}", file=sys.stderr)
        return 1 if os.environ.get("CI") == "true" else 0
    print(f"MariaDB pass: {len(alive)} append mutants SQLite's tests left alive, again on {server}/{name}")
    env = {**os.environ, "DATABASE_URL": f"{server}/{name}" + (f"?{query}" if query else "")}
    # Which tests reach which function differs by database (deadlock handling is
    # reached on MariaDB only): this pass keeps its own record of it.
    stats, sqlite_stats, mariadb_stats = (
        ROOT / "mutants" / f"mutmut-stats{suffix}.json" for suffix in ("", "-sqlite", "-mariadb")
    )
    stats.replace(sqlite_stats)
    if mariadb_stats.exists():
        mariadb_stats.replace(stats)
    try:
        return mutmut_run(alive, env)
    finally:
        if stats.exists():
            stats.replace(mariadb_stats)
        sqlite_stats.replace(stats)
        _drop_test_databases(env["DATABASE_URL"], name)


def _drop_test_databases(url: str, name: str) -> None:
    """A mutant stopped at its time limit leaves its test database behind: drop them all."""
    import dj_database_url
    import MySQLdb

    db = dj_database_url.parse(url)
    connection = MySQLdb.connect(
        host=db["HOST"] or "localhost",
        port=int(db["PORT"] or 3306),
        user=db["USER"] or "root",
        passwd=db["PASSWORD"] or "",
    )
    try:
        cursor = connection.cursor()
        escaped = f"test_{name}_".replace("_", "\\_")
        cursor.execute("SHOW DATABASES LIKE %s", [f"{escaped}%"])
        for (database,) in cursor.fetchall():
            cursor.execute(f"DROP DATABASE `{database}`")
    finally:
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", action="store_true", help="only the fixed sample of functions")
    parser.add_argument("--report", action="store_true", help="score the last run; run nothing")
    parser.add_argument("--no-mariadb", action="store_true", help="score the SQL append on SQLite alone")
    args = parser.parse_args()
    patterns = SAMPLE if args.sample else [p for target in TARGETS for p in target.patterns]
    if not args.report:
        returncode = mutmut_run(patterns)
        if returncode == 0 and not (args.sample or args.no_mariadb):
            returncode = mariadb_pass()
        if returncode != 0:
            print(f"mutmut run failed (exit status {returncode})", file=sys.stderr)
            return returncode
    return report(patterns if args.sample else None)


if __name__ == "__main__":
    sys.exit(main())

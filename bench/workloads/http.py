"""Workload 2: the commands mix over HTTP, through the resource API, at 1, 8 and 32 concurrent clients.

The server is the production one (Dockerfile, docker-compose.yml): gunicorn,
3 workers of 4 threads, 60 s timeout, access log on, on a free local port. Its
database is a fresh MariaDB one (the event store and the read model, as
TECHBANK_EVENT_STORE=sql), and its events are projected in the request's thread
(TECHBANK_EVENT_BUS=inline): the production stack without Kafka. A staff user
with a token (the "Account manager" permissions) drives it.

The client opens the accounts (8 at a time), then, for each concurrency, sends
deposits and withdrawals from that many threads, each on its own keep-alive
connection: at most 20,000 requests or 120 s per concurrency (quick: 300 or 1.5 s).
An error is any answer but 2xx, or no answer. The baseline is the same command
mix in process (1,000 accounts, 3,000 commands; quick: 20 and 80), with the
same configuration (MariaDB, inline projection), run just before the server
starts: how close HTTP comes to it.
"""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.framework import ROOT, Measurement, percentile, run_case
from bench.workloads.commands import BENCH_ENV
from bench.workloads.mix import SEED, cents_text, moves, opens

WORKLOAD = "http"
CONCURRENCY = (1, 8, 32)
OPENING_CLIENTS = 8
SERVER = "gunicorn 3x4"
# The production command line (Dockerfile CMD, docker-compose.yml), on a local port.
GUNICORN_OPTIONS = [
    "--workers",
    "3",
    "--threads",
    "4",
    "--timeout",
    "60",
    "--access-logfile",
    "-",
    "--worker-tmp-dir",
    "/dev/shm",
]


def create_staff() -> dict:
    """A case (Django set up on the server's database): migrate, and a staff user's token."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(username="bench-staff", is_staff=True)
    user.groups.add(Group.objects.get(name="Account manager"))
    return {"token": Token.objects.create(user=user).key}


class Client:
    """One keep-alive connection to the server, as one API client would hold it."""

    def __init__(self, port: int, token: str):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=90)
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> tuple[int, bytes]:
        try:
            self.connection.request("POST", path, body=json.dumps(body), headers=self.headers)
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()  # reconnects on the next request
            return 0, b""


def _drive(port: int, token: str, requests, clients: int, deadline_seconds: float) -> dict:
    """Send `requests` ((path, body) pairs) from `clients` threads; their outcomes and timings."""
    pending = iter(requests)
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    bodies: list[bytes] = []
    started = time.perf_counter()
    deadline = started + deadline_seconds

    def client_loop() -> None:
        client = Client(port, token)
        while time.perf_counter() < deadline:
            with lock:
                request = next(pending, None)
            if request is None:
                break
            began = time.perf_counter()
            status, body = client.post(*request)
            took = time.perf_counter() - began
            with lock:
                latencies.append(took)
                statuses[status] = statuses.get(status, 0) + 1
                bodies.append(body if 200 <= status < 300 else b"")
        client.connection.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    seconds = time.perf_counter() - started
    errors = sum(n for status, n in statuses.items() if not 200 <= status < 300)
    return {
        "clients": clients,
        "requests": len(latencies),
        "seconds": round(seconds, 3),
        "requests_per_second": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "errors": errors,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "_bodies": bodies,
    }


def _start_server(session, env: dict[str, str]):
    from tests.servers.processes import start_on_free_port

    def ready(port: int) -> bool:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/admin/login/")
            ok = connection.getresponse().status == 200
            connection.close()
            return ok
        except (OSError, http.client.HTTPException):
            return False

    def command(port: int) -> list[str]:
        return [
            "env",
            *(f"{k}={v}" for k, v in env.items()),
            sys.executable,
            "-m",
            "gunicorn",
            "techbank_site.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            *GUNICORN_OPTIONS,
        ]

    return start_on_free_port("gunicorn", command, ready, session.scratch, startup_seconds=60)


def run(session) -> list[Measurement]:
    from tests.servers.processes import stop

    accounts = session.sizes.pick(1_000, 50)
    per_level = session.sizes.pick(20_000, 300)
    seconds_per_level = session.sizes.pick(45.0, 1.5)
    env = {
        **BENCH_ENV,
        "DATABASE_URL": session.mariadb_url("http"),
        "TECHBANK_EVENT_STORE": "sql",
        "TECHBANK_EVENT_BUS": "inline",
        "PYTHONPATH": str(ROOT),
    }
    token = run_case("bench.workloads.http:create_staff", env=env).result["token"]

    # The baseline: the same configuration in process, on the same database (its accounts are its own).
    in_process = run_case(
        "bench.workloads.commands:techbank",
        env=env,
        inline_projection=True,
        migrate=False,
        accounts=session.sizes.pick(1_000, 20),
        commands=session.sizes.pick(3_000, 80),
    ).result

    process, port = _start_server(session, env)
    try:
        opening = _drive(
            port,
            token,
            [
                (
                    "/api/accounts/",
                    {
                        "holder": f"Bench Holder {op.account}",
                        "account_type": "SAVINGS" if op.account % 2 else "CURRENT",
                        "opening_balance": cents_text(op.cents),
                    },
                )
                for op in opens(accounts)
            ],
            OPENING_CLIENTS,
            deadline_seconds=max(60.0, seconds_per_level),
        )
        ids = [json.loads(body)["id"] for body in opening.pop("_bodies") if body]
        if len(ids) < accounts:
            raise RuntimeError(f"only {len(ids)} of {accounts} accounts opened: {opening['statuses']}")
        levels = []
        for clients in CONCURRENCY:
            requests = (
                (
                    f"/api/accounts/{ids[op.account]}/{'deposits' if op.kind == 'deposit' else 'withdrawals'}",
                    {"amount": cents_text(op.cents)},
                )
                for op in moves(accounts, per_level, SEED + clients)
            )
            level = _drive(port, token, requests, clients, seconds_per_level)
            level.pop("_bodies")
            levels.append(level)
    finally:
        stop(process)
        log = sorted(Path(session.scratch).glob("gunicorn-*.log"))

    baseline_name = "in process (MariaDB, inline projection)"
    details_common = {
        "server": SERVER,
        "database": "MariaDB",
        "publisher": "inline projection",
        "opening": opening,
        "in_process": in_process,
        "server_log": str(log[-1]) if log else None,
    }
    measurements = []
    for level in levels:
        subject = f"resource API, {level['clients']} client{'s' if level['clients'] > 1 else ''} ({SERVER})"
        details = {**details_common, **level}
        measurements.append(
            Measurement(
                WORKLOAD,
                subject,
                "requests/s",
                level["requests_per_second"],
                "req/s",
                baseline=baseline_name,
                baseline_value=in_process["commands_per_second"],
                target="0 errors",
                met=level["errors"] == 0,
                details=details,
            )
        )
        for name in ("p50", "p99"):
            measurements.append(
                Measurement(
                    WORKLOAD,
                    subject,
                    f"{name} latency",
                    level[f"{name}_ms"],
                    "ms",
                    higher_is_better=False,
                    details={"errors": level["errors"], "requests": level["requests"]},
                )
            )
    return measurements

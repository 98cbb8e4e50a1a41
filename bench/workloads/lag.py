"""Workload 5, end-to-end lag: from a command's 2xx to the read model showing it.

The Kafka stack as docker-compose.yml runs it: gunicorn (the image's settings)
and `celery -A techbank_site worker -B` (which runs the outbox relay and the
projection consumer) on MongoDB (SecantusDB), Kafka (noida-db), MariaDB and
Redis. A driver opens accounts, then sends deposits and withdrawals on an
open-loop schedule (command i is due at start + i / rate, whoever sends it)
from many client threads, and a poller reads every account's version straight
from MariaDB every few milliseconds: a command's lag is the time from its 2xx
to the first poll that shows its account at its version or later.

Baseline, on the same broker at the same rate: kafka-python alone, producer
(acks=all, each send waited for) -> a group consumer that commits each batch,
from send() to the consumer holding the message.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

from bench.framework import ROOT, Measurement, percentile, run_case

# The production stack, and the same with the events in MariaDB (TECHBANK_EVENT_STORE=sql):
# the second shows what the MongoDB stand-in (SecantusDB, pure Python) costs.
SUBJECTS = {
    "mongo": "TechBank, Kafka stack (Mongo+noida+MariaDB)",
    "sql": "TechBank, Kafka stack, events in MariaDB (noida+MariaDB)",
}
TARGET_P99_MS = 500
REDIS_URL = os.environ.get("TECHBANK_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PYTHON = sys.executable


def run(session) -> list[Measurement]:
    rate = session.sizes.pick(200, 10)
    seconds = session.sizes.pick(30, 3)
    accounts = session.sizes.pick(200, 8)
    mongo, kafka = session.mongo_url(), session.kafka_bootstrap()
    # With TECHBANK_BENCH_LAG_BREAKDOWN=1 the driver also reads the topic: lag = relay + consumer.
    breakdown = os.environ.get("TECHBANK_BENCH_LAG_BREAKDOWN") == "1"
    began = time.monotonic()
    baseline = run_case(
        "bench.workloads.lag:kafka_round_trip", bootstrap=kafka, rate=rate, seconds=session.sizes.pick(seconds, 1)
    ).result
    _progress(f"baseline measured after {time.monotonic() - began:.1f} s")
    measurements = []
    # Quick mode (a smoke test) drives the production stack only.
    for event_store in ("mongo",) if session.quick else ("mongo", "sql"):
        database_url = session.mariadb_url(f"lag_{event_store}")
        with running_stack(
            session.scratch, mongo=mongo, kafka=kafka, database_url=database_url, event_store=event_store
        ) as stack:
            _progress(f"{event_store}: stack up in {stack['startup_s']} s")
            result = run_case(
                "bench.workloads.lag:drive",
                base=stack["base"],
                token=stack["token"],
                database_url=database_url,
                accounts=accounts,
                rate=rate,
                seconds=seconds,
                topic=stack["env"]["TECHBANK_KAFKA_TOPIC"] if breakdown else None,
                bootstrap=kafka,
            ).result
            _progress(
                f"{event_store}: driven after {time.monotonic() - began:.1f} s "
                f"(pipeline ready after {result['pipeline_ready_s']} s)"
            )
        measurements.append(_measurement(session, SUBJECTS[event_store], result, baseline, stack, rate))
    return measurements


def _measurement(session, subject: str, result: dict, baseline: dict, stack: dict, rate: int) -> Measurement:
    p99 = result["p99_ms"]
    details = {
        key: result[key]
        for key in (
            "p50_ms",
            "max_ms",
            "rate",
            "target_rate",
            "commands",
            "skipped",
            "errors",
            "not_seen",
            "retried",
            "late_starts",
            "http_p50_ms",
            "http_p99_ms",
            "pipeline_ready_s",
            "seconds",
            "to_topic_p50_ms",
            "to_topic_p99_ms",
        )
        if key in result
    }
    details["baseline_p50_ms"], details["baseline_max_ms"] = baseline["p50_ms"], baseline["max_ms"]
    details["startup_s"] = stack["startup_s"]
    return Measurement(
        workload="lag",
        subject=subject,
        metric="p99 lag",
        value=p99,
        unit="ms",
        baseline="raw kafka-python round trip p99",
        baseline_value=baseline["p99_ms"],
        higher_is_better=False,
        target=f"p99 < {TARGET_P99_MS} ms at 200 cmd/s",
        # Quick mode runs at a lower rate: it checks the workload works, it does not judge the target.
        met=None
        if session.quick
        else (
            p99 < TARGET_P99_MS and result["rate"] >= 0.95 * rate and not result["errors"] and not result["not_seen"]
        ),
        details=details,
    )


def _progress(message: str) -> None:
    print(f"   lag: {message}", file=sys.stderr, flush=True)


# -- the stack ------------------------------------------------------------------------


def stack_env(*, mongo: str, kafka: str, database_url: str, event_store: str = "mongo") -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "TECHBANK_EVENT_STORE": event_store,
        "TECHBANK_MONGO_URL": f"{mongo}/techbank_lag_{tag}?retryWrites=false",
        "TECHBANK_EVENT_BUS": "kafka",
        "TECHBANK_KAFKA_BOOTSTRAP": kafka,
        "TECHBANK_KAFKA_TOPIC": f"techbank.lag.{tag}",
        "TECHBANK_KAFKA_GROUP": f"lag-projections-{tag}",
        "CELERY_BROKER_URL": REDIS_URL,
        "TECHBANK_CELERY_QUEUE": f"techbank-lag-{tag}",
        "TECHBANK_SECRET_KEY": "bench-only-" + uuid.uuid4().hex,
        "TECHBANK_LOG_LEVEL": "INFO",
        "DJANGO_SETTINGS_MODULE": "techbank_site.settings",
    }


@contextmanager
def running_stack(scratch: Path, *, mongo: str, kafka: str, database_url: str, event_store: str = "mongo"):
    """gunicorn and the Celery worker as docker-compose.yml starts them; every process stopped after.

    The database is migrated while they boot: neither touches it before the first request or event.
    """
    import signal
    import subprocess

    from tests.servers.processes import accepts_connections, free_port, spawn, stop

    started = time.monotonic()
    logs = scratch / f"lag-{uuid.uuid4().hex[:8]}"
    logs.mkdir()
    env = stack_env(mongo=mongo, kafka=kafka, database_url=database_url, event_store=event_store)
    port = free_port()
    processes = []
    try:
        preparing = subprocess.Popen(
            [
                PYTHON,
                "manage.py",
                "shell",
                "-v0",
                "-c",
                (
                    "from django.contrib.auth import get_user_model\n"
                    "from django.contrib.auth.models import Group\n"
                    "from django.core.management import call_command\n"
                    "from rest_framework.authtoken.models import Token\n"
                    "call_command('migrate', interactive=False, verbosity=0)\n"
                    "user = get_user_model().objects.create_user('lag-teller')\n"
                    "user.groups.add(Group.objects.get(name='Account manager'))\n"
                    "print(Token.objects.create(user=user).key)"
                ),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(
            spawn(
                [
                    PYTHON,
                    "-m",
                    "gunicorn",
                    "techbank_site.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
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
                ],
                logs / "web.log",
                cwd=ROOT,
                env=env,
            )
        )
        processes.append(
            spawn(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "techbank_site",
                    "worker",
                    "-B",
                    "--loglevel=INFO",
                    f"--schedule={logs / 'celerybeat-schedule'}",
                ],
                logs / "worker.log",
                cwd=ROOT,
                env=env,
            )
        )
        out, err = preparing.communicate(timeout=300)
        if preparing.returncode != 0:
            raise RuntimeError(f"preparing the lag stack failed: {err[-3000:]}")
        token = out.strip().splitlines()[-1]
        deadline = time.monotonic() + 60
        while not accepts_connections(port):
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                raise RuntimeError(f"the lag stack did not start:\n{_tail(logs)}")
            time.sleep(0.05)
        yield {
            "base": f"127.0.0.1:{port}",
            "token": token,
            "logs": logs,
            "env": env,
            "pids": [p.pid for p in processes],
            "startup_s": round(time.monotonic() - started, 1),
        }
    except BaseException:
        print(_tail(logs), file=sys.stderr)
        raise
    finally:
        for process in processes:  # all at once: the worker's warm shutdown takes seconds
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            stop(process)
        _forget_queue(env)


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))


def _forget_queue(env: dict) -> None:
    """Drop what the stack left in the shared Redis: its queue, bindings and relay lock."""
    import redis

    queue, topic = env["TECHBANK_CELERY_QUEUE"], env["TECHBANK_KAFKA_TOPIC"]
    client = redis.Redis.from_url(env["CELERY_BROKER_URL"], socket_connect_timeout=2)
    with suppress(redis.RedisError):
        client.delete(
            queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}", f"techbank:relay-outbox:{topic}"
        )
    client.close()


# -- the driver (its own process) -------------------------------------------------------


class Client:
    """One keep-alive HTTP connection per thread; a dropped connection is retried once (Idempotency-Key)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token
        self.local = threading.local()
        self.retried = 0

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self.local, "connection", None) is None:
            host, port = self.base.split(":")
            self.local.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        return self.local.connection

    def post(self, path: str, body: dict) -> tuple[int, dict | None]:
        headers = {
            "Authorization": f"Token {self.token}",
            "Content-Type": "application/json",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        payload = json.dumps(body)
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request("POST", path, payload, headers)
                response = connection.getresponse()
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
            except (TimeoutError, ConnectionError, http.client.HTTPException):
                connection.close()
                self.local.connection = None
                if attempt == 2:
                    raise
                self.retried += 1
        raise AssertionError("unreachable")


class VersionPoller(threading.Thread):
    """Reads every account's version from the read model in a loop; notes when each version first shows."""

    def __init__(self, database_url: str, every: float = 0.003):
        super().__init__(name="version-poller", daemon=True)
        import MySQLdb
        from dj_database_url import parse

        config = parse(database_url)
        self.connection = MySQLdb.connect(
            host=config["HOST"],
            port=int(config["PORT"] or 3306),
            user=config["USER"],
            passwd=config["PASSWORD"] or "",
            db=config["NAME"],
            connect_timeout=5,
        )
        self.connection.autocommit(True)
        self.every = every
        self.first_seen: dict[str, dict[int, float]] = {}
        self.latest: dict[str, int] = {}
        self.stopping = threading.Event()
        self.polls = 0

    def run(self) -> None:
        cursor = self.connection.cursor()
        while not self.stopping.is_set():
            cursor.execute("SELECT id, version FROM projections_accountsummary")
            rows = cursor.fetchall()
            now = time.monotonic()
            self.polls += 1
            for raw_id, version in rows:
                account = str(uuid.UUID(raw_id))
                before = self.latest.get(account, 0)
                if version > before:
                    seen = self.first_seen.setdefault(account, {})
                    for v in range(before + 1, version + 1):
                        seen[v] = now
                    self.latest[account] = version
            self.stopping.wait(self.every)
        self.connection.close()

    def shows(self, account: str, version: int) -> bool:
        return self.latest.get(account, 0) >= version


class TopicWatcher(threading.Thread):
    """Reads the topic from its end as a group of its own; notes when each (account, version) arrives."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(name="topic-watcher", daemon=True)
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"lag-watch-{uuid.uuid4().hex[:6]}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        while not self.consumer.assignment():
            self.consumer.poll(timeout_ms=100)
        self.arrived: dict[tuple[str, int], float] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        from eventstore.transports import envelope

        while not self.stopping.is_set():
            batches = self.consumer.poll(timeout_ms=200)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    event = envelope.decode(record.value)
                    self.arrived.setdefault((event.stream_id, event.version), now)
        self.consumer.close()


def drive(
    *,
    base: str,
    token: str,
    database_url: str,
    accounts: int,
    rate: float,
    seconds: float,
    threads: int | None = None,
    drain_seconds: float = 30,
    topic: str | None = None,
    bootstrap: str | None = None,
) -> dict:
    # Enough senders for the schedule at a few hundred ms per request; not so many that each
    # sits idle past gunicorn's keep-alive (2 s) between two of its commands.
    threads = threads or max(4, min(64, int(rate / 4)))
    client = Client(base, token)
    poller = VersionPoller(database_url)
    poller.start()
    if topic and not bootstrap:
        raise ValueError("watching a topic needs its Kafka bootstrap servers")
    watcher = TopicWatcher(bootstrap, topic) if topic and bootstrap else None
    if watcher:
        watcher.start()

    # Open the accounts (this also warms every part of the pipeline up), and wait until they show.
    def open_account(n: int) -> str:
        status, body = client.post(
            "/api/accounts/", {"holder": f"Lag holder {n}", "account_type": "SAVINGS", "opening_balance": "1000.00"}
        )
        assert status == 201 and body is not None, (status, body)
        return body["id"]

    ready_started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(open_account, range(accounts)))
    deadline = time.monotonic() + 90
    while not all(poller.shows(a, 1) for a in ids):
        if time.monotonic() > deadline:
            raise RuntimeError("the opened accounts never reached the read model")
        time.sleep(0.01)
    pipeline_ready = time.monotonic() - ready_started

    # The steady load: command i is due at start + i / rate.
    total = int(rate * seconds)
    slots = itertools.count()
    done: list[tuple[str, int, float, float]] = []  # (account, version, 2xx at, sent at)
    late_starts = errors = 0
    counters = threading.Lock()
    start = time.monotonic() + 0.2

    # A stack slower than the schedule does not stretch the run: what is not sent by the end is skipped.
    end = start + seconds
    skipped = 0

    def sender() -> None:
        nonlocal late_starts, errors, skipped
        while (i := next(slots)) < total:
            if time.monotonic() > end:
                with counters:
                    skipped += 1
                continue
            due = start + i / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            account = ids[i % len(ids)]
            kind = "deposits" if (i // len(ids)) % 2 == 0 else "withdrawals"
            sent = time.monotonic()
            try:
                status, body = client.post(f"/api/accounts/{account}/{kind}", {"amount": "1.00"})
            except Exception:  # noqa: BLE001 - counted
                status, body = None, None
            answered = time.monotonic()
            with counters:
                if sent - due > 0.1:
                    late_starts += 1
                if status == 200 and body is not None:
                    done.append((account, body["version"], answered, sent))
                else:
                    errors += 1

    workers = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    finished = max([d[2] for d in done] + [end])

    deadline = time.monotonic() + drain_seconds
    while not all(poller.shows(a, v) for a, v, _, _ in done) and time.monotonic() < deadline:
        time.sleep(0.01)
    poller.stopping.set()
    poller.join()
    if watcher:
        watcher.stopping.set()
        watcher.join()

    lags, not_seen = [], 0
    for account, version, answered, _ in done:
        seen = poller.first_seen.get(account, {}).get(version)
        if seen is None:
            not_seen += 1
        else:
            lags.append(max(0.0, seen - answered) * 1000)
    http_ms = [(answered - sent) * 1000 for _, _, answered, sent in done]
    elapsed = finished - start
    breakdown = {}
    if watcher:
        to_topic = [
            max(0.0, watcher.arrived[(a, v)] - answered) * 1000
            for a, v, answered, _ in done
            if (a, v) in watcher.arrived
        ]
        breakdown = {
            "to_topic_p50_ms": round(percentile(to_topic, 0.5), 1),
            "to_topic_p99_ms": round(percentile(to_topic, 0.99), 1),
        }
    return {
        **breakdown,
        "p50_ms": round(percentile(lags, 0.5), 1),
        "p99_ms": round(percentile(lags, 0.99), 1),
        "max_ms": round(max(lags, default=float("nan")), 1),
        "rate": round(len(done) / elapsed, 1) if elapsed > 0 else 0.0,
        "target_rate": rate,
        "commands": total,
        "skipped": skipped,
        "errors": errors,
        "not_seen": not_seen,
        "retried": client.retried,
        "late_starts": late_starts,
        "seconds": round(elapsed, 2),
        "http_p50_ms": round(percentile(http_ms, 0.5), 1),
        "http_p99_ms": round(percentile(http_ms, 0.99), 1),
        "pipeline_ready_s": round(pipeline_ready, 2),
        "polls": poller.polls,
    }


# -- the baseline (its own process) -------------------------------------------------------


def kafka_round_trip(*, bootstrap: str, rate: float, seconds: float) -> dict:
    """kafka-python alone on the same broker: each message from send() to a group consumer holding it."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"bench.lag-baseline.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 3, 1)])
    finally:
        admin.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_in_flight_requests_per_connection=1)
    deadline = time.monotonic() + 30
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
    total = int(rate * seconds)
    sent_at: dict[int, float] = {}
    received_at: dict[int, float] = {}

    def send_all() -> None:
        start = time.monotonic()
        for i in range(total):
            if (wait := start + i / rate - time.monotonic()) > 0:
                time.sleep(wait)
            sent_at[i] = time.monotonic()
            producer.send(topic, key=str(i % 200).encode(), value=str(i).encode()).get(timeout=15)

    sending = threading.Thread(target=send_all)
    sending.start()
    deadline = time.monotonic() + seconds + 30
    while len(received_at) < total and time.monotonic() < deadline:
        batches = consumer.poll(timeout_ms=500)
        now = time.monotonic()
        for records in batches.values():
            for record in records:
                received_at.setdefault(int(record.value), now)
        if batches:
            consumer.commit()
    sending.join()
    producer.close()
    consumer.close()
    lags = [(received_at[i] - sent_at[i]) * 1000 for i in received_at if i in sent_at]
    return {
        "p50_ms": round(percentile(lags, 0.5), 1),
        "p99_ms": round(percentile(lags, 0.99), 1),
        "max_ms": round(max(lags, default=float("nan")), 1),
        "received": len(received_at),
        "sent": total,
    }

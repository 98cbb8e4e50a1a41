"""Nothing lost between the stores: faults on the full stack, with real processes really killed.

Each test runs a stack of its own (gunicorn + `celery -A techbank_site worker -B`
on MongoDB, Kafka, MariaDB and Redis, with a fresh database, topic, consumer
group and queue), kills or stops one part of it for real (SIGKILL, SIGSTOP),
brings it back, and then checks the guarantee: the read model equals a rebuild
from the event store, no event was applied twice (each account's ledger holds
each stored event once, versions 1..n), and no stored event is missing from the
topic (duplicates there are allowed: publication is at least once).

The Kafka broker down for a while is tests/e2e/test_full_stack.py's
test_with_kafka_down_commands_succeed_and_reach_the_read_model_once_it_is_back.
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from pymongo import MongoClient

from eventstore.transports import envelope
from eventstore.transports.kafka import KafkaTransport
from tests.e2e.test_full_stack import MYSQL_URL, PYTHON, ROOT, manage, redis_url  # noqa: F401 (fixture)
from tests.servers.kafka import TopicSize, kafka_broker  # noqa: F401 (kafka_broker: a fixture)
from tests.servers.mongo import mongo_server  # noqa: F401 (fixture)
from tests.servers.processes import ServerUnavailable, accepts_connections, free_port, spawn, stop, unavailable

pytestmark = pytest.mark.slow

CATCH_UP_SECONDS = 90
HTTP_TIMEOUT_SECONDS = 30
# Bounds a request to a hung database; the 5 s connect timeout should answer it long before.
HUNG_DATABASE_REQUEST_SECONDS = 40
# How the MySQL/MariaDB client reports a server that took the connection and never greeted
# (the connect timed out), and a server that is not there (refused).
CONNECT_TIMED_OUT = re.compile(r"^\(2013, .*reading initial communication packet")
CONNECTION_REFUSED = re.compile(r"^\(200[23], .Can't connect to")


def wait_until(condition: Callable[[], object], seconds: float, failure: Callable[[], str] | str, every: float = 0.2):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(every)
    pytest.fail(failure() if callable(failure) else failure, pytrace=False)


# -- talking to the stack ------------------------------------------------------


class ConnectionDropped(Exception):
    """The server closed the connection without answering."""


class Client:
    """The API over HTTP, as a user's program would call it: (status, JSON body, headers)."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def __call__(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        headers: dict | None = None,
        timeout: float = HTTP_TIMEOUT_SECONDS,
    ) -> tuple[int, dict | None, dict]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None, dict(response.headers)
        except urllib.error.HTTPError as error:
            raw = error.read()
            return error.code, json.loads(raw) if raw else None, dict(error.headers)
        except (ConnectionError, http.client.HTTPException) as error:
            raise ConnectionDropped(repr(error)) from error
        except urllib.error.URLError as error:
            if isinstance(error.reason, ConnectionError):
                raise ConnectionDropped(repr(error.reason)) from error
            raise


def read_database(database_url: str):
    """A new connection to the stack's read database that sees every commit (autocommit)."""
    import MySQLdb
    from dj_database_url import parse

    config = parse(database_url)
    connection = MySQLdb.connect(
        host=config["HOST"],
        port=int(config["PORT"] or 3306),
        user=config["USER"],
        passwd=config["PASSWORD"] or "",
        db=config["NAME"],
        connect_timeout=3,
    )
    connection.autocommit(True)
    return connection


class FaultStack:
    """One stack whose web and worker processes a test can kill and start again."""

    def __init__(
        self,
        tmp: Path,
        *,
        mongo_server: str,  # noqa: F811 (fixture)
        kafka_bootstrap: str,
        database_url: str,
        redis_url: str,  # noqa: F811 (fixture)
        wsgi: str = "techbank_site.wsgi",
    ):
        self.tmp, self.wsgi, self.kafka, self.database_url = tmp, wsgi, kafka_bootstrap, database_url
        mongo_database = f"techbank_faults_{uuid.uuid4().hex[:8]}"
        self.topic = f"techbank.faults.{uuid.uuid4().hex[:8]}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TECHBANK_EVENT_STORE": "mongo",
            "TECHBANK_MONGO_URL": f"{mongo_server}/{mongo_database}?retryWrites=false",
            "TECHBANK_EVENT_BUS": "kafka",
            "TECHBANK_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "TECHBANK_KAFKA_TOPIC": self.topic,
            "TECHBANK_KAFKA_GROUP": f"faults-projections-{uuid.uuid4().hex[:6]}",
            "CELERY_BROKER_URL": redis_url,
            "TECHBANK_CELERY_QUEUE": f"techbank-faults-{uuid.uuid4().hex[:8]}",
            "TECHBANK_SECRET_KEY": "faults-only-" + uuid.uuid4().hex,
            "DJANGO_SETTINGS_MODULE": "techbank_site.settings",
        }
        self.mongo = MongoClient(self.env["TECHBANK_MONGO_URL"], uuidRepresentation="standard")[mongo_database]
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.worker_starts = 0
        self.client: Client | None = None

    def prepare(self) -> None:
        started = time.monotonic()
        made = manage(
            self.env,
            "shell",
            "-v0",
            "-c",
            (
                "from django.contrib.auth import get_user_model\n"
                "from django.contrib.auth.models import Group\n"
                "from django.core.management import call_command\n"
                "from rest_framework.authtoken.models import Token\n"
                "call_command('migrate', interactive=False, verbosity=0)\n"
                "user = get_user_model().objects.create_user('faults-teller')\n"
                "user.groups.add(Group.objects.get(name='Account manager'))  # made by the migrations\n"
                "print(Token.objects.create(user=user).key)"
            ),
        )
        assert made.returncode == 0, made.stderr
        self.token = made.stdout.strip().splitlines()[-1]
        print(f"database migrated, user made in {time.monotonic() - started:.1f} s")

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        return spawn(args, self.tmp / log_name, cwd=ROOT, env=self.env)

    def start_web(self) -> None:
        port = free_port()
        self.web = self._spawn(
            [PYTHON, "-m", "gunicorn", self.wsgi, "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4"],
            "web.log",
        )
        wait_until(lambda: accepts_connections(port) or self.web.poll() is not None, 60, "gunicorn did not start")
        assert self.web.poll() is None, self.logs()
        self.client = Client(f"http://127.0.0.1:{port}", self.token)

    def start_worker(self) -> None:
        self.worker_starts += 1
        self.worker = self._spawn(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "techbank_site",
                "worker",
                "-B",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--schedule",
                str(self.tmp / f"beat-schedule-{self.worker_starts}"),
            ],
            f"worker-{self.worker_starts}.log",
        )

    def freeze_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGSTOP)

    def thaw_worker(self) -> None:
        os.killpg(self.worker.pid, signal.SIGCONT)

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole process group (main process, pool, beat): a crash, no cleanup."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)
        self.worker = None

    def close(self) -> None:
        for process in (self.worker, self.web):
            if process is not None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
                stop(process)
        self.mongo.client.close()
        self._forget_queue()
        # Every process this stack started is gone, children (gunicorn workers, Celery's pool and beat) included.
        wait_until(
            lambda: not self.leftover_processes(),
            10,
            lambda: f"processes outlived their stack: {self.leftover_processes()}",
        )

    def leftover_processes(self) -> list[int]:
        """Live processes with this stack's environment (its topic is unique), whatever their group."""
        marker = f"TECHBANK_KAFKA_TOPIC={self.topic}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if marker in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
                except OSError:  # gone meanwhile, or not ours to read
                    pass
        return found

    def _forget_queue(self) -> None:
        """Drop what Celery left in the shared Redis under this stack's queue (beat runs, relay nudges)."""
        import redis

        queue = self.env["TECHBANK_CELERY_QUEUE"]
        client = redis.Redis.from_url(self.env["CELERY_BROKER_URL"], socket_connect_timeout=2)
        try:
            client.delete(
                queue,
                f"_kombu.binding.{queue}",
                f"_kombu.binding_permanent.{queue}",
                f"techbank:relay-outbox:{self.topic}",
            )
            # Messages a killed worker had taken but not acknowledged: kombu would put them back in the
            # queue an hour later (its visibility timeout), for nobody. Each is [message, exchange, queue].
            for tag, entry in client.hscan_iter("unacked"):
                with suppress(ValueError, TypeError, IndexError):
                    if json.loads(entry)[2] == queue:
                        client.hdel("unacked", tag)
                        client.zrem("unacked_index", tag)
        finally:
            client.close()

    def web_log_size(self) -> int:
        return (self.tmp / "web.log").stat().st_size

    def database_unavailable_reasons(self, *, since: int) -> list[str]:
        """What the web process logged for each 503 it answered after byte `since` of its log."""
        with open(self.tmp / "web.log", "rb") as log:
            log.seek(since)
            text = log.read().decode(errors="replace")
        return re.findall(r"database unavailable: (.*)", text)

    def worker_logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker-*.log")))

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in sorted(self.tmp.glob("*.log"))
        )

    # -- what each store holds --

    def stored_events(self) -> dict[str, dict[int, uuid.UUID]]:
        """The event store: account -> {version: event_id}."""
        stored = defaultdict(dict)
        for doc in self.mongo["event_store"].find({}, {"stream_id": 1, "version": 1, "event_id": 1}):
            assert doc["version"] not in stored[doc["stream_id"]], doc
            stored[doc["stream_id"]][doc["version"]] = doc["event_id"]
        return dict(stored)

    def outbox_size(self) -> int:
        return self.mongo["event_store_outbox"].count_documents({})

    def projected_versions(self) -> dict[str, int]:
        return {account: row[5] for account, row in self.summaries().items()}

    def summaries(self) -> dict[str, tuple]:
        connection = read_database(self.database_url)
        try:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT id, holder, account_type, balance, status, version, opened_at, closed_at"
                " FROM projections_accountsummary ORDER BY id"
            )
            return {str(uuid.UUID(row[0])): row for row in cursor.fetchall()}
        finally:
            connection.close()

    def other_read_database_connections(self) -> int:
        """Connections to the stack's read database but the one asking (the server's process list)."""
        connection = read_database(self.database_url)
        try:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND ID <> CONNECTION_ID()"
            )
            return cursor.fetchone()[0]
        finally:
            connection.close()

    def ledger(self) -> list[tuple]:
        """Every ledger row but its surrogate key.

        (account, version, event_id, kind, amount, balance_after, occurred_at)"""
        connection = read_database(self.database_url)
        try:
            cursor = connection.cursor()
            cursor.execute(
                "SELECT account_id, version, event_id, kind, amount, balance_after, occurred_at"
                " FROM projections_ledgerentry ORDER BY account_id, version, id"
            )
            return [(str(uuid.UUID(row[0])), row[1], uuid.UUID(row[2]), *row[3:]) for row in cursor.fetchall()]
        finally:
            connection.close()

    def topic_events(self) -> list[tuple[str, int, uuid.UUID]]:
        """Every message on the topic, from the beginning to its end: (key's account, version, event_id)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=self.kafka, group_id=None, enable_auto_commit=False)
        try:
            partitions = [
                TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic) or ())
            ]
            assert partitions, f"topic {self.topic} does not exist"
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            end = consumer.end_offsets(partitions)
            events = []
            deadline = time.monotonic() + 60
            while any(consumer.position(p) < end[p] for p in partitions):
                assert time.monotonic() < deadline, f"could not read the topic to its end {end}"
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        event = envelope.decode(record.value)
                        assert record.key.decode() == event.stream_id
                        events.append((event.stream_id, event.version, event.event_id))
            return events
        finally:
            consumer.close()


@contextmanager
def fault_stack(tmp: Path, *, start_worker: bool = True, **servers):
    tmp = tmp / uuid.uuid4().hex[:8]  # logs and beat schedules of its own, whoever else runs these tests
    tmp.mkdir()
    stack = FaultStack(tmp, **servers)
    try:
        stack.prepare()
        stack.start_web()
        if start_worker:
            stack.start_worker()
        yield stack
    finally:
        stack.close()


@pytest.fixture
def shared_read_database():
    """A fresh database on the machine's MariaDB/MySQL server (TECHBANK_TEST_MYSQL_URL), dropped after."""
    try:
        import MySQLdb
        from dj_database_url import parse

        server = parse(MYSQL_URL)
        connection = MySQLdb.connect(
            host=server["HOST"],
            port=int(server["PORT"] or 3306),
            user=server["USER"],
            passwd=server["PASSWORD"] or "",
            connect_timeout=3,
        )
    except Exception as error:  # noqa: BLE001 - reported in the skip/fail reason
        unavailable(f"MariaDB/MySQL not reachable at {MYSQL_URL}: {error}")
    name = f"techbank_faults_{uuid.uuid4().hex[:10]}"
    connection.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    try:
        yield f"{MYSQL_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@pytest.fixture
def servers(mongo_server, kafka_broker, redis_url, shared_read_database):  # noqa: F811
    return {
        "mongo_server": mongo_server,
        "kafka_bootstrap": kafka_broker,
        "redis_url": redis_url,
        "database_url": shared_read_database,
    }


# -- what every test ends with ---------------------------------------------------


def issue_commands(client: Client, *, accounts: int, deposits_each: int) -> dict[str, int]:
    """Open `accounts` accounts and deposit into each `deposits_each` times, 8 requests at a time.

    Returns the versions by account."""

    def open_account(n: int) -> str:
        status, body, _ = client(
            "POST",
            "/api/accounts/",
            {"holder": f"Faulty holder {n}", "account_type": "SAVINGS", "opening_balance": "100.00"},
        )
        assert status == 201, body
        return body["id"]

    def deposit(account_id: str) -> None:
        status, body, _ = client("POST", f"/api/accounts/{account_id}/deposits", {"amount": "1.25"})
        assert status == 200, body

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(open_account, range(accounts)))
        list(pool.map(deposit, [account_id for account_id in ids for _ in range(deposits_each)]))
    print(f"{accounts * (1 + deposits_each)} commands in {time.monotonic() - started:.1f} s")
    return dict.fromkeys(ids, 1 + deposits_each)


def assert_nothing_lost_or_doubled(stack: FaultStack) -> dict:
    """Wait for the read model to catch up with the event store, then check the guarantee; returns counts."""
    started = time.monotonic()
    stored = stack.stored_events()
    for account, versions in stored.items():
        assert sorted(versions) == list(range(1, len(versions) + 1)), f"the store itself has a gap: {account}"
    expected_versions = {account: len(versions) for account, versions in stored.items()}
    wait_until(
        lambda: stack.projected_versions() == expected_versions,
        CATCH_UP_SECONDS,
        lambda: f"the read model did not catch up: {stack.projected_versions()} != {expected_versions}\n{stack.logs()}",
    )
    caught_up = time.monotonic()

    # No stored event is missing from the topic; some may be there twice (at least once).
    on_topic = stack.topic_events()
    topic_by_account = defaultdict(set)
    for account, version, event_id in on_topic:
        topic_by_account[account].add((version, event_id))
    assert dict(topic_by_account) == {account: set(versions.items()) for account, versions in stored.items()}

    # No event applied twice, none missing: each account's ledger is its stream, versions 1..n, once each.
    ledger_by_account = defaultdict(list)
    for account, version, event_id, *_ in stack.ledger():
        ledger_by_account[account].append((version, event_id))
    assert dict(ledger_by_account) == {account: sorted(versions.items()) for account, versions in stored.items()}

    # The read model equals a rebuild from the event store.
    verified = manage(stack.env, "verify_read_model")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    summaries, ledger = stack.summaries(), stack.ledger()
    rebuilt = manage(stack.env, "rebuild_read_model", "--no-progress")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"replayed {sum(expected_versions.values())} events into {len(stored)} accounts" in rebuilt.stdout, (
        rebuilt.stdout
    )
    assert stack.summaries() == summaries
    assert stack.ledger() == ledger
    print(f"caught up in {caught_up - started:.1f} s, checked in {time.monotonic() - caught_up:.1f} s")
    return {
        "stored": sum(expected_versions.values()),
        "on_topic": len(on_topic),
        "duplicates_on_topic": len(on_topic) - sum(expected_versions.values()),
    }


# -- 1. the web process dies right after storing ---------------------------------


def answer_to_retries(call: Callable[[], tuple[int, dict | None, dict]], seconds: float = 90):
    """Retry as a careful client does: after a dropped connection, and while the first attempt's key is held."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            status, body, headers = call()
        except ConnectionDropped:
            status, body, headers = None, None, {}
        in_progress = status == 409 and (body or {}).get("code") == "idempotency_request_in_progress"
        if status is not None and not in_progress:
            return status, body, headers
        assert time.monotonic() < deadline, f"still no answer after {seconds} s: {status} {body}"
        time.sleep(0.5)


def test_a_web_process_killed_right_after_storing_loses_nothing_and_the_retry_has_no_second_effect(tmp_path, servers):
    crash = {"X-Test-Crash-After-Store": "1"}
    with fault_stack(tmp_path, wsgi="tests.e2e.crashing_wsgi", **servers) as stack:
        client = stack.client
        status, account, _ = client(
            "POST", "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"}
        )
        assert status == 201, account
        deposits = f"/api/accounts/{account['id']}/deposits"
        deposit_key = {"Idempotency-Key": f"deposit-{uuid.uuid4()}"}
        opening_key = {"Idempotency-Key": f"opening-{uuid.uuid4()}"}
        opening = {"holder": "Grace", "account_type": "CURRENT", "opening_balance": "7.00"}

        # The worker dies once the events are stored: the client gets no answer at all.
        with pytest.raises(ConnectionDropped):
            client("POST", deposits, {"amount": "25.00"}, headers={**deposit_key, **crash})
        with pytest.raises(ConnectionDropped):
            client("POST", "/api/accounts/", opening, headers={**opening_key, **crash})
        stored = stack.stored_events()
        assert sorted(stored[account["id"]]) == [1, 2]  # the deposit was stored before the crash
        assert len(stored) == 2  # and so was the second opening
        assert stack.web.poll() is None  # gunicorn's master replaced its dead workers

        # The crashed requests never woke the relay; its periodic run takes their events from the outbox.
        grace_id = next(a for a in stored if a != account["id"])
        wait_until(
            lambda: stack.projected_versions() == {account["id"]: 2, grace_id: 1},
            CATCH_UP_SECONDS,
            lambda: f"the stored events did not reach the read model\n{stack.logs()}",
        )

        # Retried with the same key (no crash now): the right answer, and the deposit counted once. Until the
        # dead request's claim on the key lapses (30 s), a retry is told 409 idempotency_request_in_progress.
        status, body, _ = answer_to_retries(lambda: client("POST", deposits, {"amount": "25.00"}, headers=deposit_key))
        assert status == 200, body
        assert (body["balance"], body["version"]) == ("125.00", 2)
        status, grace, _ = answer_to_retries(lambda: client("POST", "/api/accounts/", opening, headers=opening_key))
        assert status == 201, grace
        assert (grace["id"], grace["balance"]) == (grace_id, "7.00")  # the account it opened before dying
        status, body, headers = client("POST", deposits, {"amount": "25.00"}, headers=deposit_key)
        assert (status, body["balance"], headers.get("Idempotent-Replayed")) == (200, "125.00", "true")
        assert {a: sorted(v) for a, v in stack.stored_events().items()} == {account["id"]: [1, 2], grace["id"]: [1]}

        assert_nothing_lost_or_doubled(stack)
        assert client("GET", f"/api/accounts/{account['id']}/")[1]["balance"] == "125.00"
        assert client("GET", f"/api/accounts/{grace['id']}/")[1]["balance"] == "7.00"
        assert stack.logs().count("was sent SIGKILL") == 2  # gunicorn saw both workers die


# -- 2. and 3. the worker dies while relaying, or while projecting ---------------


def test_a_relay_killed_mid_batch_loses_no_event_from_the_topic(tmp_path, servers):
    with fault_stack(tmp_path, start_worker=False, **servers) as stack:
        expected = issue_commands(stack.client, accounts=50, deposits_each=3)
        total = sum(expected.values())
        assert stack.outbox_size() == total == 200  # stored, none published: no worker yet

        # The topic exists beforehand, as it does once a relay has ever run, so the watcher below sees
        # the first messages within milliseconds (asking about a missing topic takes 100 ms).
        KafkaTransport(stack.kafka, stack.topic).ensure_topic()
        topic_size = TopicSize(stack.kafka, stack.topic)
        # Batches of 10: the relay marks each published after Kafka has it, so the kill falls
        # between a send and its mark (a single batch of 200 could finish before the kill lands).
        stack.env["TECHBANK_RELAY_BATCH"] = "10"
        try:
            stack.start_worker()
            seen = wait_until(topic_size, 60, lambda: f"the relay never published\n{stack.logs()}", every=0.005)
            stack.kill_worker()
            on_topic_at_kill = topic_size()
            print(f"saw {seen} on the topic, killed, then {on_topic_at_kill}")
        finally:
            topic_size.close()
        # Killed mid-relay: it had begun sending and had not sent everything. The relay clears an
        # event from the outbox only once the broker has it, so at least the events missing from the
        # topic now are still in the outbox, for the restarted relay (whatever MongoDB was still
        # doing for the dead one: no need to wait for it).
        assert 0 < on_topic_at_kill < total, f"not killed mid-relay: {on_topic_at_kill} of {total} on the topic"

        stack.start_worker()
        counts = assert_nothing_lost_or_doubled(stack)
        assert stack.outbox_size() == 0
        print(
            f"relay killed with {on_topic_at_kill}/{total} on the topic, at least {total - on_topic_at_kill} "
            f"left in the outbox; {counts}"
        )


def test_a_consumer_killed_mid_batch_applies_every_event_once(tmp_path, servers):
    with fault_stack(tmp_path, start_worker=False, **servers) as stack:
        expected = issue_commands(stack.client, accounts=25, deposits_each=3)
        total = sum(expected.values())
        relayed = manage(stack.env, "relay_outbox")  # the whole backlog on the topic before any consumer runs
        assert relayed.returncode == 0 and f"Published {total} event(s)" in relayed.stdout, (
            relayed.stdout + relayed.stderr
        )

        def applied() -> int:
            return sum(stack.projected_versions().values())

        # Each batch is applied in one transaction: small ones, so that the kill falls between commits.
        stack.env["TECHBANK_PROJECTION_BATCH"] = "5"
        stack.start_worker()
        wait_until(
            lambda: applied() > 0, 60, lambda: f"the consumer never applied anything\n{stack.logs()}", every=0.01
        )
        stack.kill_worker()
        # A transaction the dead consumer had sent its COMMIT for may still commit: read what it
        # applied once the server has let go of its connections (rolled back or committed).
        wait_until(
            lambda: stack.other_read_database_connections() == 0,
            60,
            lambda: f"the killed worker's connections stayed open: {stack.other_read_database_connections()}",
        )
        applied_at_kill = applied()
        assert 0 < applied_at_kill < total, f"not killed mid-batch: {applied_at_kill} of {total} applied"

        # The same host, so the same static member ids: the restarted members take the dead ones' partitions.
        stack.start_worker()
        counts = assert_nothing_lost_or_doubled(stack)
        print(f"consumer killed with {applied_at_kill}/{total} applied; {counts}")


# -- 4. the read database stops for a while --------------------------------------


def _server_binary(*names: str) -> str | None:
    for name in names:
        for folder in (None, "/usr/sbin", "/usr/local/sbin", "/usr/libexec"):
            found = shutil.which(name, path=folder) if folder else shutil.which(name)
            if found:
                return found
    return None


class PrivateMariaDB:
    """A MariaDB server of the test's own, to stop and crash: the machine's server is shared, so never touched."""

    def __init__(self, folder: Path):
        self.folder, self.data = folder, folder / "data"
        self.server = _server_binary("mariadbd", "mysqld")
        self.install_db = _server_binary("mariadb-install-db", "mysql_install_db")
        if not (self.server and self.install_db):
            raise ServerUnavailable(
                "MariaDB's mariadbd and mariadb-install-db are not installed (apt-get install mariadb-server)"
            )
        self.as_root = ["--user=root"] if os.geteuid() == 0 else []  # mariadbd refuses to run as root unless told
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.starts = 0

    def install(self) -> None:
        installed = subprocess.run(
            [
                self.install_db,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self.as_root,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if installed.returncode != 0:
            raise ServerUnavailable(f"{self.install_db} failed: {(installed.stdout + installed.stderr)[-2000:]}")

    def _command(self, port: int) -> list[str]:
        return [
            self.server,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--socket={self.folder / 'mariadb.sock'}",
            f"--pid-file={self.folder / 'mariadb.pid'}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            "--innodb-buffer-pool-size=32M",
            "--skip-name-resolve",
            *self.as_root,
        ]

    def _answers(self, port: int) -> bool:
        import MySQLdb

        try:
            MySQLdb.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2).close()
            return True
        except MySQLdb.Error:
            return False

    def start(self) -> None:
        """The first start takes a free port; later ones the same port and data (a restart)."""
        self.starts += 1
        port = free_port() if self.port is None else self.port
        self.process = spawn(self._command(port), self.folder / f"mariadbd-{self.starts}.log")
        deadline = time.monotonic() + 60
        while not (accepts_connections(port) and self._answers(port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.folder / f"mariadbd-{self.starts}.log").read_text(errors="replace")[-2000:]
                stop(self.process)
                raise ServerUnavailable(f"mariadbd did not start on port {port}: {log}")
            time.sleep(0.1)
        self.port = port

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> None:
        import MySQLdb

        connection = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=3)
        try:
            connection.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        finally:
            connection.close()

    def freeze(self) -> None:
        """SIGSTOP: the server hangs; connections are accepted by the kernel and never answered."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def crash(self) -> None:
        """SIGKILL, whether it was frozen or not: a power cut, InnoDB recovers at the next start."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    def close(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen server cannot handle SIGTERM
            stop(self.process)
            self.process = None


@pytest.fixture
def private_mariadb(tmp_path):
    folder = tmp_path / "mariadb"
    folder.mkdir()
    try:
        server = PrivateMariaDB(folder)
        server.install()
        server.start()
    except ServerUnavailable as error:
        unavailable(f"no private MariaDB server for the read-database outage: {error}")
    try:
        yield server
    finally:
        server.close()


def test_with_the_read_database_down_the_api_answers_503_and_the_consumer_catches_up_once_it_is_back(
    tmp_path,
    private_mariadb,
    mongo_server,  # noqa: F811 (fixture)
    kafka_broker,  # noqa: F811 (fixture)
    redis_url,  # noqa: F811
):
    private_mariadb.create_database("techbank")
    with fault_stack(
        tmp_path,
        mongo_server=mongo_server,
        kafka_bootstrap=kafka_broker,
        redis_url=redis_url,
        database_url=private_mariadb.url("techbank"),
    ) as stack:
        client = stack.client
        before = issue_commands(client, accounts=3, deposits_each=1)
        wait_until(
            lambda: stack.projected_versions() == before,
            CATCH_UP_SECONDS,
            lambda: f"the read model did not catch up\n{stack.logs()}",
        )

        # Commands stored while the worker is frozen, so they are still on their way when the database goes.
        stack.freeze_worker()
        pending = issue_commands(client, accounts=4, deposits_each=2)
        for account_id in before:
            assert client("POST", f"/api/accounts/{account_id}/deposits", {"amount": "2.00"})[0] == 200
        assert stack.outbox_size() == sum(pending.values()) + len(before)
        stored = sum(map(len, stack.stored_events().values()))
        some_account = next(iter(before))

        # The database hangs (SIGSTOP). Authentication, permissions and Idempotency-Key records live in
        # it, so no command can be accepted: a 503 in JSON within the 5 s connect timeout, never a hang.
        private_mariadb.freeze()
        for method, path, body in (
            ("POST", "/api/accounts/", {"holder": "Down", "account_type": "SAVINGS", "opening_balance": "1.00"}),
            ("GET", f"/api/accounts/{some_account}/", None),
        ):
            logged = stack.web_log_size()
            # A hang would outlast the client's timeout (an exception here); the answer must come before it.
            status, answer, headers = client(method, path, body, timeout=HUNG_DATABASE_REQUEST_SECONDS)
            assert (status, answer["code"]) == (503, "service_unavailable"), (status, answer)
            assert headers.get("Retry-After") == "5"
            # ... and because the connect to the database timed out, not because of something else.
            reasons = stack.database_unavailable_reasons(since=logged)
            assert reasons and all(CONNECT_TIMED_OUT.search(r) for r in reasons), reasons

        # The worker goes on while the database is still down: the relay does not need it and publishes;
        # the consumer fails on every batch and must not lose one.
        stack.thaw_worker()
        wait_until(lambda: stack.outbox_size() == 0, 60, lambda: f"the relay did not publish\n{stack.logs()}")
        private_mariadb.crash()  # and then the database dies outright: refused at once
        logged = stack.web_log_size()
        status, answer, _ = client("POST", f"/api/accounts/{some_account}/deposits", {"amount": "1.00"})
        assert (status, answer["code"]) == (503, "service_unavailable"), answer
        reasons = stack.database_unavailable_reasons(since=logged)
        assert reasons and all(CONNECTION_REFUSED.search(r) for r in reasons), reasons
        status, answer, _ = client("PUT", f"/api/v1/depositFunds/{some_account}", {"amount": 1})
        assert status == 503 and set(answer) == {"message"}, (status, answer)
        assert sum(map(len, stack.stored_events().values())) == stored  # nothing refused was stored
        wait_until(
            lambda: stack.worker_logs().count("raised unexpected: OperationalError") >= 2,
            60,
            lambda: f"the consumer did not meet the outage twice\n{stack.logs()}",
        )

        private_mariadb.start()  # same port, same data
        status, after, _ = client(
            "POST", "/api/accounts/", {"holder": "After", "account_type": "CURRENT", "opening_balance": "3.00"}
        )
        assert status == 201, after
        counts = assert_nothing_lost_or_doubled(stack)
        assert counts["stored"] == sum(before.values()) + sum(pending.values()) + len(before) + 1
        print(f"read database down: {counts}")

"""The real stack end to end, through HTTP: gunicorn + Celery (worker -B) on
MongoDB (event store), Kafka (bus), MariaDB (read model) and Redis (Celery).

Every part is a real server over a real connection: the MongoDB- and
Kafka-protocol test servers are started here; MariaDB and Redis are the
machine's own. Nothing is faked.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymongo import MongoClient

from eventstore.transports.kafka import KafkaTransport
from tests.servers.kafka import RestartableKafkaBroker, kafka_broker  # noqa: F401 (fixture)
from tests.servers.mongo import mongo_server  # noqa: F401 (fixture)
from tests.servers.processes import free_port, spawn, stop, unavailable

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
# The same variable scripts/test-mariadb.sh reads; its database name is replaced by our own.
MYSQL_URL = os.environ.get("TECHBANK_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/techbank")
REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CATCH_UP_SECONDS = 90


@pytest.fixture(scope="module")
def mysql_server():
    """A connection to the MariaDB/MySQL server, and a maker of throwaway databases on it."""
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
    created = []

    def new_database() -> tuple[str, str]:
        name = f"techbank_e2e_{os.getpid()}_{len(created)}"
        connection.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        created.append(name)
        return f"{MYSQL_URL.rsplit('/', 1)[0]}/{name}", name

    try:
        yield connection, new_database
    finally:
        for name in created:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@pytest.fixture(scope="module")
def redis_url():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except Exception as error:  # noqa: BLE001
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    return REDIS_URL


@contextmanager
def app_process(args: list[str], env: dict, log: Path):
    """An app process (web, worker) in its own group, always stopped with all its children."""
    process = spawn(args, log, cwd=ROOT, env=env)
    try:
        yield process
    finally:
        stop(process)


def manage(env: dict, *args: str, python: str = PYTHON) -> subprocess.CompletedProcess:
    return subprocess.run([python, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def run_module(tool: str) -> list[str]:
    """How the stack starts gunicorn and celery by default: this interpreter's `-m`."""
    return [PYTHON, "-m", tool]


class Http:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


@contextmanager
def running_stack(
    tmp: Path,
    *,
    mongo_server: str,  # noqa: F811 (fixture)
    kafka_bootstrap: str,
    mysql_server,
    redis_url: str,
    python: str = PYTHON,
    launcher=run_module,
    environ: dict | None = None,
    mongo_database: str | None = None,
    settings: dict | None = None,
):
    """gunicorn and a Celery worker (-B) on the given servers, with a fresh database, topic and queue.

    `python` runs manage.py, `launcher(tool)` is the command that starts gunicorn or celery, and
    `environ` (default: this process's) is the environment the stack's settings are added to,
    `settings` more of them (Kafka's SASL user, say), and `mongo_database` the event store's
    database (default: a fresh name): tests/e2e/test_clean_install.py runs the stack from a
    virtualenv of its own, signed in to every server.
    """
    mysql, new_database = mysql_server
    database_url, mysql_name = new_database()
    mongo_database = mongo_database or f"techbank_e2e_{uuid.uuid4().hex[:8]}"
    topic = f"techbank.e2e.{uuid.uuid4().hex[:8]}"
    env = {
        **(os.environ if environ is None else environ),
        "DATABASE_URL": database_url,
        "TECHBANK_EVENT_STORE": "mongo",
        "TECHBANK_MONGO_URL": f"{mongo_server}/{mongo_database}?retryWrites=false",
        "TECHBANK_EVENT_BUS": "kafka",
        "TECHBANK_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "TECHBANK_KAFKA_TOPIC": topic,
        "TECHBANK_KAFKA_GROUP": f"e2e-projections-{uuid.uuid4().hex[:6]}",
        "CELERY_BROKER_URL": redis_url,
        "TECHBANK_CELERY_QUEUE": f"techbank-e2e-{uuid.uuid4().hex[:8]}",  # runs sharing Redis stay apart
        "TECHBANK_SECRET_KEY": "e2e-only-" + uuid.uuid4().hex,
        "DJANGO_SETTINGS_MODULE": "techbank_site.settings",
        **(settings or {}),
    }
    migrated = manage(env, "migrate", "--no-input", "-v0", python=python)
    assert migrated.returncode == 0, migrated.stderr
    made = manage(
        env,
        "shell",
        "-v0",
        "-c",
        (
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.models import Group\n"
            "from rest_framework.authtoken.models import Token\n"
            "user = get_user_model().objects.create_user('e2e-teller')\n"
            "user.groups.add(Group.objects.get(name='Account manager'))  # made by the migrations\n"
            "print(Token.objects.create(user=user).key)"
        ),
        python=python,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    port = free_port()
    web = [
        *launcher("gunicorn"),
        "techbank_site.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "2",
        "--threads",
        "4",
    ]
    worker = [
        *launcher("celery"),
        "-A",
        "techbank_site",
        "worker",
        "-B",
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--schedule",
        str(tmp / "beat-schedule"),
    ]
    with (
        app_process(web, env, tmp / "web.log") as web_process,
        app_process(worker, env, tmp / "worker.log") as worker_process,
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        yield {
            "http": Http(f"http://127.0.0.1:{port}", token),
            "env": env,
            "topic": topic,
            "kafka": kafka_bootstrap,
            "mongo": MongoClient(env["TECHBANK_MONGO_URL"])[mongo_database],
            "mysql": mysql,
            "mysql_name": mysql_name,
            "logs": tmp,
            "web": web_process,
            "worker": worker_process,
        }


@pytest.fixture(scope="module")
def stack(tmp_path_factory, mongo_server, kafka_broker, mysql_server, redis_url):  # noqa: F811
    with running_stack(
        tmp_path_factory.mktemp("stack"),
        mongo_server=mongo_server,
        kafka_bootstrap=kafka_broker,
        mysql_server=mysql_server,
        redis_url=redis_url,
    ) as running:
        yield running


def read_model(stack) -> list[tuple]:
    cursor = stack["mysql"].cursor()
    cursor.execute(
        "SELECT id, holder, account_type, balance, status, version"
        f" FROM `{stack['mysql_name']}`.projections_accountsummary ORDER BY id"
    )
    stack["mysql"].commit()  # end the read transaction, so the next read sees new commits
    return list(cursor.fetchall())


def projected_versions(stack) -> dict[str, int]:
    return {str(uuid.UUID(row[0])): row[5] for row in read_model(stack)}


def wait_for_read_model(stack, expected: dict[str, int]) -> None:
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while time.monotonic() < deadline:
        if projected_versions(stack) == expected:
            return
        time.sleep(0.5)
    pytest.fail(f"read model did not catch up: {read_model(stack)} != {expected}\n{logs(stack)}")


def topic_versions(stack, expected_count: int) -> dict[str, list[int]]:
    """Every message on the stack's topic, read by a fresh group: versions by key."""
    transport = KafkaTransport(stack["kafka"], stack["topic"])
    subscription = transport.subscribe(f"e2e-check-{uuid.uuid4().hex[:6]}")
    seen = defaultdict(list)
    deadline = time.monotonic() + 30
    try:
        while sum(map(len, seen.values())) < expected_count and time.monotonic() < deadline:
            for delivery in subscription.poll(timeout_ms=500):
                assert delivery.key == delivery.event.stream_id
                seen[delivery.key].append(delivery.event.version)
    finally:
        subscription.close()
        transport.close()
    return dict(seen)


def logs(stack) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(stack["logs"].glob("*.log")))


def test_commands_over_http_reach_mongodb_kafka_and_the_mysql_read_model(stack):
    http = stack["http"]
    accounts = {}
    for n in range(4):
        status, body = http(
            "POST",
            "/api/accounts/",
            {"holder": f"E2E holder {n}", "account_type": "SAVINGS", "opening_balance": "100.00"},
        )
        assert status == 201, body
        accounts[body["id"]] = 1
    ids = list(accounts)
    for n, account_id in enumerate(ids):
        assert http("POST", f"/api/accounts/{account_id}/deposits", {"amount": f"{n + 1}.25"})[0] == 200
        assert http("POST", f"/api/accounts/{account_id}/withdrawals", {"amount": "50.00"})[0] == 200
        accounts[account_id] += 2
    status, _ = http("PUT", f"/api/v1/depositFunds/{ids[0]}", {"amount": 10.5})
    assert status == 200
    accounts[ids[0]] += 1
    assert http("POST", f"/api/accounts/{ids[1]}/withdrawals", {"amount": "1000.00"})[0] == 409
    assert http("POST", f"/api/accounts/{ids[3]}/close")[0] == 200
    accounts[ids[3]] += 1

    # The events are in MongoDB, versioned 1..n per account.
    stored = defaultdict(list)
    for doc in stack["mongo"]["event_store"].find({}, {"stream_id": 1, "version": 1}):
        stored[doc["stream_id"]].append(doc["version"])
    assert {k: sorted(v) for k, v in stored.items()} == {k: list(range(1, n + 1)) for k, n in accounts.items()}

    # The MySQL read model catches up through Kafka and the Celery-run consumer.
    wait_for_read_model(stack, accounts)
    status, body = http("GET", f"/api/accounts/{ids[0]}/")
    assert body["balance"] == "61.75" and body["version"] == 4
    assert http("GET", "/api/v1/bankAccountLookup/byId/" + ids[3])[0] == 204  # closed

    # Every event is on the one topic, keyed by its account, in version order.
    assert topic_versions(stack, sum(accounts.values())) == {k: list(range(1, n + 1)) for k, n in accounts.items()}

    # The read model equals a rebuild from the event store.
    verified = manage(stack["env"], "verify_read_model")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    before = read_model(stack)
    rebuilt = manage(stack["env"], "rebuild_read_model", "--no-progress")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert f"replayed {sum(accounts.values())} events into 4 accounts" in rebuilt.stdout
    assert read_model(stack) == before


def test_a_rebuild_started_through_the_api_runs_on_the_worker_while_commands_go_on(stack):
    http = stack["http"]
    expected = projected_versions(stack)  # what earlier tests left
    status, opened = http(
        "POST", "/api/accounts/", {"holder": "Rebuilt", "account_type": "SAVINGS", "opening_balance": "7.00"}
    )
    assert status == 201
    expected[opened["id"]] = 1
    wait_for_read_model(stack, expected)

    status, job = http("POST", "/api/rebuilds/")
    assert status == 202, job
    assert http("POST", f"/api/accounts/{opened['id']}/deposits", {"amount": "1.00"})[0] == 200  # the bank goes on
    expected[opened["id"]] = 2
    deadline = time.monotonic() + CATCH_UP_SECONDS  # bounds a hang; the Celery worker runs the job
    while job["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.5)
        status, job = http("GET", f"/api/rebuilds/{job['id']}")
        assert status == 200, job
    assert (job["status"], job["error"], job["accounts"]) == ("SUCCEEDED", "", len(expected)), f"{job}\n{logs(stack)}"
    wait_for_read_model(stack, expected)
    verified = manage(stack["env"], "verify_read_model")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_with_kafka_down_commands_succeed_and_reach_the_read_model_once_it_is_back(
    tmp_path,
    mongo_server,  # noqa: F811 (fixture)
    mysql_server,
    redis_url,
):
    (tmp_path / "kafka").mkdir()
    broker = RestartableKafkaBroker(tmp_path / "kafka")
    broker.start()
    try:
        with running_stack(
            tmp_path,
            mongo_server=mongo_server,
            kafka_bootstrap=broker.bootstrap,
            mysql_server=mysql_server,
            redis_url=redis_url,
        ) as stack:
            http = stack["http"]
            status, first = http(
                "POST", "/api/accounts/", {"holder": "Before", "account_type": "CURRENT", "opening_balance": "10.00"}
            )
            assert status == 201
            wait_for_read_model(stack, {first["id"]: 1})

            broker.stop()
            for _ in range(3):
                status, body = http("POST", f"/api/accounts/{first['id']}/deposits", {"amount": "1.00"})
                assert status == 200, body
            status, second = http(
                "POST", "/api/accounts/", {"holder": "During", "account_type": "SAVINGS", "opening_balance": "5.00"}
            )
            assert status == 201
            assert stack["mongo"]["event_store_outbox"].count_documents({}) == 4  # stored, waiting
            assert projected_versions(stack) == {first["id"]: 1}

            broker.start()
            wait_for_read_model(stack, {first["id"]: 4, second["id"]: 1})
            assert http("GET", f"/api/accounts/{first['id']}/")[1]["balance"] == "13.00"
            assert topic_versions(stack, 5) == {first["id"]: [1, 2, 3, 4], second["id"]: [1]}
            assert stack["mongo"]["event_store_outbox"].count_documents({}) == 0
            verified = manage(stack["env"], "verify_read_model")
            assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        broker.stop()

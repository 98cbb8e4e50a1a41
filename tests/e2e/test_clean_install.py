"""A clean install, as a new user makes one: a fresh virtualenv with nothing but
requirements.txt (`make install`) and requirements-mysql.txt
(`scripts/install-mysqlclient.sh`), then the full stack's processes from it,
with the README's full-stack settings, on real servers: the MongoDB- and
Kafka-protocol test servers, MariaDB and Redis. As docker-compose.yml runs it,
the app signs in to every one: a user of its own on MongoDB (SecantusDB with
--auth) and on MariaDB (not root, rights on its database only), a password on
Redis (a private redis-server with --requirepass), SASL/PLAIN on Kafka.

The test suite's own virtualenv holds more (pytest and its dependencies), so a
package the product needs but does not list passes there unseen: `packaging`,
which kombu's Redis transport imports, once killed the Celery worker at start
on every clean install and in the Docker image. Here only the product's files
are installed. pip uses its cache, so this takes about a minute after the first run.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.test_full_stack import (  # noqa: F401 (fixtures)
    ROOT,
    app_process,
    logs,
    mysql_server,
    projected_versions,
    running_stack,
)
from tests.servers.kafka import kafka_broker  # noqa: F401 (fixture)
from tests.servers.mongo import running_mongo_server_with_user
from tests.servers.processes import ServerUnavailable, unavailable
from tests.servers.redis import redis_requiring

pytestmark = pytest.mark.slow

INSTALL_SECONDS = 900  # bounds a hang; from pip's cache it takes about a minute
CATCH_UP_SECONDS = 90
STOP_SECONDS = 60  # a worker stops its companions, each finishing its batch, within 15 s
PASSWORD = "cleaninstall" + uuid.uuid4().hex  # letters and digits, as the README asks
APP_USER = "techbank"
MONGO_DATABASE = "techbank_clean_install"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(*filenames: str) -> dict[str, str]:
    pins = {}
    for filename in filenames:
        for line in (ROOT / filename).read_text().splitlines():
            if match := PIN.match(line.strip()):
                pins[_canonical(match[1])] = match[2]
    return pins


def _clean_environ(venv: Path) -> dict[str, str]:
    """This process's environment, but nothing that would let the test suite's packages in."""
    env = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(command: list, env: dict, what: str) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS
    )
    assert result.returncode == 0, (
        f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory):
    """A virtualenv made by the README's steps: `make install`, then scripts/install-mysqlclient.sh."""
    if not shutil.which("make"):
        unavailable("make is not installed")
    has_headers = (
        any(subprocess.run(["pkg-config", "--exists", name]).returncode == 0 for name in ("mysqlclient", "libmariadb"))
        if shutil.which("pkg-config")
        else False
    )
    if not has_headers:
        unavailable("no MySQL/MariaDB client headers to build mysqlclient with: run scripts/install-mysqlclient.sh")
    venv = tmp_path_factory.mktemp("clean-install") / "venv"
    env = _clean_environ(venv)
    # The base interpreter, not the test suite's virtualenv: a venv made from it knows nothing of its packages.
    base_python = getattr(sys, "_base_executable", sys.executable)
    _run(["make", "--no-print-directory", "install", f"VENV={venv}", f"PYTHON={base_python}"], env, "make install")
    _run([ROOT / "scripts" / "install-mysqlclient.sh", venv], env, "scripts/install-mysqlclient.sh")
    yield venv
    shutil.rmtree(venv, ignore_errors=True)  # some 200 MB; pytest would keep it with its last runs' temp dirs


@pytest.fixture(scope="module")
def redis_with_password():
    """A private Redis that wants PASSWORD; its URL with the password, as CELERY_BROKER_URL carries it."""
    for url in redis_requiring(PASSWORD):
        yield url.replace("redis://", f"redis://:{PASSWORD}@") + "/0"


@pytest.fixture(scope="module")
def mongo_with_user():
    """A MongoDB-protocol server with --auth, and the app's user on MONGO_DATABASE, in the URL."""
    server = running_mongo_server_with_user(APP_USER, PASSWORD, MONGO_DATABASE)
    try:
        url = server.__enter__()
    except ServerUnavailable as error:
        unavailable(f"no MongoDB test server: {error}")
    try:
        yield url.replace("mongodb://", f"mongodb://{APP_USER}:{PASSWORD}@")
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def mysql_as_app_user(mysql_server):  # noqa: F811
    """As mysql_server, but each new database is the app's: used by a user who may touch only it."""
    connection, new_database = mysql_server
    user = f"techbank_app_{os.getpid()}"
    connection.cursor().execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{PASSWORD}'")

    def new_app_database() -> tuple[str, str]:
        root_url, name = new_database()
        connection.cursor().execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'%'")
        server = urlsplit(root_url)
        return f"mysql://{user}:{PASSWORD}@{server.hostname}:{server.port or 3306}/{name}", name

    try:
        yield connection, new_app_database
    finally:
        connection.cursor().execute(f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_clean_install_is_exactly_the_pinned_set_and_consistent(clean_venv):
    python = clean_venv / "bin" / "python"
    env = _clean_environ(clean_venv)
    _run([python, "-m", "pip", "check"], env, "pip check")
    frozen = _run(
        [python, "-m", "pip", "freeze", "--all", "--exclude", "pip", "--exclude", "setuptools", "--exclude", "wheel"],
        env,
        "pip freeze",
    )
    installed = {
        _canonical(name): version
        for name, version in (line.split("==", 1) for line in frozen.splitlines() if "==" in line)
    }
    assert installed == _pins("requirements.txt", "requirements-mysql.txt"), (
        "the clean install differs from the pins: run make lock"
    )


def _wait_until(condition, seconds: float, *, alive: list, stack, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for process in alive:
            if process.poll() is not None:
                pytest.fail(
                    f"{' '.join(map(str, process.args[:5]))} exited ({process.returncode}) "
                    f"while waiting for {what}\n{logs(stack)}"
                )
        if condition():
            return
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds:.0f} s\n{logs(stack)}")


def _stopped_by_sigterm(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)  # to the process only, as `docker stop` or a supervisor does
    return process.wait(STOP_SECONDS)


def test_from_a_clean_install_the_web_app_the_worker_the_relay_and_the_consumer_sign_in_start_and_project(
    clean_venv,
    tmp_path,
    mongo_with_user,
    kafka_broker,  # noqa: F811 (fixture)
    mysql_as_app_user,
    redis_with_password,
):
    bin_dir = clean_venv / "bin"
    python = str(bin_dir / "python")
    kafka_sasl = {  # as docker-compose.yml sets them (noida-db answers SASL/PLAIN, whatever the password)
        "TECHBANK_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "TECHBANK_KAFKA_SASL_MECHANISM": "PLAIN",
        "TECHBANK_KAFKA_USERNAME": APP_USER,
        "TECHBANK_KAFKA_PASSWORD": PASSWORD,
    }
    with running_stack(
        tmp_path,
        mongo_server=mongo_with_user,
        kafka_bootstrap=kafka_broker,
        mysql_server=mysql_as_app_user,
        redis_url=redis_with_password,
        python=python,
        launcher=lambda tool: [str(bin_dir / tool)],
        environ=_clean_environ(clean_venv),
        mongo_database=MONGO_DATABASE,
        settings=kafka_sasl,
    ) as stack:
        http, worker = stack["http"], stack["worker"]

        # The web app (gunicorn) answers, and `celery -A techbank_site worker -B` projects the command.
        status, account = http(
            "POST",
            "/api/accounts/",
            {"holder": "Clean Install", "account_type": "SAVINGS", "opening_balance": "100.00"},
        )
        assert status == 201, account
        _wait_until(
            lambda: projected_versions(stack) == {account["id"]: 1},
            CATCH_UP_SECONDS,
            alive=[stack["web"], worker],
            stack=stack,
            what="the worker to project the opened account",
        )
        assert _stopped_by_sigterm(worker) == 0, logs(stack)

        # With the worker gone, the relay and the consumer on their own, as under another supervisor.
        # A fresh group: the worker's consumer was a static member, whose partitions wait for it.
        manage = [python, str(ROOT / "manage.py")]
        relay_command = [*manage, "relay_outbox", "--follow"]
        consumer_command = [*manage, "run_projection_consumer", "--group", f"clean-{uuid.uuid4().hex[:8]}"]
        with (
            app_process(relay_command, stack["env"], tmp_path / "relay.log") as relay,
            app_process(consumer_command, stack["env"], tmp_path / "consumer.log") as consumer,
        ):
            status, body = http("POST", f"/api/accounts/{account['id']}/deposits", {"amount": "25.50"})
            assert status == 200, body
            _wait_until(
                lambda: projected_versions(stack) == {account["id"]: 2},
                CATCH_UP_SECONDS,
                alive=[relay, consumer],
                stack=stack,
                what="relay_outbox and run_projection_consumer to project the deposit",
            )
            assert http("GET", f"/api/accounts/{account['id']}/")[1]["balance"] == "125.50"
            assert _stopped_by_sigterm(relay) == 0, logs(stack)
            assert _stopped_by_sigterm(consumer) == 0, logs(stack)
        assert "Stopped following the outbox" in (tmp_path / "relay.log").read_text()
        assert "Stopped: applied" in (tmp_path / "consumer.log").read_text()

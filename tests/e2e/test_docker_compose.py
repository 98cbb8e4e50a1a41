"""The container stack (docker-compose.yml, Dockerfile, .dockerignore), checked statically.

No Docker engine is needed or used:
- `test_compose_config_is_valid` and `test_compose_requires_the_secret_key` run the
  Compose implementation(s) found here (the `docker compose` plugin and/or Compose
  v1.29, `docker-compose`; scripts/install-compose-validator.sh installs the
  latter) as `config`, which parses, validates and interpolates the file. Without
  either they skip, except on CI (CI set, and not false or 0), where they fail.
- The other tests read the files with PyYAML / as text and hold them to what the
  test suite runs against: the production backends (MySQL, MongoDB, Kafka), the
  settings' defaults and the environment variables that settings.py reads.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
import pytest
import yaml

from tests.servers.processes import unavailable

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS = ROOT / "techbank_site" / "settings.py"
REQUIREMENTS = ROOT / "requirements.txt"
ENV_EXAMPLE = ROOT / ".env.example"

SERVERS = ("kafka", "mongo", "mysql", "redis")
APP_SERVICES = ("web", "worker")
DOCUMENTED_WORKER_COMMAND = "celery -A techbank_site worker -B"
VALIDATOR_TIMEOUT_SECONDS = 120


# --- helpers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def settings_text() -> str:
    return SETTINGS.read_text()


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def _with_defaults(value: str) -> str:
    """Interpolate as Compose would with an empty environment: ${X:-default} -> default."""

    def replace(match):
        if match["op"] in (":-", "-"):
            return match["arg"]
        if match["op"] in (":?", "?"):
            return f"<required {match['name']}>"
        return ""

    return _INTERPOLATION.sub(replace, str(value))


def _env_names_read_by_settings(text: str) -> set[str]:
    names = set(re.findall(r"""os\.environ\.get\(\s*["']([A-Z0-9_]+)["']""", text))
    names |= set(re.findall(r"""env_flag\(\s*["']([A-Z0-9_]+)["']""", text))
    names |= set(re.findall(r"""dj_database_url\.config\((?:[^)]*?)\benv\s*=\s*["']([A-Z0-9_]+)["']""", text, re.S))
    return names


def _settings_default(text: str, name: str) -> str:
    match = re.search(rf"""os\.environ\.get\(\s*["']{name}["']\s*,\s*["']([^"']*)["']""", text)
    assert match, f"settings.py no longer reads {name} with a literal default"
    return match[1]


def _command_words(command) -> list[str]:
    return command if isinstance(command, list) else str(command).split()


def _compose_commands() -> list[list[str]]:
    """Every Compose implementation that answers here: the docker plugin, then v1."""
    found = []
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            found.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        found.append(["docker-compose"])
    return found


def _hermetic_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would change the interpolation."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TECHBANK_", "MYSQL_", "MONGO_", "KAFKA_", "REDIS_", "COMPOSE_", "DOCKER_"))
        and key not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    env.update(extra)
    return env


def _run_config(command: list[str], env_file: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    # An empty --env-file, so that a developer's own .env changes nothing here.
    return subprocess.run(
        [
            *command,
            "--env-file",
            str(env_file),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=VALIDATOR_TIMEOUT_SECONDS,
    )


def _required_secrets() -> list[str]:
    """The names .env.example leaves empty: the secret key and every password."""
    return re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=$", ENV_EXAMPLE.read_text())


def _test_secrets() -> dict[str, str]:
    return {name: "test" + name.lower().replace("_", "") for name in _required_secrets()}


@pytest.fixture
def compose_commands() -> list[list[str]]:
    commands = _compose_commands()
    if not commands:
        unavailable(
            "no Compose implementation to validate docker-compose.yml with (neither `docker compose` "
            "nor `docker-compose`): run scripts/install-compose-validator.sh"
        )
    return commands


@pytest.fixture
def empty_env_file(tmp_path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


# --- Compose itself ------------------------------------------------------------------


def test_compose_config_is_valid(compose_commands, empty_env_file):
    secrets = _test_secrets()
    env = _hermetic_env(**secrets)
    for command in compose_commands:
        quiet = _run_config(command, empty_env_file, env, "-q")
        assert quiet.returncode == 0, f"`{' '.join(command)} config -q` rejected the file:\n{quiet.stderr}"

        # The interpolated result: the defaults give a DATABASE_URL the settings can use.
        full = _run_config(command, empty_env_file, env)
        assert full.returncode == 0, full.stderr
        resolved = yaml.safe_load(full.stdout)["services"]
        for name in APP_SERVICES:
            app_env = resolved[name]["environment"]
            assert app_env["TECHBANK_SECRET_KEY"] == secrets["TECHBANK_SECRET_KEY"]
            database = dj_database_url.parse(app_env["DATABASE_URL"])
            assert database["ENGINE"] == "django.db.backends.mysql"
            assert (database["HOST"], database["PORT"], database["NAME"]) == ("mysql", 3306, "techbank")
            mysql_env = resolved["mysql"]["environment"]
            assert (database["USER"], database["PASSWORD"]) == (mysql_env["MYSQL_USER"], mysql_env["MYSQL_PASSWORD"])


def test_every_server_asks_for_a_password_and_the_app_signs_in_with_the_one_from_env(compose_commands, empty_env_file):
    secrets = _test_secrets()
    for command in compose_commands:
        full = _run_config(command, empty_env_file, _hermetic_env(**secrets))
        assert full.returncode == 0, full.stderr
        resolved = yaml.safe_load(full.stdout)["services"]
        app = resolved["web"]["environment"]

        # MySQL: the app's own user, never root.
        database = dj_database_url.parse(app["DATABASE_URL"])
        assert database["USER"] != "root" and database["USER"] == resolved["mysql"]["environment"]["MYSQL_USER"]
        assert database["PASSWORD"] == secrets["MYSQL_PASSWORD"]
        assert resolved["mysql"]["environment"]["MYSQL_ROOT_PASSWORD"] == secrets["MYSQL_ROOT_PASSWORD"]

        # Redis: requirepass, and the same password in Celery's URL (and for redis-cli's healthcheck).
        redis = resolved["redis"]
        redis_words = _command_words(redis["command"])
        assert redis_words[redis_words.index("--requirepass") + 1] == secrets["REDIS_PASSWORD"]
        assert redis["environment"]["REDISCLI_AUTH"] == secrets["REDIS_PASSWORD"]
        assert urlsplit(app["CELERY_BROKER_URL"]).password == secrets["REDIS_PASSWORD"]

        # MongoDB: users on (the root user turns --auth on; a replica set with users needs a keyfile),
        # and the app signs in as its own user, whom the healthcheck makes with that password.
        mongo = resolved["mongo"]
        assert mongo["environment"]["MONGO_INITDB_ROOT_PASSWORD"] == secrets["MONGO_ROOT_PASSWORD"]
        assert "--keyFile" in _command_words(mongo["command"])
        mongo_url = urlsplit(app["TECHBANK_MONGO_URL"])
        assert mongo_url.username not in (None, "root") and mongo_url.password == secrets["MONGO_PASSWORD"]
        check = " ".join(mongo["healthcheck"]["test"])
        assert f"createUser({{user: '{mongo_url.username}', pwd: '{secrets['MONGO_PASSWORD']}'" in check
        assert "role: 'readWrite', db: 'techbank'" in check

        # Kafka: every listener a client reaches is SASL, the app's user is in the broker's list.
        kafka = resolved["kafka"]["environment"]
        protocols = dict(pair.split(":") for pair in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        for listener in kafka["KAFKA_ADVERTISED_LISTENERS"].split(","):
            assert protocols[listener.split("://")[0]].startswith("SASL_"), listener
        assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == app["TECHBANK_KAFKA_SASL_MECHANISM"] == "PLAIN"
        jaas = kafka["KAFKA_LISTENER_NAME_CLIENT_PLAIN_SASL_JAAS_CONFIG"]
        assert f'user_{app["TECHBANK_KAFKA_USERNAME"]}="{secrets["KAFKA_PASSWORD"]}"' in jaas
        assert app["TECHBANK_KAFKA_PASSWORD"] == secrets["KAFKA_PASSWORD"]
        assert app["TECHBANK_KAFKA_SECURITY_PROTOCOL"] == protocols["CLIENT"]
        assert f'password="{secrets["KAFKA_ADMIN_PASSWORD"]}"' in jaas


@pytest.mark.parametrize("missing", _required_secrets())
def test_compose_refuses_a_stack_without_each_secret(compose_commands, empty_env_file, missing):
    secrets = {name: value for name, value in _test_secrets().items() if name != missing}
    for command in compose_commands:
        result = _run_config(command, empty_env_file, _hermetic_env(**secrets), "-q")
        assert result.returncode != 0, f"`{' '.join(command)} config` accepted a stack without {missing}"
        assert missing in result.stderr


def test_env_example_lists_the_secret_key_and_a_password_for_every_server():
    assert {
        "TECHBANK_SECRET_KEY",
        "MYSQL_PASSWORD",
        "MYSQL_ROOT_PASSWORD",
        "MONGO_PASSWORD",
        "MONGO_ROOT_PASSWORD",
        "KAFKA_PASSWORD",
        "KAFKA_ADMIN_PASSWORD",
        "REDIS_PASSWORD",
    } <= set(_required_secrets())
    made = subprocess.run([str(ROOT / "scripts" / "make-env.sh")], capture_output=True, text=True, timeout=30)
    values = dict(re.findall(r"(?m)^([A-Z][A-Z0-9_]*)=(.*)$", made.stdout))
    for name in _required_secrets():
        assert re.fullmatch(r"[A-Za-z0-9]{50}", values[name]), (
            f"make-env.sh made no letters-and-digits secret for {name}"
        )


# --- the compose file, read as data --------------------------------------------------


def test_the_file_suits_compose_v1_and_the_compose_spec(compose):
    # `version:` is obsolete in the Compose Specification; `name:` is unknown to Compose v1.29.
    assert "version" not in compose and "name" not in compose
    assert set(SERVERS) | set(APP_SERVICES) | {"adminer"} <= set(compose["services"])


def test_web_and_worker_share_one_environment(compose, services):
    shared = compose["x-app-env"]
    for name in APP_SERVICES:
        assert services[name]["environment"] is shared, f"{name} does not use the x-app-env anchor"


def test_app_environment_selects_the_production_stack(services):
    for name in APP_SERVICES:
        env = {key: _with_defaults(value) for key, value in services[name]["environment"].items()}
        assert env["TECHBANK_EVENT_STORE"] == "mongo"
        assert env["TECHBANK_EVENT_BUS"] == "kafka"
        assert dj_database_url.parse(env["DATABASE_URL"])["ENGINE"] == "django.db.backends.mysql"
        assert env["TECHBANK_DEBUG"].lower() in {"0", "false", "no", "off"}

        mongo_url = urlsplit(env["TECHBANK_MONGO_URL"])
        assert mongo_url.scheme == "mongodb" and (mongo_url.hostname, mongo_url.port) == ("mongo", 27017)
        assert parse_qs(mongo_url.query).get("replicaSet") == ["rs0"], "transactions need the replica set"

        assert env["TECHBANK_KAFKA_BOOTSTRAP"] == "kafka:9092"
        broker = urlsplit(env["CELERY_BROKER_URL"])
        assert (broker.hostname, broker.port) == ("redis", 6379)
        assert {"localhost", "127.0.0.1"} <= set(env["TECHBANK_ALLOWED_HOSTS"].split(","))


def test_the_secret_key_is_required_not_defaulted(compose):
    value = compose["x-app-env"]["TECHBANK_SECRET_KEY"]
    assert re.fullmatch(r"\$\{TECHBANK_SECRET_KEY:\?[^}]+\}", value), value


def test_app_environment_only_sets_what_settings_reads(compose, settings_text):
    read = _env_names_read_by_settings(settings_text)
    # The parser itself: if these go missing, it (not the compose file) is broken.
    assert {"TECHBANK_SECRET_KEY", "TECHBANK_DEBUG", "DATABASE_URL", "TECHBANK_KAFKA_TOPIC"} <= read
    unknown = set(compose["x-app-env"]) - read
    assert not unknown, f"docker-compose.yml sets variables that settings.py never reads: {sorted(unknown)}"


def test_topic_and_group_are_the_settings_defaults(compose, settings_text):
    env = compose["x-app-env"]
    assert env["TECHBANK_KAFKA_TOPIC"] == _settings_default(settings_text, "TECHBANK_KAFKA_TOPIC")
    assert env["TECHBANK_KAFKA_TOPIC"] == "techbank.account-events"
    assert env["TECHBANK_KAFKA_GROUP"] == _settings_default(settings_text, "TECHBANK_KAFKA_GROUP")


def test_images_are_pinned(services):
    for name, service in services.items():
        if "build" in service:
            continue  # built here from the Dockerfile
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.match(r"\d+", tag), f"{name}: {image} is not pinned to a major version"


def test_kafka_is_apache_kafka_in_kraft_mode(services):
    kafka = services["kafka"]
    repository, _, tag = kafka["image"].partition(":")
    assert repository == "apache/kafka"
    assert int(tag.split(".")[0]) >= 4, "Kafka 4 is KRaft only"

    env = {key: str(value) for key, value in kafka["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert voters == [f"{node_id}@kafka:9093"]
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] == "CONTROLLER"
    listeners = set(env["KAFKA_LISTENERS"].split(","))
    assert {"CLIENT://:9092", "CONTROLLER://:9093"} <= listeners
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "CLIENT://kafka:9092"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", f"{key}: a single node cannot hold more replicas"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "the app creates its topic (3 partitions)"
    assert env["KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS"] == "0"


def test_no_zookeeper_anywhere(services):
    for name, service in services.items():
        assert "zookeeper" not in name.lower()
        assert "zookeeper" not in str(service.get("image", "")).lower()
        assert not any("ZOOKEEPER" in key.upper() for key in service.get("environment") or {}), name


def test_mongo_is_a_replica_set_that_initiates_itself(services):
    mongo = services["mongo"]
    assert _command_words(mongo["command"])[:2] == ["--replSet", "rs0"]
    assert "--bind_ip_all" in _command_words(mongo["command"])
    check = " ".join(mongo["healthcheck"]["test"])
    assert "rs.initiate(" in check and "'rs0'" in check and "'mongo:27017'" in check
    assert "isWritablePrimary" in check, "healthy only once this node can take writes"


def test_mysql_matches_what_settings_asks_of_a_real_database(services, settings_text):
    mysql = services["mysql"]
    assert mysql["image"].startswith("mysql:")
    assert mysql["environment"]["MYSQL_DATABASE"] == "techbank"
    command = _command_words(mysql["command"])
    assert "--character-set-server=utf8mb4" in command
    assert '"COLLATION": "utf8mb4_bin"' in settings_text, "settings changed its collation: update docker-compose.yml"
    assert "--collation-server=utf8mb4_bin" in command
    assert "mysqladmin ping" in " ".join(mysql["healthcheck"]["test"])


def test_every_server_has_a_healthcheck(services):
    for name in (*SERVERS, "web"):
        check = services[name].get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]
    assert "kafka-broker-api-versions.sh" in " ".join(services["kafka"]["healthcheck"]["test"])
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/admin/login/" in web_check


def test_apps_wait_for_healthy_servers(services):
    expected = {"web": set(SERVERS), "worker": {*SERVERS, "web"}}
    for name, needs in expected.items():
        depends_on = services[name]["depends_on"]
        assert isinstance(depends_on, dict), f"{name}: depends_on needs the long form (conditions)"
        assert set(depends_on) == needs
        for target, rule in depends_on.items():
            assert rule == {"condition": "service_healthy"}, f"{name} -> {target}: {rule}"


def test_service_healthy_only_on_services_with_a_healthcheck(services):
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        for target, rule in depends_on.items() if isinstance(depends_on, dict) else []:
            assert target in services, f"{name} depends on {target}, which is not a service"
            if rule.get("condition") == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}, which has no healthcheck"


def test_web_migrates_then_serves_with_gunicorn(services):
    web = services["web"]
    script = _command_words(web["command"])[-1]
    migrate, _, serve = script.partition("&&")
    assert migrate.split() == ["python", "manage.py", "migrate", "--no-input"]
    serve = serve.split()
    assert serve[:3] == ["exec", "gunicorn", "techbank_site.wsgi:application"]
    assert serve[serve.index("--bind") + 1] == "0.0.0.0:8000"
    assert (ROOT / "techbank_site" / "wsgi.py").exists()
    assert "8000:8000" in [str(port) for port in web["ports"]]


def test_worker_runs_the_documented_celery_command(services, settings_text):
    assert DOCUMENTED_WORKER_COMMAND in settings_text, "settings.py no longer documents the worker command"
    words = _command_words(services["worker"]["command"])
    assert " ".join(words[:5]) == DOCUMENTED_WORKER_COMMAND
    assert "--loglevel=INFO" in words


def test_app_services_are_built_from_the_dockerfile(services):
    for name in APP_SERVICES:
        assert services[name]["build"] in (".", {"context": "."}), name
    assert services["web"]["image"] == services["worker"]["image"]


def test_servers_keep_their_data_in_named_volumes(compose, services):
    data_dirs = {"kafka": "/var/lib/kafka/data", "mongo": "/data/db", "mysql": "/var/lib/mysql"}
    declared = set(compose.get("volumes") or {})
    for name, path in data_dirs.items():
        mounts = dict(str(volume).split(":")[:2][::-1] for volume in services[name]["volumes"])
        assert mounts.get(path) in declared, f"{name}: {path} is not on a named volume"
    assert str(services["kafka"]["environment"]["KAFKA_LOG_DIRS"]) == data_dirs["kafka"]


# --- Dockerfile and .dockerignore ----------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_builds_in_stages_and_runs_unprivileged():
    instructions = _dockerfile_instructions()
    froms = [argument for keyword, argument in instructions if keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())[1]
    assert base.startswith("python:3.11-slim")
    final_stage = instructions[max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM") :]
    users = [argument for keyword, argument in final_stage if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_the_requirements_and_collects_static_files():
    text = DOCKERFILE.read_text()
    assert "-r requirements.txt -r requirements-mysql.txt" in text
    assert "default-libmysqlclient-dev" in text and "libmariadb3" in text
    assert "TECHBANK_STATIC_ROOT=/app/staticfiles" in text
    assert re.search(r"TECHBANK_SECRET_KEY=\S+\s+.*manage\.py collectstatic --no-input", text, re.S)


def test_the_image_gets_gunicorn_at_the_version_requirements_txt_pins():
    listed = re.search(r"(?im)^gunicorn==(\S+)$", REQUIREMENTS.read_text())
    assert listed, "requirements.txt does not pin gunicorn, which the image serves with"
    assert re.fullmatch(r"\d+\.\d+\.\d+", listed[1])
    text = DOCKERFILE.read_text()
    assert not re.search(r"(?i)gunicorn\s*[=<>~]=|GUNICORN_VERSION", text), "the Dockerfile pins gunicorn by itself"


def test_dockerfile_environment_is_read_by_settings(settings_text):
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    names = set(re.findall(r"\b(TECHBANK_[A-Z0-9_]+)=", text))
    assert names and names <= _env_names_read_by_settings(settings_text)


def test_dockerignore_keeps_local_state_and_secrets_out():
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for required in (
        ".git",
        ".venv",
        "node_modules",
        ".env",
        ".secret_key",
        "db.sqlite3*",
        ".test-db*",
        "**/__pycache__",
        "staticfiles",
    ):
        assert required in patterns, f".dockerignore does not exclude {required}"
    # Never exclude what the image runs.
    for needed in ("manage.py", "techbank_site", "accounts", "eventstore", "projections", "requirements.txt"):
        assert needed not in patterns

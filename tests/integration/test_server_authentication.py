"""The app signs in to every server that asks it to, with the credentials its settings carry.

docker-compose.yml turns authentication on for all of them; here each is tested
against a test server that enforces it, as far as one does:
- Redis: a private redis-server with --requirepass; the password travels in CELERY_BROKER_URL
  (the relay's lock and nudges here; Celery itself in tests/e2e/test_clean_install.py).
- MongoDB: SecantusDB with --auth (SCRAM) and a user who may read and write one database;
  the user travels in TECHBANK_MONGO_URL.
- Kafka: noida-db answers SASL/PLAIN but accepts any password, so this proves that the
  app's clients sign in with the configured mechanism and user, not that a wrong
  password is refused (that rests on Kafka itself and the compose file's test).
- MySQL/MariaDB: tests/e2e/test_clean_install.py runs the whole stack as a user who
  is not root and may touch only its own database.
"""

import uuid
from pathlib import Path

import mongoengine
import pytest
import redis
from pymongo.errors import OperationFailure

from entrypoints.wiring import services
from eventstore.backends.mongo import MongoEventStore
from tests.contract.event_store_contract import new_event, stream
from tests.contract.event_transport_contract import account, group, make_event, receive
from tests.integration.test_relay_lock import UNUSED_TRANSPORT
from tests.servers.kafka import kafka_broker  # noqa: F401  (the session's broker, a pytest fixture)
from tests.servers.mongo import running_mongo_server_with_user
from tests.servers.processes import ServerUnavailable, unavailable
from tests.servers.redis import redis_requiring
from tests.wiring import rewire

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "testonly" + uuid.uuid4().hex  # letters and digits, as the README asks of every password


@pytest.fixture(scope="module")
def redis_requiring_password():
    yield from redis_requiring(PASSWORD)


@pytest.fixture
def broker_url(settings, redis_requiring_password):
    """Sets CELERY_BROKER_URL to the private Redis with the given password (None: without one)."""

    def use(password: str | None) -> None:
        host = redis_requiring_password.removeprefix("redis://")
        settings.CELERY_BROKER_URL = f"redis://:{password}@{host}/0" if password is not None else f"redis://{host}/0"
        settings.TECHBANK_KAFKA_TOPIC = f"techbank-auth-{uuid.uuid4().hex[:8]}"
        rewire()

    yield use
    rewire()


def test_the_relay_lock_and_nudges_work_on_a_redis_that_wants_the_password_the_broker_url_carries(broker_url):
    broker_url(PASSWORD)
    lock = services().relay_lock(UNUSED_TRANSPORT)
    assert lock.acquire(blocking=False)
    lock.release()
    listener = services().relay_nudges.listen()
    try:
        listener.wait(0.05)  # subscribes
        services().relay_nudges.nudge()
        assert listener.wait(5) is True
    finally:
        listener.close()


@pytest.mark.parametrize("password", [None, "not-the-password"])
def test_without_the_right_password_redis_refuses_the_relay(broker_url, password):
    broker_url(password)
    with pytest.raises(redis.AuthenticationError):
        services().relay_lock(UNUSED_TRANSPORT).acquire(blocking=False)
    with pytest.raises(redis.AuthenticationError):
        services().relay_nudges.nudge()


@pytest.fixture(scope="module")
def mongo_requiring_a_user():
    database = f"techbank_auth_{uuid.uuid4().hex[:8]}"
    server = running_mongo_server_with_user("techbank", PASSWORD, database)
    try:
        url = server.__enter__()
    except ServerUnavailable as error:
        unavailable(f"no MongoDB test server: {error}")
    try:
        yield url, database
    finally:
        server.__exit__(None, None, None)


def test_the_event_store_signs_in_with_the_user_in_its_url(mongo_requiring_a_user):
    url, database = mongo_requiring_a_user
    host = url.removeprefix("mongodb://")
    store = MongoEventStore(url=f"mongodb://techbank:{PASSWORD}@{host}/{database}?retryWrites=false", alias="auth-ok")
    try:
        account_stream = stream()
        store.append(account_stream, 0, [new_event(amount="5.00")])
        assert [event.version for event in store.load_stream(account_stream)] == [1]
    finally:
        store.close()


@pytest.mark.parametrize("credentials", ["", "techbank:not-the-password@"])
def test_without_the_right_user_the_event_store_stores_nothing(mongo_requiring_a_user, credentials):
    url, database = mongo_requiring_a_user
    host = url.removeprefix("mongodb://")
    alias = f"auth-refused-{uuid.uuid4().hex[:6]}"
    try:
        with pytest.raises(OperationFailure, match=r"(?i)requires authentication|authentication failed"):  # noqa: PT012 - refused at either step
            # Refused at once (the store makes its indexes as it starts), else at the first append.
            store = MongoEventStore(url=f"mongodb://{credentials}{host}/{database}?retryWrites=false", alias=alias)
            store.append(stream(), 0, [new_event(amount="5.00")])
    finally:
        mongoengine.disconnect(alias=alias)


def test_the_apps_kafka_clients_sign_in_with_sasl_as_the_settings_say(settings, kafka_broker):  # noqa: F811
    settings.TECHBANK_EVENT_BUS = "kafka"
    settings.TECHBANK_KAFKA_BOOTSTRAP = kafka_broker
    settings.TECHBANK_KAFKA_TOPIC = f"techbank-auth-{uuid.uuid4().hex[:8]}"
    settings.TECHBANK_KAFKA_SECURITY_PROTOCOL = "SASL_PLAINTEXT"
    settings.TECHBANK_KAFKA_SASL_MECHANISM = "PLAIN"
    settings.TECHBANK_KAFKA_USERNAME = "techbank"
    settings.TECHBANK_KAFKA_PASSWORD = PASSWORD
    rewire()
    try:
        transport = services().transport
        event = make_event(account())
        transport.send([event])
        subscription = transport.subscribe(group("auth"))
        try:
            [delivery] = receive(subscription, 1)
            assert delivery.event.event_id == event.event_id
            # Every client made the SASL handshake with the configured user (a PLAINTEXT client never does).
            assert subscription._consumer.config["security_protocol"] == "SASL_PLAINTEXT"
            assert subscription._consumer.config["sasl_plain_username"] == "techbank"
            assert transport._producer.config["sasl_mechanism"] == "PLAIN"
        finally:
            subscription.close()
    finally:
        rewire()

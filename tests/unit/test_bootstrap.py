import threading
import time

import pytest
from django.core.exceptions import ImproperlyConfigured

from bootstrap import kafka_authentication
from entrypoints.wiring import services
from tests.wiring import rewire


@pytest.fixture
def slow_to_build_store(settings, monkeypatch):
    """The SQL store, made slow to construct (as a MongoDB connection is), counting how often it is built."""
    from eventstore.backends import django_orm

    built = []

    class SlowStore(django_orm.DjangoEventStore):
        def __init__(self):
            time.sleep(0.05)
            built.append(self)

    settings.TECHBANK_EVENT_STORE = "sql"
    monkeypatch.setattr(django_orm, "DjangoEventStore", SlowStore)
    rewire()
    yield built
    rewire()


def test_threads_asking_for_the_event_store_at_once_all_get_the_one_store_built(slow_to_build_store):
    threads_at_once = 8
    start = threading.Barrier(threads_at_once)
    got = []

    def ask():
        start.wait()
        got.append(services().event_store)

    threads = [threading.Thread(target=ask) for _ in range(threads_at_once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(slow_to_build_store) == 1
    assert len(got) == threads_at_once and all(store is slow_to_build_store[0] for store in got)


@pytest.fixture
def kafka_settings(settings):
    settings.TECHBANK_KAFKA_SECURITY_PROTOCOL = "SASL_PLAINTEXT"
    settings.TECHBANK_KAFKA_SASL_MECHANISM = "SCRAM-SHA-512"
    settings.TECHBANK_KAFKA_USERNAME = "techbank"
    settings.TECHBANK_KAFKA_PASSWORD = "secret"
    return settings


def test_with_sasl_configured_every_kafka_client_gets_the_mechanism_and_the_user(kafka_settings):
    assert kafka_authentication(kafka_settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "techbank",
        "sasl_plain_password": "secret",
    }


def test_plaintext_kafka_needs_no_user(settings):
    settings.TECHBANK_KAFKA_SECURITY_PROTOCOL = "PLAINTEXT"
    assert kafka_authentication(settings) == {}


def test_sasl_without_a_password_is_refused_with_what_to_set(kafka_settings):
    kafka_settings.TECHBANK_KAFKA_PASSWORD = ""
    with pytest.raises(ImproperlyConfigured, match="TECHBANK_KAFKA_USERNAME and TECHBANK_KAFKA_PASSWORD"):
        kafka_authentication(kafka_settings)


@pytest.mark.parametrize(
    "setting, value", [("TECHBANK_KAFKA_SECURITY_PROTOCOL", "SASL"), ("TECHBANK_KAFKA_SASL_MECHANISM", "GSSAPI")]
)
def test_an_unknown_kafka_protocol_or_mechanism_is_refused_with_the_choices(kafka_settings, setting, value):
    setattr(kafka_settings, setting, value)
    with pytest.raises(ImproperlyConfigured, match=f"{setting}='{value}' is not one of"):
        kafka_authentication(kafka_settings)

"""The Kafka bus inside one process: relay to a real broker, and the standalone consumer command."""

import uuid
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from entrypoints.tasks import relay_outbox_task
from entrypoints.wiring import services
from projections.models import AccountSummary, DeadLetter
from tests.servers.kafka import kafka_broker  # noqa: F401  (the session's broker, a pytest fixture)
from tests.wiring import CallOnNudge, rewire

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def kafka_bus(settings, kafka_broker, monkeypatch):  # noqa: F811
    settings.TECHBANK_EVENT_BUS = "kafka"
    settings.TECHBANK_KAFKA_BOOTSTRAP = kafka_broker
    settings.TECHBANK_KAFKA_TOPIC = f"techbank.test.{uuid.uuid4().hex[:8]}"
    # The relay runs in the request's thread when nudged, instead of in a process woken through Redis.
    rewire(relay_nudges=CallOnNudge(relay_outbox_task))
    yield
    services().transport.close()
    rewire()


def test_commands_reach_the_read_model_only_through_the_topic_and_the_consumer_command(api, kafka_bus):
    account = api.post(
        "/api/accounts/", {"holder": "Via Kafka", "account_type": "SAVINGS", "opening_balance": "20.00"}, format="json"
    ).json()
    api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "2.50"}, format="json")
    assert not AccountSummary.objects.filter(id=account["id"]).exists()  # no in-process projection
    assert services().event_store.unpublished() == []  # the relay published both

    out = StringIO()
    call_command("run_projection_consumer", "--until-idle", "3", "--group", f"g-{uuid.uuid4().hex[:6]}", stdout=out)

    summary = AccountSummary.objects.get(id=account["id"])
    assert (summary.balance, summary.version) == (Decimal("22.50"), 2)
    assert "applied 2 events" in out.getvalue()


def test_a_second_consumer_group_replaying_the_topic_changes_nothing(api, kafka_bus):
    account = api.post(
        "/api/accounts/", {"holder": "Twice", "account_type": "CURRENT", "opening_balance": "1.00"}, format="json"
    ).json()
    for group in ("first", "second"):
        call_command(
            "run_projection_consumer",
            "--until-idle",
            "3",
            "--group",
            f"{group}-{uuid.uuid4().hex[:6]}",
            stdout=StringIO(),
        )
    summary = AccountSummary.objects.get(id=account["id"])
    assert (summary.balance, summary.version) == (Decimal("1.00"), 1)
    assert summary.ledger.count() == 1


def test_garbage_on_the_topic_between_good_events_is_dead_lettered_and_the_consumer_moves_on(
    api,
    kafka_bus,
    settings,
    kafka_broker,  # noqa: F811 (fixture)
):
    from kafka import KafkaProducer

    account = api.post(
        "/api/accounts/", {"holder": "Garbage", "account_type": "SAVINGS", "opening_balance": "20.00"}, format="json"
    ).json()["id"]
    producer = KafkaProducer(bootstrap_servers=kafka_broker, acks="all")
    producer.send(settings.TECHBANK_KAFKA_TOPIC, key=account.encode(), value=b"\x00\x01 not an event").get(timeout=10)
    producer.close()
    api.post(
        f"/api/accounts/{account}/deposits", {"amount": "2.50"}, format="json"
    )  # after the garbage, same partition

    out = StringIO()
    call_command("run_projection_consumer", "--until-idle", "3", "--group", f"g-{uuid.uuid4().hex[:6]}", stdout=out)

    summary = AccountSummary.objects.get(id=account)
    assert (summary.balance, summary.version) == (Decimal("22.50"), 2)
    assert "applied 2 events, dead-lettered 1 (1 undecodable); pending dead letters: 1" in out.getvalue()
    letter = DeadLetter.objects.get()
    assert (letter.source, letter.reason_type, letter.offset, letter.message_key) == (
        "kafka",
        "Undecodable",
        1,
        account,
    )
    assert letter.partition is not None and letter.raw_is_base64  # a NUL byte: kept as base64

    # Another group reads the topic from the start: the garbage is seen again, still one row.
    call_command(
        "run_projection_consumer", "--until-idle", "3", "--group", f"g-{uuid.uuid4().hex[:6]}", stdout=StringIO()
    )
    assert DeadLetter.objects.get().attempts == 2
    assert AccountSummary.objects.get(id=account).version == 2

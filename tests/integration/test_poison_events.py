"""Poison events do not stop the line: what cannot be applied goes to the dead-letter table, the rest goes on.

The consumer reads an in-memory topic here (no broker needed); the read model
and the dead-letter table are the real database. The Kafka broker version is
in test_kafka_projection.py, the admin in test_dead_letter_admin.py.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DataError, IntegrityError, OperationalError

from entrypoints import wiring
from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import relay_outbox
from eventstore.store import NewEvent
from eventstore.transports.memory import InMemoryTransport
from projections import projection, projectors
from projections.consumer import consume_batch
from projections.dead_letter_retry import retry_dead_letters
from projections.dead_letters import dead_letter_raw
from projections.models import AccountSummary, DeadLetter, DeadLetterSource, DeadLetterStatus, LedgerEntry
from projections.projection import project_deliveries
from projections.verification import read_model_differences
from tests.deliveries import deliveries_of
from tests.fake_relay_lock import FakeRelayLock
from tests.wiring import rewire

pytestmark = pytest.mark.django_db(transaction=True)


def event(event_type: str, **data) -> NewEvent:
    return NewEvent(uuid.uuid4(), event_type, data, datetime.now(UTC), {"issued_by": "test"})


def opened(balance="10.00") -> NewEvent:
    return event("AccountOpened", holder="Ada", account_type="SAVINGS", opening_balance=balance)


def deposited(amount="1.00") -> NewEvent:
    return event("FundsDeposited", amount=amount)


def frozen() -> NewEvent:
    return event("FundsFrozen", reason="court order")  # a type no projector knows (yet)


class Bus:
    """An event store, its relay and an in-memory topic with one partition, so the order is the append order."""

    def __init__(self):
        self.store = InMemoryEventStore()
        self.transport = InMemoryTransport(partitions=1)
        self.group = "projections"
        self.relay_lock = FakeRelayLock()
        assert self.relay_lock.acquire(blocking=False)  # the only relay here

    def append(self, account: str, *events: NewEvent):
        current = len(self.store.load_stream(account))
        stored = self.store.append(account, current, list(events))
        relay_outbox(event_store=self.store, transport=self.transport, lock=self.relay_lock)
        return stored

    def consume(self, group: str | None = None):
        member = self.transport.subscribe(group or self.group)
        try:
            return consume_batch(subscription=member, event_store=self.store, timeout_ms=10)
        finally:
            member.close()


@pytest.fixture
def bus() -> Bus:
    return Bus()


def summary(account: str) -> AccountSummary | None:
    return AccountSummary.objects.filter(id=account).first()


def letter(stored_event) -> DeadLetter:
    return DeadLetter.objects.get(event_id=stored_event.event_id)


def test_an_unknown_event_type_is_dead_lettered_and_the_good_events_around_it_are_applied(bus):
    poisoned, healthy = str(uuid.uuid4()), str(uuid.uuid4())
    _, _, v3, v4 = bus.append(poisoned, opened("10.00"), deposited("5.00"), frozen(), deposited("1.00"))
    bus.append(healthy, opened("3.00"), deposited("4.00"))

    outcome = bus.consume()

    assert (outcome.received, outcome.applied, outcome.dead_lettered, outcome.undecodable) == (6, 4, 2, 0)
    assert (summary(poisoned).version, summary(poisoned).balance) == (2, Decimal("15.00"))  # up to the poison
    assert (summary(healthy).version, summary(healthy).balance) == (2, Decimal("7.00"))  # another account: untouched
    poison = letter(v3)
    assert (poison.reason_type, poison.status, poison.attempts, poison.source) == (
        "UnknownEventType",
        "PENDING",
        1,
        "kafka",
    )
    assert "FundsFrozen" in poison.reason
    assert (poison.event_type, poison.version, str(poison.account_id)) == ("FundsFrozen", 3, poisoned)
    assert (poison.partition, poison.offset) == (0, 2)
    blocked = letter(v4)  # applying v4 without v3 would leave a hole in the versions
    assert blocked.reason_type == "BlockedBehindPoison" and str(v3.event_id) in blocked.reason
    assert bus.consume().received == 0  # the offsets were committed: the line moved on


def test_a_corrupt_amount_is_dead_lettered_with_the_reason(bus):
    account = str(uuid.uuid4())
    _, bad = bus.append(account, opened("10.00"), deposited("ten euros"))
    outcome = bus.consume()
    assert (outcome.applied, outcome.dead_lettered) == (1, 1)
    poison = letter(bad)
    assert poison.reason_type == "CorruptEvent" and "'ten euros' is not a decimal amount" in poison.reason
    assert summary(account).balance == Decimal("10.00")


@pytest.mark.parametrize("data", [{}, {"amount": 1.5}, {"amount": "NaN"}, {"amount": "1.001"}, {"amount": None}])
def test_a_missing_or_impossible_amount_is_corrupt(bus, data):
    account = str(uuid.uuid4())
    _, bad = bus.append(account, opened(), event("FundsWithdrawn", **data))
    assert bus.consume().dead_lettered == 1
    assert letter(bad).reason_type == "CorruptEvent"
    assert summary(account).version == 1


def test_undecodable_messages_are_dead_lettered_raw_and_the_consumer_moves_on(bus):
    account = str(uuid.uuid4())
    bus.append(account, opened("1.00"))
    bus.transport.send_raw(account.encode(), b"\xff\xfe not even text")
    bus.transport.send_raw(b"k", b'{"event_id": "x", "type": "FundsDeposited", "account_id": "%s"}' % account.encode())
    bus.append(account, deposited("2.00"))

    outcome = bus.consume()

    assert (outcome.received, outcome.applied, outcome.undecodable, outcome.dead_lettered) == (4, 2, 2, 2)
    assert summary(account).balance == Decimal("3.00")
    binary, envelope_like = DeadLetter.objects.order_by("offset")
    assert (binary.reason_type, binary.raw_is_base64, binary.offset, binary.message_key) == (
        "Undecodable",
        True,
        1,
        account,
    )
    assert dead_letter_raw(binary) == b"\xff\xfe not even text"
    assert str(binary.account_id) == account  # from the key: staff can search by account
    assert not envelope_like.raw_is_base64 and envelope_like.raw_message.startswith('{"event_id": "x"')
    assert envelope_like.event_type == "FundsDeposited" and envelope_like.event_id is None
    assert "not a TechBank event envelope" in envelope_like.reason


def test_the_same_poison_delivered_again_stays_one_row_counting_another_attempt(bus):
    account = str(uuid.uuid4())
    _, poison_event, blocked_event = bus.append(account, opened(), frozen(), deposited())
    bus.transport.send_raw(b"k", b"garbage")
    bus.consume(group="first")
    assert DeadLetter.objects.count() == 3

    outcome = bus.consume(group="second")  # a second group replays the topic: everything comes again

    assert outcome.dead_lettered == 3
    assert DeadLetter.objects.count() == 3
    assert sorted(DeadLetter.objects.values_list("attempts", flat=True)) == [2, 2, 2]
    assert letter(poison_event).reason_type == "UnknownEventType"
    assert letter(blocked_event).reason_type == "BlockedBehindPoison"


def test_events_of_a_poisoned_account_in_later_batches_wait_behind_the_poison_too(bus):
    account, other = str(uuid.uuid4()), str(uuid.uuid4())
    _, poison_event = bus.append(account, opened(), frozen())
    bus.consume()
    (later,) = bus.append(account, deposited())
    bus.append(other, opened())

    outcome = bus.consume()

    assert (outcome.applied, outcome.dead_lettered) == (1, 1)
    assert letter(later).reason_type == "BlockedBehindPoison" and str(poison_event.event_id) in letter(later).reason
    assert letter(poison_event).attempts == 2  # the store's copy was tried again, to fill the gap
    assert summary(account).version == 1 and summary(other).version == 1


def test_a_read_database_outage_is_not_dead_lettered_and_the_batch_comes_again(bus, monkeypatch):
    account = str(uuid.uuid4())
    bus.append(account, opened("1.00"), deposited("2.00"))

    def database_down(*args, **kwargs):
        raise OperationalError("could not connect to the read database")

    monkeypatch.setattr(AccountSummary.objects, "raw", database_down)  # the query that locks the summaries
    with pytest.raises(OperationalError):
        bus.consume()
    assert DeadLetter.objects.count() == 0

    monkeypatch.undo()
    outcome = bus.consume()  # not committed: the same messages again
    assert (outcome.received, outcome.applied, outcome.dead_lettered) == (2, 2, 0)
    assert summary(account).balance == Decimal("3.00")


def test_a_balance_the_bank_would_never_allow_is_corrupt(bus):
    account = str(uuid.uuid4())
    _, huge = bus.append(account, opened(), deposited("9999999999999.99"))  # the limit, plus the opening 10.00
    assert bus.consume().dead_lettered == 1
    assert letter(huge).reason_type == "CorruptEvent" and "beyond 9,999,999,999,999.99" in letter(huge).reason
    assert summary(account).balance == Decimal("10.00")


def test_a_write_refused_for_the_events_values_is_poison_but_a_lost_race_is_not(bus, monkeypatch):
    account = str(uuid.uuid4())
    bus.append(account, opened(), deposited())

    def refuse(error):
        def insert(rows, **tables):
            raise error

        monkeypatch.setattr(projection, "ledger_rows_insert", insert)

    refuse(IntegrityError("UNIQUE constraint failed: another projector wrote it first"))
    with pytest.raises(IntegrityError):  # not the event's fault: the batch comes again
        bus.consume()
    assert DeadLetter.objects.count() == 0

    refuse(DataError("Out of range value for column 'balance'"))
    outcome = bus.consume()
    assert (outcome.applied, outcome.dead_lettered) == (0, 2)  # the first is poison, the second waits behind it
    assert DeadLetter.objects.get(version=1).reason_type == "DataError"


def test_the_consumer_command_reports_what_it_dead_lettered(bus, monkeypatch):
    account = str(uuid.uuid4())
    bus.append(account, opened(), frozen())
    rewire(event_store=bus.store, transport=bus.transport)
    out = StringIO()
    call_command("run_projection_consumer", "--until-idle", "0.5", "--group", "cmd", stdout=out)
    assert "received 2, applied 1, dead-lettered 1" in out.getvalue()
    assert "dead-lettered 1 (0 undecodable); pending dead letters: 1" in out.getvalue()


# The in-process bus (embedded stack): the outbox drains past a poison event.


def test_a_poison_event_in_the_outbox_does_not_hold_up_other_accounts(api):
    store = wiring.services().event_store
    poisoned = api.post(
        "/api/accounts/", {"holder": "Poisoned", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()["id"]
    (poison_event,) = store.append(poisoned, 1, [frozen()])  # stored by a newer writer, say; waits in the outbox

    healthy = api.post(
        "/api/accounts/", {"holder": "Healthy", "account_type": "CURRENT", "opening_balance": "2.00"}, format="json"
    ).json()["id"]
    api.post(f"/api/accounts/{healthy}/deposits", {"amount": "3.00"}, format="json")

    assert AccountSummary.objects.get(id=healthy).balance == Decimal("5.00")
    assert store.unpublished() == []  # the poison left the outbox: it is in the dead-letter table
    poison = letter(poison_event)
    assert (poison.source, poison.reason_type, poison.attempts) == ("in-process", "UnknownEventType", 1)
    assert '"type":"FundsFrozen"' in poison.raw_message  # the envelope it would travel in, for a retry
    assert AccountSummary.objects.get(id=poisoned).version == 1


# Retrying (the admin action calls this service; see test_dead_letter_admin.py).


def project_frozen(summary, event):
    return LedgerEntry(
        account_id=summary.id,
        version=event.version,
        event_id=event.event_id,
        kind="DEPOSIT",
        amount=Decimal("0.00"),
        balance_after=summary.balance,
        occurred_at=event.occurred_at,
    )


def test_a_retry_after_the_projector_is_added_applies_the_poison_and_catches_the_account_up(bus, monkeypatch):
    account = str(uuid.uuid4())
    _, poison_event, blocked_event = bus.append(account, opened("1.00"), frozen(), deposited("2.00"))
    bus.consume()
    (later,) = bus.append(account, deposited("4.00"))  # only in the store so far: nothing consumed it
    monkeypatch.setitem(projectors.PROJECTORS, "FundsFrozen", project_frozen)  # the fix is deployed

    report = retry_dead_letters(dead_letters_to_retry=[letter(poison_event)], event_store=bus.store)

    assert (report.applied, report.caught_up, report.failed) == (1, 1, 0)
    assert (summary(account).version, summary(account).balance) == (4, Decimal("7.00"))
    assert letter(poison_event).status == letter(blocked_event).status == DeadLetterStatus.RETRIED_OK
    assert letter(poison_event).resolution == "applied on retry" and letter(poison_event).retried_at
    assert "was retried" in letter(blocked_event).resolution
    assert later.version == 4 and list(read_model_differences(event_store=bus.store)) == []

    again = retry_dead_letters(dead_letters_to_retry=DeadLetter.objects.all(), event_store=bus.store)
    assert (again.applied, again.skipped, summary(account).version) == (0, 2, 4)  # idempotent


def test_a_retry_that_fails_again_keeps_the_new_reason_and_counts_the_attempt(bus):
    account = str(uuid.uuid4())
    _, poison_event, blocked_event = bus.append(account, opened(), frozen(), deposited())
    bus.transport.send_raw(b"k", b"garbage")
    bus.consume()

    report = retry_dead_letters(dead_letters_to_retry=DeadLetter.objects.all(), event_store=bus.store)

    assert (report.applied, report.failed) == (0, 3)
    assert summary(account).version == 1
    assert all(row.status == "PENDING" and row.retried_at for row in DeadLetter.objects.all())
    garbage = DeadLetter.objects.get(reason_type="Undecodable")
    assert garbage.attempts == 2 and garbage.reason.startswith("not a TechBank event envelope")
    assert (letter(blocked_event).reason_type, letter(blocked_event).attempts) == ("BlockedBehindPoison", 2)
    poison = letter(poison_event)  # tried on its own, and again to fill the gap before the blocked one
    assert (poison.reason_type, poison.attempts) == ("UnknownEventType", 3)


def test_retrying_an_event_that_was_applied_meanwhile_marks_it_applied_and_changes_nothing(bus, monkeypatch):
    account = str(uuid.uuid4())
    _, poison_event = bus.append(account, opened("1.00"), frozen())
    bus.consume()
    monkeypatch.setitem(projectors.PROJECTORS, "FundsFrozen", project_frozen)  # the fix is deployed
    bus.append(account, deposited("3.00"))
    assert bus.consume().applied == 2  # the next event filled the gap from the store, the poison included
    assert letter(poison_event).status == "PENDING"

    report = retry_dead_letters(dead_letters_to_retry=[letter(poison_event)], event_store=bus.store)

    assert (report.applied, report.failed) == (1, 0)
    assert letter(poison_event).status == "RETRIED_OK" and "already applied" in letter(poison_event).resolution
    assert (summary(account).version, summary(account).balance) == (3, Decimal("4.00"))
    assert LedgerEntry.objects.filter(account_id=account).count() == 3


# Rebuild and verification agree with the live projection.


def test_a_rebuild_stops_a_poisoned_account_before_the_poison_and_records_it(api, monkeypatch):
    store = wiring.services().event_store
    accounts = [
        api.post(
            "/api/accounts/", {"holder": h, "account_type": "SAVINGS", "opening_balance": "5.00"}, format="json"
        ).json()["id"]
        for h in ("Poisoned", "Healthy")
    ]
    poison_event, _ = store.append(accounts[0], 1, [frozen(), deposited()])
    api.post(f"/api/accounts/{accounts[1]}/deposits", {"amount": "1.00"}, format="json")  # relays the outbox
    DeadLetter.objects.all().delete()

    out = StringIO()
    call_command("rebuild_read_model", "--no-progress", stdout=out)

    assert "into 2 accounts" in out.getvalue()
    assert AccountSummary.objects.get(id=accounts[0]).version == 1
    assert AccountSummary.objects.get(id=accounts[1]).balance == Decimal("6.00")
    assert (letter(poison_event).source, letter(poison_event).reason_type) == ("rebuild", "UnknownEventType")
    # The rebuild matches the live projection, but the poisoned account is not what the store says:
    # verification names it, and why.
    assert [(d.account_id, d.reasons) for d in read_model_differences(event_store=store)] == [
        (accounts[0], ["stuck behind 1 pending dead letter from version 2 (see Dead letters)"])
    ]


def test_projected_deliveries_dead_letter_as_from_the_source_they_came_from():
    store = InMemoryEventStore()
    account = str(uuid.uuid4())
    events = store.append(account, 0, [opened(), frozen()])
    outcome = project_deliveries(
        deliveries=deliveries_of(events + events), event_store=store, source=DeadLetterSource.IN_PROCESS
    )  # a duplicate too
    assert (outcome.applied, outcome.dead_lettered) == (1, 1)
    assert DeadLetter.objects.get().source == "in-process"

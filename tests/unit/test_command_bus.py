"""The command side with fakes behind the project's own interfaces."""
import threading
import uuid
from decimal import Decimal

import pytest

from accounts.adapters.repository import BankAccountRepository
from accounts.domain import commands, errors
from accounts.service_layer.command_bus import CommandBus
from accounts.service_layer.publisher import EventPublisher
from eventstore.backends.memory import InMemoryEventStore
from eventstore.store import ConcurrencyConflict


class FakePublisher(EventPublisher):
    def __init__(self):
        self.published = []

    def publish(self, events):
        self.published.extend(events)


class ConflictingEventStore(InMemoryEventStore):
    """Loses the race the first `losses` times it is asked to append."""

    def __init__(self, losses: int):
        super().__init__()
        self.losses = losses

    def append(self, stream_id, expected_version, events):
        if expected_version > 0 and self.losses > 0:
            self.losses -= 1
            raise ConcurrencyConflict(stream_id, expected_version)
        return super().append(stream_id, expected_version, events)


def make_bus(store=None, max_attempts=5):
    store = store or InMemoryEventStore()
    publisher = FakePublisher()
    bus = CommandBus(accounts=BankAccountRepository(store), publisher=publisher, max_attempts=max_attempts, backoff_seconds=0)
    return bus, store, publisher


def open_account(bus, balance="100.00"):
    return bus.handle(commands.OpenAccount(holder="Grace", account_type="CURRENT", opening_balance=Decimal(balance)))


def test_a_command_stores_and_publishes_its_events():
    bus, store, publisher = make_bus()
    account = open_account(bus)
    bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("5.50")))
    stored = store.load_stream(str(account.id))
    assert [e.event_type for e in stored] == ["AccountOpened", "FundsDeposited"]
    assert stored[1].data == {"amount": "5.50"}
    assert [e.event_id for e in publisher.published] == [e.event_id for e in stored]


def test_the_command_metadata_is_recorded_on_the_events():
    bus, store, _ = make_bus()
    meta = commands.CommandMetadata(issued_by="teller-7", correlation_id="req-42")
    account = bus.handle(commands.OpenAccount(holder="G", account_type="SAVINGS", opening_balance=Decimal("1"), metadata=meta))
    assert store.load_stream(str(account.id))[0].metadata == {
        "issued_by": "teller-7",
        "correlation_id": "req-42",
        "idempotency_key": "",
    }


def test_a_refused_command_stores_and_publishes_nothing():
    bus, store, publisher = make_bus()
    account = open_account(bus, "10.00")
    with pytest.raises(errors.InsufficientFunds):
        bus.handle(commands.WithdrawFunds(account_id=account.id, amount=Decimal("10.01")))
    assert store.count_events() == 1 and len(publisher.published) == 1


def test_an_unknown_account_is_not_found():
    bus, _, _ = make_bus()
    with pytest.raises(errors.AccountNotFound):
        bus.handle(commands.DepositFunds(account_id=uuid.uuid4(), amount=Decimal("1")))


def test_a_lost_race_is_retried_from_a_fresh_load():
    bus, store, _ = make_bus(ConflictingEventStore(losses=3))
    account = open_account(bus)
    result = bus.handle(commands.WithdrawFunds(account_id=account.id, amount=Decimal("1")))
    assert result.version == 2 and result.balance == Decimal("99.00")


def test_retries_are_bounded_and_the_conflict_then_surfaces():
    bus, store, _ = make_bus(ConflictingEventStore(losses=5), max_attempts=5)
    account = open_account(bus)
    with pytest.raises(ConcurrencyConflict):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1")))
    assert store.count_events() == 1


def test_concurrent_withdrawals_never_overdraw():
    bus, store, _ = make_bus(max_attempts=50)
    account = open_account(bus, "100.00")
    outcomes = []
    barrier = threading.Barrier(20)

    def withdraw():
        barrier.wait()
        try:
            bus.handle(commands.WithdrawFunds(account_id=account.id, amount=Decimal("10.00")))
            outcomes.append("ok")
        except errors.InsufficientFunds:
            outcomes.append("refused")

    threads = [threading.Thread(target=withdraw) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 10
    final = BankAccountRepository(store).get(account.id)
    assert final.balance == Decimal("0.00") and final.version == 11


def keyed(key: str, user: str = "teller", since=None) -> commands.CommandMetadata:
    return commands.CommandMetadata(issued_by=user, correlation_id="c", idempotency_key=key, idempotent_since=since)


def test_a_command_repeated_under_the_same_key_has_no_second_effect():
    bus, store, _ = make_bus()
    account = open_account(bus)
    for _ in range(3):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("5.00"), metadata=keyed("k-1")))
    assert BankAccountRepository(store).get(account.id).balance == Decimal("105.00")
    assert store.count_events() == 2


def test_an_opening_repeated_under_the_same_key_finds_the_account_it_opened():
    bus, store, _ = make_bus()
    first = bus.handle(commands.OpenAccount(holder="H", account_type="SAVINGS", opening_balance=Decimal("1"), metadata=keyed("open-1")))
    again = bus.handle(commands.OpenAccount(holder="H", account_type="SAVINGS", opening_balance=Decimal("1"), metadata=keyed("open-1")))
    assert again.id == first.id and store.count_events() == 1


def test_keys_belong_to_their_user():
    bus, store, _ = make_bus()
    account = open_account(bus)
    for user in ("alice", "bob"):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1.00"), metadata=keyed("same", user)))
    assert BankAccountRepository(store).get(account.id).balance == Decimal("102.00")


def test_a_key_older_than_its_time_to_live_is_a_new_request():
    from datetime import datetime, timedelta, timezone

    bus, store, _ = make_bus()
    account = open_account(bus)
    bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1.00"), metadata=keyed("old")))
    later = datetime.now(timezone.utc) + timedelta(seconds=1)
    bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1.00"), metadata=keyed("old", since=later)))
    assert BankAccountRepository(store).get(account.id).balance == Decimal("102.00")

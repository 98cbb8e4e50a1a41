"""Each command through the bus, as a client retrying it would see it: closing, withdrawing and
opening under an idempotency key, and how a lost race is retried and logged."""

import logging
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.adapters.repository import BankAccountRepository
from accounts.domain import commands, errors
from tests.unit.test_command_bus import ConflictingEventStore, CountingLoads, keyed, make_bus, open_account, reusing_bus


def test_closing_stores_an_account_closed_event_with_the_request_on_it():
    bus, store, publisher = make_bus()
    account = open_account(bus)
    closed = bus.handle(commands.CloseAccount(account_id=account.id, metadata=keyed("close-1")))
    assert closed.is_closed and closed.version == 2
    [_, event] = store.load_stream(str(account.id))
    assert (event.event_type, event.metadata) == (
        "AccountClosed",
        {"issued_by": "teller", "correlation_id": "c", "idempotency_key": "close-1"},
    )
    assert [e.event_type for e in publisher.published] == ["AccountOpened", "AccountClosed"]


def test_a_closing_repeated_under_the_same_key_answers_the_closed_account_and_stores_nothing_more():
    bus, store, _ = make_bus()
    account = open_account(bus)
    bus.handle(commands.CloseAccount(account_id=account.id, metadata=keyed("close-1")))
    again = bus.handle(commands.CloseAccount(account_id=account.id, metadata=keyed("close-1")))
    assert again.is_closed and again.id == account.id and store.count_events() == 2


def test_a_second_closing_under_another_key_is_refused():
    bus, store, _ = make_bus()
    account = open_account(bus)
    bus.handle(commands.CloseAccount(account_id=account.id, metadata=keyed("close-1")))
    with pytest.raises(errors.AccountAlreadyClosed):
        bus.handle(commands.CloseAccount(account_id=account.id, metadata=keyed("close-2")))
    assert store.count_events() == 2


def test_closing_an_unknown_account_is_not_found():
    bus, _, _ = make_bus()
    with pytest.raises(errors.AccountNotFound):
        bus.handle(commands.CloseAccount(account_id=uuid.uuid4()))


def test_a_withdrawal_repeated_under_the_same_key_takes_the_money_once_and_records_the_key():
    bus, store, _ = make_bus()
    account = open_account(bus, "100.00")
    for _ in range(2):
        answer = bus.handle(
            commands.WithdrawFunds(account_id=account.id, amount=Decimal("30.00"), metadata=keyed("w-1"))
        )
    assert answer.balance == Decimal("70.00") and store.count_events() == 2
    assert store.load_stream(str(account.id))[1].metadata["idempotency_key"] == "w-1"


def test_an_opening_under_a_key_older_than_its_time_to_live_opens_a_second_account_with_its_own_id():
    bus, store, _ = make_bus()
    opening = {"holder": "H", "account_type": "SAVINGS", "opening_balance": Decimal("1")}
    first = bus.handle(commands.OpenAccount(**opening, metadata=keyed("open-1")))
    later = datetime.now(UTC) + timedelta(seconds=1)
    second = bus.handle(commands.OpenAccount(**opening, metadata=keyed("open-1", since=later)))
    assert isinstance(second.id, uuid.UUID) and second.id != first.id
    repository = BankAccountRepository(store)
    assert repository.get(second.id).version == 1 and repository.get(first.id).version == 1
    assert store.count_events() == 2


def test_a_command_that_loses_every_race_but_the_last_allowed_attempt_goes_through():
    bus, _, _ = make_bus(ConflictingEventStore(losses=4), max_attempts=5)
    account = open_account(bus)
    assert bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1"))).version == 2


def test_each_lost_race_is_logged_with_its_account_and_attempt(caplog):
    bus, _, _ = make_bus(ConflictingEventStore(losses=2), max_attempts=5)
    account = open_account(bus)
    with caplog.at_level(logging.DEBUG, logger="accounts.service_layer.command_bus"):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1")))
    assert [r.getMessage() for r in caplog.records if r.name == "accounts.service_layer.command_bus"] == [
        f"conflict on {account.id}, attempt 1; reloading",
        f"conflict on {account.id}, attempt 2; reloading",
    ]


def test_once_reused_copies_go_through_again_the_bus_goes_back_to_reusing_them():
    store = CountingLoads()
    bus = reusing_bus(store)
    account = open_account(bus)
    for _ in range(16):  # as if most copies had lately been out of date
        bus.uow.recent.note(out_of_date=True)
    for _ in range(64):  # now only this bus moves the account: its probes go through
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1.00")))
    loads = store.loads
    for _ in range(16):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1.00")))
    assert store.loads == loads

"""The handlers and the bus on the fake unit of work: a keyed retry finds its earlier effect, whichever
process runs it and however the account was loaded; the aggregate itself knows nothing of keys."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from accounts.domain import commands, errors
from accounts.service_layer.command_bus import CommandBus
from accounts.service_layer.publisher import EventPublisher
from tests.fake_unit_of_work import FakeUnitOfWork


class FakePublisher(EventPublisher):
    def __init__(self):
        self.published = []

    def publish(self, events):
        self.published.extend(events)


def bus_on(uow: FakeUnitOfWork) -> CommandBus:
    return CommandBus(uow=uow, publisher=FakePublisher(), backoff_seconds=0)


def keyed(key: str, user: str = "teller", since=None) -> commands.CommandMetadata:
    return commands.CommandMetadata(issued_by=user, correlation_id="c", idempotency_key=key, idempotent_since=since)


def open_account(bus, balance="100.00", metadata=None):
    return bus.handle(
        commands.OpenAccount(
            holder="Grace",
            account_type="CURRENT",
            opening_balance=Decimal(balance),
            metadata=metadata or commands.CommandMetadata(),
        )
    )


@pytest.mark.parametrize("recent_accounts", [0, 10], ids=["loaded each time", "a recent copy"])
def test_a_retry_in_another_process_after_a_crash_finds_its_earlier_effect_in_the_stream(recent_accounts):
    streams: dict = {}
    crashed = bus_on(FakeUnitOfWork(streams, recent_accounts=recent_accounts))
    account = open_account(crashed)
    crashed.handle(commands.WithdrawFunds(account_id=account.id, amount=Decimal("30.00"), metadata=keyed("w-1")))
    # The answer was never recorded: the client retries, and another process runs the command again.
    retried = bus_on(FakeUnitOfWork(streams, recent_accounts=recent_accounts))
    answer = retried.handle(
        commands.WithdrawFunds(account_id=account.id, amount=Decimal("30.00"), metadata=keyed("w-1"))
    )
    assert answer.balance == Decimal("70.00") and len(streams[account.id]) == 2
    assert retried.publisher.published == []  # nothing new to hand on


def test_a_closing_retried_after_a_crash_answers_the_closed_account_rather_than_refusing_it():
    streams: dict = {}
    account = open_account(bus_on(FakeUnitOfWork(streams)))
    bus_on(FakeUnitOfWork(streams)).handle(commands.CloseAccount(account_id=account.id, metadata=keyed("c-1")))
    again = bus_on(FakeUnitOfWork(streams)).handle(commands.CloseAccount(account_id=account.id, metadata=keyed("c-1")))
    assert again.is_closed and len(streams[account.id]) == 2


def test_an_opening_retried_after_a_crash_finds_the_account_it_opened():
    streams: dict = {}
    first = open_account(bus_on(FakeUnitOfWork(streams)), metadata=keyed("open-1"))
    again = open_account(bus_on(FakeUnitOfWork(streams)), metadata=keyed("open-1"))
    assert again.id == first.id and list(streams) == [first.id]


def test_the_same_key_of_another_user_is_another_request():
    uow = FakeUnitOfWork()
    bus = bus_on(uow)
    account = open_account(bus)
    for user in ("alice", "bob", "alice"):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1"), metadata=keyed("k", user)))
    assert len(uow.events(account.id)) == 3


def test_a_key_used_before_its_time_to_live_began_is_a_new_request():
    uow = FakeUnitOfWork()
    bus = bus_on(uow)
    account = open_account(bus)
    bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1"), metadata=keyed("k")))
    later = datetime.now(UTC) + timedelta(seconds=1)
    again = bus.handle(
        commands.DepositFunds(account_id=account.id, amount=Decimal("1"), metadata=keyed("k", since=later))
    )
    assert again.balance == Decimal("102.00") and len(uow.events(account.id)) == 3


def test_a_refused_command_stores_nothing_and_the_refusal_reaches_the_caller():
    uow = FakeUnitOfWork(recent_accounts=10)
    bus = bus_on(uow)
    account = open_account(bus, "5.00")
    with pytest.raises(errors.InsufficientFunds):
        bus.handle(commands.WithdrawFunds(account_id=account.id, amount=Decimal("6.00")))
    assert len(uow.events(account.id)) == 1
    assert uow.loads == 1  # decided again on a fresh load before refusing


def test_a_command_on_an_account_kept_by_its_unit_of_work_needs_no_load():
    uow = FakeUnitOfWork(recent_accounts=10)
    bus = bus_on(uow)
    account = open_account(bus)
    for _ in range(3):
        bus.handle(commands.DepositFunds(account_id=account.id, amount=Decimal("1")))
    assert uow.loads == 0 and len(uow.events(account.id)) == 4


def test_what_a_unit_did_not_commit_is_not_kept_for_the_next_one():
    uow = FakeUnitOfWork(recent_accounts=10)
    account = open_account(bus_on(uow))
    with uow:
        uow.accounts.get(account.id).deposit("1.00")
    with uow:
        assert uow.accounts.get(account.id).version == 1
    assert uow.loads == 1  # the changed copy was dropped with its unit: loaded from the store


def test_an_unknown_account_is_not_found():
    with pytest.raises(errors.AccountNotFound):
        bus_on(FakeUnitOfWork()).handle(commands.DepositFunds(account_id=uuid.uuid4(), amount=Decimal("1")))

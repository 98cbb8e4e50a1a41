"""The unit-of-work contract: the fake and the real one subclass this class once, unchanged.

A subclass provides one fixture, `new_uow`: a function giving a unit of work
(`new_uow(recent_accounts=0)`); every one it gives in a test shares one store,
as processes do.
"""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from accounts.domain.bank_account import BankAccount
from accounts.domain.commands import CommandMetadata
from accounts.domain.errors import AccountNotFound, InsufficientFunds
from accounts.service_layer.unit_of_work import StaleCopy
from eventstore.store import ConcurrencyConflict


def keyed(key: str, user: str = "teller", since=None) -> CommandMetadata:
    return CommandMetadata(issued_by=user, correlation_id="c", idempotency_key=key, idempotent_since=since)


def opened(uow, balance="10.00", metadata=None) -> BankAccount:
    account = BankAccount.open(
        account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance=balance, metadata=metadata
    )
    with uow:
        uow.accounts.add(account)
        uow.commit()
    return account


def deposit_one(uow, account_id) -> None:
    with uow:
        uow.accounts.get(account_id).deposit("1.00")
        uow.commit()


def commit_nothing(uow, account_id) -> None:
    with uow:
        uow.accounts.get(account_id)
        uow.commit()


class UnitOfWorkContract:
    def test_an_account_with_no_events_is_not_found(self, new_uow):
        uow = new_uow()
        with uow, pytest.raises(AccountNotFound):
            uow.accounts.get(uuid.uuid4())

    def test_a_committed_account_loads_back_in_another_unit_of_work(self, new_uow):
        account = opened(new_uow(), "12.50")
        with new_uow() as other:
            loaded = other.accounts.get(account.id)
        assert (loaded.holder, loaded.balance, loaded.version) == ("Ada", account.balance, 1)

    def test_commit_returns_the_events_as_stored_in_order(self, new_uow):
        uow = new_uow()
        account = opened(uow)
        with uow:
            moving = uow.accounts.get(account.id)
            moving.deposit("1.00")
            moving.withdraw("2.00")
            stored = uow.commit()
        assert [(e.stream_id, e.version, e.event_type) for e in stored] == [
            (str(account.id), 2, "FundsDeposited"),
            (str(account.id), 3, "FundsWithdrawn"),
        ]
        assert moving.pending_events == []

    def test_one_commit_stores_every_account_the_unit_changed(self, new_uow):
        uow = new_uow()
        first, second = opened(uow), opened(uow)
        with uow:
            uow.accounts.get(first.id).deposit("1.00")
            uow.accounts.get(second.id).deposit("2.00")
            stored = uow.commit()
        assert sorted((e.stream_id, e.version) for e in stored) == sorted([(str(first.id), 2), (str(second.id), 2)])

    def test_starting_a_unit_of_work_inside_another_in_one_thread_is_refused(self, new_uow):
        uow = new_uow()
        with uow, pytest.raises(RuntimeError, match=r"^this thread is already in a unit of work$"):
            uow.start()

    def test_accounts_outside_a_unit_of_work_are_refused(self, new_uow):
        with pytest.raises(RuntimeError, match=r"^no unit of work: use `with uow:`$"):
            new_uow().accounts.get(uuid.uuid4())

    def test_what_is_not_committed_is_not_stored(self, new_uow):
        uow = new_uow()
        account = opened(uow)
        with uow:
            uow.accounts.get(account.id).deposit("1.00")
        with new_uow() as other:
            assert other.accounts.get(account.id).version == 1

    def test_one_unit_loads_an_account_once(self, new_uow):
        uow = new_uow()
        account = opened(uow)
        with uow:
            assert uow.accounts.get(account.id) is uow.accounts.get(account.id)

    def test_an_account_moved_meanwhile_is_a_concurrency_conflict(self, new_uow):
        ours, theirs = new_uow(), new_uow()
        account = opened(ours)
        with ours:
            mine = ours.accounts.get(account.id)
            with theirs:
                theirs.accounts.get(account.id).deposit("5.00")
                theirs.commit()
            mine.withdraw("1.00")
            with pytest.raises(ConcurrencyConflict):
                ours.commit()
        with new_uow() as fresh:
            assert fresh.accounts.get(account.id).balance == account.balance + 5

    def test_a_keyed_request_is_found_again_after_a_commit_and_after_a_reload(self, new_uow):
        uow = new_uow()
        account = opened(uow, metadata=keyed("open"))
        with uow:
            uow.accounts.get(account.id).deposit("1.00", metadata=keyed("k-1"))
            uow.commit()
        for unit in (uow, new_uow()):
            with unit:
                unit.accounts.get(account.id)
                assert unit.has_handled(account.id, keyed("open")) and unit.has_handled(account.id, keyed("k-1"))
                assert not unit.has_handled(account.id, keyed("k-1", user="bob"))
                assert not unit.has_handled(account.id, keyed("k-2"))
                assert not unit.has_handled(account.id, keyed(""))

    def test_a_key_handled_before_its_time_to_live_began_is_not_found(self, new_uow):
        uow = new_uow()
        account = opened(uow, metadata=keyed("k"))
        handled_at = uow_events_time(new_uow, account.id)
        with new_uow() as unit:
            unit.accounts.get(account.id)
            assert unit.has_handled(account.id, keyed("k", since=handled_at))
            assert not unit.has_handled(account.id, keyed("k", since=handled_at + timedelta(microseconds=1)))

    def test_a_recent_copy_spares_the_next_unit_a_load_and_is_a_copy(self, new_uow):
        uow = new_uow(recent_accounts=10)
        account = opened(uow)
        with uow:
            first = uow.accounts.get(account.id)
            first.deposit("1.00")
            uow.commit()
        with uow:
            second = uow.accounts.get(account.id)
            assert second is not first and second.version == 2
            second.deposit("1.00")
            uow.commit()
        assert first.version == 2 and first.balance == account.balance + 1

    def test_a_recent_copy_that_another_moved_on_is_a_stale_copy_not_a_conflict(self, new_uow):
        ours, theirs = new_uow(recent_accounts=10), new_uow()
        account = opened(ours)
        with theirs:
            theirs.accounts.get(account.id).deposit("1.00")
            theirs.commit()
        with pytest.raises(StaleCopy):
            deposit_one(ours, account.id)
        with ours.start(reuse_recent=False):
            assert ours.accounts.get(account.id).version == 2

    def test_a_refusal_or_nothing_to_store_on_a_recent_copy_is_a_stale_copy(self, new_uow):
        uow = new_uow(recent_accounts=10)
        account = opened(uow, "1.00")
        with pytest.raises(StaleCopy), uow:
            uow.accounts.get(account.id).withdraw("5.00")
        opened_again = opened(uow)
        with pytest.raises(StaleCopy):
            commit_nothing(uow, opened_again.id)
        with pytest.raises(InsufficientFunds), uow.start(reuse_recent=False):
            uow.accounts.get(account.id).withdraw("5.00")


def uow_events_time(new_uow, account_id) -> datetime:
    """When the account's first event happened (as stored)."""
    with new_uow() as unit:
        return unit.accounts.get(account_id).opened_at or datetime.now(UTC)

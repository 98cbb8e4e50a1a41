"""Snapshots at their edges: a closed account, an account just opened, and refusals that say why
(the repository logs the reason and replays instead)."""

import copy
import json
import uuid

import pytest

from accounts.domain import errors
from accounts.domain.bank_account import BankAccount, InvalidSnapshot


def restored(account: BankAccount) -> BankAccount:
    return BankAccount.from_snapshot(account.id, json.loads(json.dumps(account.to_snapshot())))


def test_a_closed_account_restored_from_its_snapshot_is_closed_since_the_same_moment():
    account = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    account.close()
    again = restored(account)
    assert again.is_closed and again.closed_at == account.pending_events[-1].occurred_at
    with pytest.raises(errors.AccountAlreadyClosed):
        again.close()


def test_an_account_just_opened_restores_from_its_snapshot():
    account = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    again = restored(account)
    assert (again.version, again.balance, again.closed_at) == (1, account.balance, None)


def _snapshot(**changes) -> dict:
    account = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    return {**account.to_snapshot(), **changes}


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"version": "4"}, "Not a snapshot of a bank account: TypeError(\"'4' is not a int\")"),
        (
            {"opened_at": "2026-11-26T09:30:00"},
            "Not a snapshot of a bank account: ValueError(\"'2026-11-26T09:30:00' has no time zone\")",
        ),
        ({"version": 0}, "Not a snapshot of a bank account: no opening"),
    ],
)
def test_a_refused_snapshot_says_what_is_wrong_with_it(changes, reason):
    with pytest.raises(InvalidSnapshot) as refused:
        BankAccount.from_snapshot(uuid.uuid4(), _snapshot(**changes))
    assert str(refused.value) == reason


def test_a_copy_of_an_account_goes_its_own_way():
    account = BankAccount.open(account_id=uuid.uuid4(), holder="Ada", account_type="SAVINGS", opening_balance="1.00")
    twin = copy.copy(account)
    twin.deposit("5.00")
    assert (account.balance, account.version, len(account.pending_events)) == (1, 1, 1)
    assert (twin.balance, twin.version, len(twin.pending_events)) == (6, 2, 2)
    assert (twin.id, twin.holder, twin.opened_at) == (account.id, account.holder, account.opened_at)

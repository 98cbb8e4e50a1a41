"""An account restored from its snapshot behaves exactly as the account replayed from all its events."""

import json
import uuid
from decimal import Decimal

import pytest

from accounts.domain import errors
from accounts.domain.bank_account import BankAccount, InvalidSnapshot
from accounts.domain.commands import CommandMetadata


def state(account: BankAccount) -> dict:
    return {name: value for name, value in vars(account).items() if name != "pending_events"}


def account_with_history() -> BankAccount:
    """An account after keyed and unkeyed requests by two users, its events stored (pending cleared)."""
    account = BankAccount.open(
        account_id=uuid.uuid4(),
        holder="Zoë Ñandú",
        account_type="CURRENT",
        opening_balance="100.10",
        metadata=CommandMetadata(issued_by="teller", idempotency_key="open-1"),
    )
    account.deposit("0.01", metadata=CommandMetadata(issued_by="teller", idempotency_key="k-1"))
    account.withdraw("50.00", metadata=CommandMetadata(issued_by="bob", idempotency_key="k-1"))
    account.deposit("9999.99")
    return account


def through_json(snapshot: dict) -> dict:
    return json.loads(json.dumps(snapshot))


def test_an_account_restored_from_its_snapshot_equals_the_replayed_account():
    account = account_with_history()
    replayed = BankAccount.from_history(account.id, account.pending_events)
    restored = BankAccount.from_snapshot(account.id, through_json(replayed.to_snapshot()))
    assert state(restored) == state(replayed)
    assert restored.balance == Decimal("10050.10") and str(restored.balance) == "10050.10"


def test_events_after_the_snapshot_apply_as_they_would_in_a_full_replay():
    account = account_with_history()
    events = account.pending_events
    account.close(metadata=CommandMetadata(issued_by="teller", idempotency_key="close"))
    at_version_2 = BankAccount.from_history(account.id, events[:2]).to_snapshot()
    restored = BankAccount.from_snapshot(account.id, through_json(at_version_2), account.pending_events[2:])
    assert state(restored) == state(BankAccount.from_history(account.id, account.pending_events))
    assert restored.is_closed and restored.closed_at is not None and restored.version == 5


def test_money_and_times_are_stored_as_strings_not_floats():
    snapshot = account_with_history().to_snapshot()
    assert snapshot["balance"] == "10050.10"
    assert isinstance(snapshot["opened_at"], str) and snapshot["closed_at"] is None


def test_the_rules_hold_on_a_restored_account():
    account = account_with_history()
    account.close()
    restored = BankAccount.from_snapshot(account.id, through_json(account.to_snapshot()))
    with pytest.raises(errors.AccountIsClosed):
        restored.deposit("1.00")
    open_one = BankAccount.from_snapshot(account.id, through_json(account_with_history().to_snapshot()))
    with pytest.raises(errors.InsufficientFunds):
        open_one.withdraw("10050.11")
    open_one.withdraw("10050.10")
    assert open_one.balance == Decimal("0.00") and open_one.pending_events[0].version == 5


def _corrupted(**changes) -> dict:
    snapshot = through_json(account_with_history().to_snapshot())
    for name, value in changes.items():
        if value is KeyError:
            del snapshot[name]
        else:
            snapshot[name] = value
    return snapshot


@pytest.mark.parametrize(
    "snapshot",
    [
        _corrupted(balance=KeyError),
        _corrupted(balance=10050.1),
        _corrupted(balance="lots"),
        _corrupted(balance="NaN"),
        _corrupted(version="4"),
        _corrupted(version=True),
        _corrupted(version=0),
        _corrupted(is_closed="no"),
        _corrupted(opened_at=None),
        _corrupted(opened_at="2026-11-26T09:30:00"),
        {},
    ],
    # Plain ASCII ids: pytest escapes non-ASCII ids again each time it collects in one
    # process, and mutmut (make mutation) collects several times.
    ids=[
        "no balance",
        "a float balance",
        "a balance that is no number",
        "a NaN balance",
        "a version that is text",
        "a version that is a bool",
        "version 0",
        "is_closed that is text",
        "never opened",
        "an opening time without a zone",
        "empty",
    ],
)
def test_a_corrupt_snapshot_is_refused(snapshot):
    with pytest.raises(InvalidSnapshot):
        BankAccount.from_snapshot(uuid.uuid4(), snapshot)

"""Projectors on unsaved rows: an event they cannot apply is refused before it changes anything."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from eventstore.store import StoredEvent
from projections.models import AccountSummary
from projections.projectors import CorruptEvent, UnknownEventType, apply_event


def stored(event_type: str, version: int, **data) -> StoredEvent:
    return StoredEvent(uuid.uuid4(), "acc", version, event_type, data, datetime.now(UTC), {})


def open_summary() -> AccountSummary:
    summary = AccountSummary(id=uuid.uuid4(), version=0)
    apply_event(summary, stored("AccountOpened", 1, holder="Ada", account_type="SAVINGS", opening_balance="10.00"))
    return summary


def snapshot(summary: AccountSummary) -> tuple:
    return (summary.holder, summary.account_type, summary.balance, summary.status, summary.version)


def test_a_deposit_adds_to_the_balance_and_moves_the_version():
    summary = open_summary()
    entry = apply_event(summary, stored("FundsDeposited", 2, amount="2.50"))
    assert (summary.balance, summary.version, entry.balance_after) == (Decimal("12.50"), 2, Decimal("12.50"))


@pytest.mark.parametrize(
    "event_type, data",
    [
        ("FundsDeposited", {"amount": "abc"}),
        ("FundsDeposited", {"amount": 2.5}),
        ("FundsDeposited", {"amount": "Infinity"}),
        ("FundsWithdrawn", {"amount": "0.001"}),
        ("FundsWithdrawn", {}),
        ("FundsDeposited", {"amount": "9999999999999.99"}),  # past the balance limit
        ("AccountOpened", {"holder": "Eve", "account_type": "SAVINGS"}),
        ("AccountOpened", {"holder": 7, "account_type": "SAVINGS", "opening_balance": "1.00"}),
    ],
)
def test_corrupt_data_is_refused_and_leaves_the_summary_as_it_was(event_type, data):
    summary = open_summary()
    before = snapshot(summary)
    with pytest.raises(CorruptEvent):
        apply_event(summary, stored(event_type, 2, **data))
    assert snapshot(summary) == before


def test_an_event_type_without_a_projector_is_refused():
    summary = open_summary()
    with pytest.raises(UnknownEventType, match="FundsFrozen"):
        apply_event(summary, stored("FundsFrozen", 2))
    assert summary.version == 1

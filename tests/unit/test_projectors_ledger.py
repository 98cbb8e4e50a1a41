"""What each projector writes: the summary a lookup shows and the ledger row a statement shows,
and for an event it cannot apply, a reason staff can act on (it becomes the dead letter's reason)."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from eventstore.store import StoredEvent
from projections.models import AccountStatus, AccountSummary, EntryKind
from projections.projectors import BALANCE_LIMIT, CorruptEvent, LedgerRow, UnknownEventType, apply_event

OPENED_AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


def stored(event_type: str, version: int, **data) -> StoredEvent:
    occurred_at = OPENED_AT + timedelta(minutes=version)
    return StoredEvent(uuid.uuid4(), "acc", version, event_type, data, occurred_at, {})


def fresh_summary() -> AccountSummary:
    return AccountSummary(id=uuid.uuid4(), version=0)


def opened(balance="10.00") -> AccountSummary:
    summary = fresh_summary()
    apply_event(summary, stored("AccountOpened", 1, holder="Ada", account_type="SAVINGS", opening_balance=balance))
    return summary


def test_an_opening_fills_the_summary_and_writes_the_opening_balance_to_the_ledger():
    summary = fresh_summary()
    event = stored("AccountOpened", 1, holder="Ada Lovelace", account_type="CURRENT", opening_balance="10.50")
    entry = apply_event(summary, event)
    assert (summary.holder, summary.account_type, summary.balance, summary.status, summary.version) == (
        "Ada Lovelace",
        "CURRENT",
        Decimal("10.50"),
        AccountStatus.OPEN,
        1,
    )
    assert (summary.opened_at, summary.closed_at) == (event.occurred_at, None)
    assert entry == LedgerRow(
        summary.id, 1, event.event_id, EntryKind.OPENING, Decimal("10.50"), Decimal("10.50"), event.occurred_at
    )


def test_an_opening_replayed_onto_a_closed_row_opens_it_again():
    """A rebuild may reuse a summary row: the opening must not keep an old closing."""
    summary = opened()
    apply_event(summary, stored("AccountClosed", 2))
    apply_event(summary, stored("AccountOpened", 1, holder="Ada", account_type="SAVINGS", opening_balance="1.00"))
    assert (summary.status, summary.closed_at) == (AccountStatus.OPEN, None)


def test_deposits_and_withdrawals_write_the_amount_and_the_balance_after_it():
    summary = opened("10.00")
    deposit, withdrawal = stored("FundsDeposited", 2, amount="2.50"), stored("FundsWithdrawn", 3, amount=5)
    deposited, withdrawn = apply_event(summary, deposit), apply_event(summary, withdrawal)
    assert deposited == LedgerRow(
        summary.id, 2, deposit.event_id, EntryKind.DEPOSIT, Decimal("2.50"), Decimal("12.50"), deposit.occurred_at
    )
    assert withdrawn == LedgerRow(
        summary.id, 3, withdrawal.event_id, EntryKind.WITHDRAWAL, Decimal("5"), Decimal("7.50"), withdrawal.occurred_at
    )
    assert (summary.balance, summary.version) == (Decimal("7.50"), 3)


def test_a_closing_closes_the_summary_at_its_time_and_writes_a_zero_closure_row():
    summary = opened("10.00")
    closing = stored("AccountClosed", 2)
    entry = apply_event(summary, closing)
    assert (summary.status, summary.closed_at, summary.opened_at, summary.balance) == (
        AccountStatus.CLOSED,
        closing.occurred_at,
        OPENED_AT + timedelta(minutes=1),
        Decimal("10.00"),
    )
    assert entry == LedgerRow(
        summary.id, 2, closing.event_id, EntryKind.CLOSURE, Decimal("0.00"), Decimal("10.00"), closing.occurred_at
    )


def test_the_balance_may_reach_the_limit_either_way_but_not_pass_it():
    at_the_limit = opened(str(BALANCE_LIMIT - 1))
    apply_event(at_the_limit, stored("FundsDeposited", 2, amount="1.00"))
    assert at_the_limit.balance == BALANCE_LIMIT == Decimal("9999999999999.99")
    overdrawn = opened("0.00")  # the bank never lets this happen; the read side must still hold it
    apply_event(overdrawn, stored("FundsWithdrawn", 2, amount=str(BALANCE_LIMIT)))
    assert overdrawn.balance == -BALANCE_LIMIT
    with pytest.raises(CorruptEvent):
        apply_event(overdrawn, stored("FundsWithdrawn", 3, amount="0.01"))


@pytest.mark.parametrize(
    "event, reason",
    [
        (stored("FundsDeposited", 2), "FundsDeposited v2 has no 'amount'"),
        (stored("FundsDeposited", 2, amount="1.001"), "FundsDeposited v2: amount '1.001' is not a decimal amount"),
        (stored("FundsDeposited", 2, amount="NaN"), "FundsDeposited v2: amount 'NaN' is not a decimal amount"),
        (stored("FundsWithdrawn", 2, amount="ten"), "FundsWithdrawn v2: amount 'ten' is not a decimal amount"),
        (stored("FundsWithdrawn", 2, amount=True), "FundsWithdrawn v2: amount True is not a decimal amount"),
        (stored("FundsWithdrawn", 2, amount=None), "FundsWithdrawn v2: amount None is not a decimal amount"),
        (
            stored("FundsDeposited", 2, amount=str(BALANCE_LIMIT)),
            "FundsDeposited v2 would make the balance 10000000000009.99, beyond 9,999,999,999,999.99",
        ),
        (
            stored("AccountOpened", 2, holder=["Ada"], account_type="SAVINGS", opening_balance="1.00"),
            "AccountOpened v2: holder ['Ada'] is not text",
        ),
        (
            stored("AccountOpened", 2, holder="Ada", account_type=1, opening_balance="1.00"),
            "AccountOpened v2: account_type 1 is not text",
        ),
        (
            stored("AccountOpened", 2, holder="Ada", account_type="SAVINGS", opening_balance="10000000000000.00"),
            "AccountOpened v2 would make the balance 10000000000000.00, beyond 9,999,999,999,999.99",
        ),
    ],
)
def test_an_event_that_cannot_be_applied_says_which_event_and_what_is_wrong(event, reason):
    summary = opened()
    with pytest.raises(CorruptEvent) as refused:
        apply_event(summary, event)
    assert str(refused.value) == reason
    assert (summary.balance, summary.version, summary.holder) == (Decimal("10.00"), 1, "Ada")


def test_an_event_type_without_a_projector_is_named_in_the_refusal():
    with pytest.raises(UnknownEventType) as refused:
        apply_event(opened(), stored("FundsFrozen", 2))
    assert str(refused.value) == "No projector for event type 'FundsFrozen'"

"""Projectors: pure functions that apply one stored event to an account's read rows.

They work on unsaved model instances so that the live path (one event at a
time, in a transaction) and the rebuild (everything in memory, bulk writes)
share the same logic.
"""
from decimal import Decimal
from typing import Callable

from eventstore.store import StoredEvent
from projections.models import AccountStatus, AccountSummary, EntryKind, LedgerEntry


class UnknownEventType(Exception):
    pass


def _entry(summary: AccountSummary, event: StoredEvent, kind: str, amount: Decimal) -> LedgerEntry:
    return LedgerEntry(
        account_id=summary.id,
        version=event.version,
        event_id=event.event_id,
        kind=kind,
        amount=amount,
        balance_after=summary.balance,
        occurred_at=event.occurred_at,
    )


def project_account_opened(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
    summary.holder = event.data["holder"]
    summary.account_type = event.data["account_type"]
    summary.balance = Decimal(event.data["opening_balance"])
    summary.status = AccountStatus.OPEN
    summary.opened_at = event.occurred_at
    summary.closed_at = None
    return _entry(summary, event, EntryKind.OPENING, summary.balance)


def project_funds_deposited(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
    amount = Decimal(event.data["amount"])
    summary.balance += amount
    return _entry(summary, event, EntryKind.DEPOSIT, amount)


def project_funds_withdrawn(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
    amount = Decimal(event.data["amount"])
    summary.balance -= amount
    return _entry(summary, event, EntryKind.WITHDRAWAL, amount)


def project_account_closed(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
    summary.status = AccountStatus.CLOSED
    summary.closed_at = event.occurred_at
    return _entry(summary, event, EntryKind.CLOSURE, Decimal("0.00"))


PROJECTORS: dict[str, Callable[[AccountSummary, StoredEvent], LedgerEntry]] = {
    "AccountOpened": project_account_opened,
    "FundsDeposited": project_funds_deposited,
    "FundsWithdrawn": project_funds_withdrawn,
    "AccountClosed": project_account_closed,
}


def apply_event(summary: AccountSummary, event: StoredEvent) -> LedgerEntry:
    """Apply `event` (the next version of the account) to `summary` in memory."""
    try:
        projector = PROJECTORS[event.event_type]
    except KeyError:
        raise UnknownEventType(f"No projector for event type {event.event_type!r}") from None
    entry = projector(summary, event)
    summary.version = event.version
    return entry

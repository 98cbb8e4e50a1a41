"""Projectors: pure functions that apply one stored event to an account's read rows.

They change an unsaved summary in memory and return the event's ledger row,
so that the live path (a batch of events, in a transaction) and the rebuild
(everything in memory, bulk writes) share the same logic. Each reads and checks
the event's data before it changes the summary, so an event that cannot be
applied leaves the summary as it was.
"""

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple
from uuid import UUID

from eventstore.store import StoredEvent
from projections.models import AccountStatus, AccountSummary, EntryKind


class UnknownEventType(Exception):
    pass


class CorruptEvent(ValueError):
    """The event's data is missing a field or holds a value its type cannot have."""


def _field(event: StoredEvent, name: str) -> object:
    try:
        return event.data[name]
    except KeyError:
        raise CorruptEvent(f"{event.event_type} v{event.version} has no {name!r}") from None


def _text(event: StoredEvent, name: str) -> str:
    value = _field(event, name)
    if not isinstance(value, str):
        raise CorruptEvent(f"{event.event_type} v{event.version}: {name} {value!r} is not text")
    return value


def _money(event: StoredEvent, name: str) -> Decimal:
    """Amounts are stored as decimal strings in cents; anything else (a float, NaN, "abc", "1.001") is corrupt."""
    value = _field(event, name)
    try:
        amount = Decimal(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    except InvalidOperation:
        amount = None
    exponent = amount.as_tuple().exponent if amount is not None else None  # a letter for NaN and the infinities
    if amount is None or not isinstance(exponent, int) or exponent < -2:
        raise CorruptEvent(f"{event.event_type} v{event.version}: {name} {value!r} is not a decimal amount")
    return amount


_BALANCE = AccountSummary._meta.get_field("balance")
BALANCE_LIMIT = Decimal(10) ** (_BALANCE.max_digits - _BALANCE.decimal_places) - Decimal(10) ** -_BALANCE.decimal_places


def _balance(event: StoredEvent, balance: Decimal) -> Decimal:
    """The bank never lets a balance past the limit, so an event that would is corrupt."""
    if abs(balance) > BALANCE_LIMIT:
        raise CorruptEvent(
            f"{event.event_type} v{event.version} would make the balance {balance}, beyond {BALANCE_LIMIT:,}"
        )
    return balance


class LedgerRow(NamedTuple):
    """A LedgerEntry's values, not yet a model instance: a replay makes millions, and building
    a model for each cost more than all the projecting (the live path turns them into models)."""

    account_id: UUID
    version: int
    event_id: UUID
    kind: str
    amount: Decimal
    balance_after: Decimal
    occurred_at: datetime


def _entry(summary: AccountSummary, event: StoredEvent, kind: str, amount: Decimal) -> LedgerRow:
    return LedgerRow(summary.id, event.version, event.event_id, kind, amount, summary.balance, event.occurred_at)


def project_account_opened(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    holder, account_type = _text(event, "holder"), _text(event, "account_type")
    opening_balance = _balance(event, _money(event, "opening_balance"))
    summary.holder = holder
    summary.account_type = account_type
    summary.balance = opening_balance
    summary.status = AccountStatus.OPEN
    summary.opened_at = event.occurred_at
    summary.closed_at = None
    return _entry(summary, event, EntryKind.OPENING, summary.balance)


def project_funds_deposited(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    amount = _money(event, "amount")
    summary.balance = _balance(event, summary.balance + amount)
    return _entry(summary, event, EntryKind.DEPOSIT, amount)


def project_funds_withdrawn(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    amount = _money(event, "amount")
    summary.balance = _balance(event, summary.balance - amount)
    return _entry(summary, event, EntryKind.WITHDRAWAL, amount)


def project_account_closed(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    summary.status = AccountStatus.CLOSED
    summary.closed_at = event.occurred_at
    return _entry(summary, event, EntryKind.CLOSURE, Decimal("0.00"))


# A projector returns a LedgerRow, or anything with the same attributes (a LedgerEntry will do).
PROJECTORS: dict[str, Callable[[AccountSummary, StoredEvent], LedgerRow]] = {
    "AccountOpened": project_account_opened,
    "FundsDeposited": project_funds_deposited,
    "FundsWithdrawn": project_funds_withdrawn,
    "AccountClosed": project_account_closed,
}


def apply_event(summary: AccountSummary, event: StoredEvent) -> LedgerRow:
    """Apply `event` (the next version of the account) to `summary` in memory."""
    try:
        projector = PROJECTORS[event.event_type]
    except KeyError:
        raise UnknownEventType(f"No projector for event type {event.event_type!r}") from None
    entry = projector(summary, event)
    summary.version = event.version
    return entry

"""The BankAccount aggregate: it decides, by the bank's rules, and records events."""

import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from uuid import UUID

from accounts.domain import errors
from accounts.domain.commands import CommandMetadata
from accounts.domain.events import (
    AccountClosed,
    AccountEvent,
    AccountOpened,
    FundsDeposited,
    FundsWithdrawn,
)
from accounts.domain.money import MAX_AMOUNT, positive_money, to_money

ACCOUNT_TYPES = ("SAVINGS", "CURRENT")
MAX_HOLDER_LENGTH = 255


def utc_now() -> datetime:
    return datetime.now(UTC)


def clean_holder(holder: object) -> str:
    if not isinstance(holder, str):
        raise errors.InvalidHolder("holder", "must be a string")
    holder = holder.strip()
    if not holder:
        raise errors.InvalidHolder("holder", "must not be empty")
    if len(holder) > MAX_HOLDER_LENGTH:
        raise errors.InvalidHolder("holder", f"must be at most {MAX_HOLDER_LENGTH} characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in holder):
        raise errors.InvalidHolder("holder", "must not contain control characters")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in holder):
        raise errors.InvalidHolder("holder", "must be valid Unicode text (it contains a lone surrogate)")
    # Bidirectional overrides and zero-width characters make a name display as
    # another (in the admin) and dodge exact lookups.
    if any(unicodedata.category(c) == "Cf" for c in holder):
        raise errors.InvalidHolder(
            "holder", "must not contain invisible format characters (bidirectional controls, zero-width characters)"
        )
    return holder


def clean_account_type(account_type: object) -> str:
    if account_type not in ACCOUNT_TYPES:
        raise errors.InvalidAccountType("account_type", f"must be one of {', '.join(ACCOUNT_TYPES)}")
    return account_type


class InvalidSnapshot(ValueError):
    """A snapshot this code cannot restore: the caller replays the events instead."""


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _from_iso(text: object) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(_checked(text, str))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


T = TypeVar("T")


def _checked(value: object, expected: type[T]) -> T:
    # bool is an int, but no count or version is a bool.
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not a {expected.__name__}")
    return value


class BankAccount:
    """State is rebuilt from events; every change goes through `_record`."""

    def __init__(self, account_id: UUID):
        self.id = account_id
        self.version = 0
        self.holder = ""
        self.account_type = ""
        self.balance = Decimal("0.00")
        self.is_closed = False
        self.opened_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.pending_events: list[AccountEvent] = []

    # -- building --------------------------------------------------------
    @classmethod
    def from_history(cls, account_id: UUID, history: Iterable[AccountEvent]) -> "BankAccount":
        account = cls(account_id)
        for event in history:
            account._apply(event)
        if account.version == 0:
            raise errors.AccountNotFound(f"No bank account with id {account_id}")
        return account

    def __copy__(self) -> "BankAccount":
        """An account that goes its own way from here: it shares no list with this one.

        Every other attribute is an immutable value, so a shallow copy with its
        own pending events is a full copy; a caller may read one while the next
        command changes the other.
        """
        cls = type(self)
        twin = cls.__new__(cls)  # no __init__: every attribute is copied over next
        twin.__dict__.update(vars(self))
        twin.pending_events = list(self.pending_events)
        return twin

    # -- snapshots ---------------------------------------------------------
    def to_snapshot(self) -> dict[str, Any]:
        """The state every rule relies on, as plain JSON-able data (money as strings)."""
        return {
            "version": self.version,
            "holder": self.holder,
            "account_type": self.account_type,
            "balance": str(self.balance),
            "is_closed": self.is_closed,
            "opened_at": _iso(self.opened_at),
            "closed_at": _iso(self.closed_at),
        }

    @classmethod
    def from_snapshot(
        cls, account_id: UUID, snapshot: dict[str, Any], history: Iterable[AccountEvent] = ()
    ) -> "BankAccount":
        """The account as `to_snapshot` left it, then `history` (the events after it) applied.

        Raises InvalidSnapshot if the snapshot is not one `to_snapshot` could have written.
        Keys it does not know are left to whoever wrote them beside the account's state.
        """
        account = cls(account_id)
        try:
            account.version = _checked(snapshot["version"], int)
            account.holder = _checked(snapshot["holder"], str)
            account.account_type = _checked(snapshot["account_type"], str)
            account.balance = Decimal(_checked(snapshot["balance"], str))
            account.is_closed = _checked(snapshot["is_closed"], bool)
            account.opened_at = _from_iso(snapshot["opened_at"])
            account.closed_at = _from_iso(snapshot["closed_at"])
        except (KeyError, TypeError, ValueError, ArithmeticError) as error:
            raise InvalidSnapshot(f"Not a snapshot of a bank account: {error!r}") from None
        if account.version < 1 or not account.balance.is_finite() or account.opened_at is None:
            raise InvalidSnapshot("Not a snapshot of a bank account: no opening")
        for event in history:
            account._apply(event)
        return account

    @classmethod
    def open(
        cls,
        *,
        account_id: UUID,
        holder: object,
        account_type: object,
        opening_balance: object,
        metadata: CommandMetadata | None = None,
    ) -> "BankAccount":
        holder = clean_holder(holder)
        account_type = clean_account_type(account_type)
        opening_balance = to_money(opening_balance, field="opening_balance")
        if opening_balance < 0:
            raise errors.InvalidAmount("opening_balance", "must not be negative")
        account = cls(account_id)
        account._record(
            AccountOpened,
            metadata,
            holder=holder,
            account_type=account_type,
            opening_balance=opening_balance,
        )
        return account

    # -- commands --------------------------------------------------------
    def deposit(self, amount: object, *, metadata: CommandMetadata | None = None) -> None:
        amount = positive_money(amount)
        self.check_account_is_not_closed()
        self.check_balance_stays_within_limit(amount)
        self._record(FundsDeposited, metadata, amount=amount)

    def withdraw(self, amount: object, *, metadata: CommandMetadata | None = None) -> None:
        amount = positive_money(amount)
        self.check_account_is_not_closed()
        self.check_has_sufficient_funds(amount)
        self._record(FundsWithdrawn, metadata, amount=amount)

    def close(self, *, metadata: CommandMetadata | None = None) -> None:
        if self.is_closed:
            raise errors.AccountAlreadyClosed("This bank account is already closed")
        self._record(AccountClosed, metadata)

    # -- rules -----------------------------------------------------------
    def check_account_is_not_closed(self) -> None:
        if self.is_closed:
            raise errors.AccountIsClosed("This bank account is closed: no deposits or withdrawals")

    def check_balance_stays_within_limit(self, deposit: Decimal) -> None:
        if self.balance + deposit > MAX_AMOUNT:
            raise errors.BalanceLimitExceeded(
                f"The balance may not exceed {MAX_AMOUNT:,}: it is {self.balance}, the deposit was {deposit}"
            )

    def check_has_sufficient_funds(self, amount: Decimal) -> None:
        if amount > self.balance:
            raise errors.InsufficientFunds(
                f"Insufficient funds: the balance is {self.balance}, the withdrawal was {amount}"
            )

    # -- events ----------------------------------------------------------
    def _record(self, event_class: type[AccountEvent], request: CommandMetadata | None, **fields: object) -> None:
        event = event_class(
            account_id=self.id,
            version=self.version + 1,
            metadata=(request or CommandMetadata()).for_event(utc_now()),
            **fields,
        )
        self._apply(event)
        self.pending_events.append(event)

    def _apply(self, event: AccountEvent) -> None:
        if isinstance(event, AccountOpened):
            self.holder = event.holder
            self.account_type = event.account_type
            self.balance = event.opening_balance
            self.opened_at = event.occurred_at
        elif isinstance(event, FundsDeposited):
            self.balance += event.amount
        elif isinstance(event, FundsWithdrawn):
            self.balance -= event.amount
        elif isinstance(event, AccountClosed):
            self.is_closed = True
            self.closed_at = event.occurred_at
        self.version = event.version

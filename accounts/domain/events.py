"""Events: what happened to an account. Past-tense names, frozen, never edited."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID


@dataclass(frozen=True)
class AccountEvent:
    account_id: UUID
    version: int
    occurred_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class AccountOpened(AccountEvent):
    holder: str = ""
    account_type: str = ""
    opening_balance: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class FundsDeposited(AccountEvent):
    amount: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class FundsWithdrawn(AccountEvent):
    amount: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class AccountClosed(AccountEvent):
    pass


EVENT_TYPES: dict[str, type[AccountEvent]] = {
    cls.__name__: cls for cls in (AccountOpened, FundsDeposited, FundsWithdrawn, AccountClosed)
}

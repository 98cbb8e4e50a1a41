"""Events: what happened to an account. Past-tense names, frozen, never edited."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from accounts.domain.metadata import EventMetadata


@dataclass(frozen=True)
class AccountEvent:
    account_id: UUID
    version: int
    metadata: EventMetadata

    @property
    def occurred_at(self) -> datetime:
        return self.metadata.occurred_at


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

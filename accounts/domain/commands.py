"""Commands: what a client asks the bank to do. Imperative names, plain data."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from accounts.domain.metadata import EventMetadata


@dataclass(frozen=True)
class CommandMetadata:
    """Who asked, and the request it came from; copied onto every event (the audit trail)."""

    issued_by: str = ""
    correlation_id: str = ""
    idempotency_key: str = ""
    # Requests under the same key are the same request only this recently
    # (the key's time to live); not recorded on events.
    idempotent_since: datetime | None = None

    def for_event(self, occurred_at: datetime) -> EventMetadata:
        """What an event caused by this request records about it."""
        return EventMetadata(
            issued_by=self.issued_by,
            correlation_id=self.correlation_id,
            idempotency_key=self.idempotency_key,
            occurred_at=occurred_at,
        )


@dataclass(frozen=True)
class Command:
    pass


@dataclass(frozen=True)
class OpenAccount(Command):
    holder: str
    account_type: str
    opening_balance: Decimal | int | str
    metadata: CommandMetadata = field(default_factory=CommandMetadata)


@dataclass(frozen=True)
class DepositFunds(Command):
    account_id: UUID
    amount: Decimal | int | str
    metadata: CommandMetadata = field(default_factory=CommandMetadata)


@dataclass(frozen=True)
class WithdrawFunds(Command):
    account_id: UUID
    amount: Decimal | int | str
    metadata: CommandMetadata = field(default_factory=CommandMetadata)


@dataclass(frozen=True)
class CloseAccount(Command):
    account_id: UUID
    metadata: CommandMetadata = field(default_factory=CommandMetadata)

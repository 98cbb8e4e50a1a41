"""Read-side queries. Views call these; nothing here writes."""

from decimal import Decimal
from uuid import UUID

from django.db.models import QuerySet

from projections.models import AccountStatus, AccountSummary, DeadLetter, DeadLetterStatus, LedgerEntry, RebuildJob


def account_get(*, account_id: UUID) -> AccountSummary | None:
    return AccountSummary.objects.filter(id=account_id).first()


def account_list(
    *,
    holder: str | None = None,
    account_type: str | None = None,
    status: str | None = None,
    balance_gt: Decimal | None = None,
    balance_lt: Decimal | None = None,
) -> QuerySet[AccountSummary]:
    accounts = AccountSummary.objects.all()
    if holder is not None:
        accounts = accounts.filter(holder=holder)
    if account_type is not None:
        accounts = accounts.filter(account_type=account_type)
    if status is not None:
        accounts = accounts.filter(status=status)
    if balance_gt is not None:
        accounts = accounts.filter(balance__gt=balance_gt)
    if balance_lt is not None:
        accounts = accounts.filter(balance__lt=balance_lt)
    return accounts


def open_account_list(**filters) -> QuerySet[AccountSummary]:
    """As techbank's lookups: closed accounts are left out."""
    return account_list(status=AccountStatus.OPEN, **filters)


def ledger_list(*, account_id: UUID) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(account_id=account_id).order_by("version")


def dead_letters_pending_count() -> int:
    return DeadLetter.objects.filter(status=DeadLetterStatus.PENDING).count()


def rebuild_job_get(*, rebuild_id: str) -> RebuildJob | None:
    """The rebuild with this id, or None (also for an id that is not a UUID)."""
    try:
        return RebuildJob.objects.filter(id=UUID(rebuild_id)).first()
    except ValueError:
        return None

"""Read models. Written only by projectors; can be dropped and rebuilt at any time."""

import uuid
from typing import TYPE_CHECKING, ClassVar

from django.db import models

from accounts.domain.bank_account import ACCOUNT_TYPES, MAX_HOLDER_LENGTH

if TYPE_CHECKING:
    from enum import StrEnum

    class TextChoices(StrEnum):
        """What mypy needs to know of Django's TextChoices, which it sees without type stubs.

        Each member is its value, a str (mypy would take `NAME = "value", "label"` for a tuple).
        """

        choices: ClassVar[list[tuple[str, str]]]
        values: ClassVar[list[str]]
        label: str
else:
    TextChoices = models.TextChoices


class AccountStatus(TextChoices):
    OPEN = "OPEN", "Open"
    CLOSED = "CLOSED", "Closed"


# The domain decides which account types exist; the read model only labels them ("SAVINGS" -> "Savings").
ACCOUNT_TYPE_CHOICES = [(account_type, account_type.title()) for account_type in ACCOUNT_TYPES]


class AccountSummary(models.Model):
    id = models.UUIDField(primary_key=True)
    holder = models.CharField(max_length=MAX_HOLDER_LENGTH, db_index=True)
    account_type = models.CharField(max_length=16, choices=ACCOUNT_TYPE_CHOICES)
    balance = models.DecimalField(max_digits=15, decimal_places=2)
    status = models.CharField(max_length=8, choices=AccountStatus.choices, default=AccountStatus.OPEN)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(help_text="The last event version applied to this row.")

    class Meta:
        ordering = ["opened_at", "id"]
        verbose_name = "account"
        indexes = [models.Index(fields=["status", "balance"])]

    def __str__(self) -> str:
        return f"{self.holder} ({self.account_type}) {self.id}"


class EntryKind(TextChoices):
    OPENING = "OPENING", "Opening balance"
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
    CLOSURE = "CLOSURE", "Closure"


class LedgerEntry(models.Model):
    """One row per money-relevant event of an account, with the balance after it."""

    account = models.ForeignKey(AccountSummary, on_delete=models.DO_NOTHING, db_constraint=False, related_name="ledger")
    version = models.PositiveIntegerField()
    event_id = models.UUIDField(unique=True)
    kind = models.CharField(max_length=16, choices=EntryKind.choices)
    amount = models.DecimalField(max_digits=15, decimal_places=2)
    balance_after = models.DecimalField(max_digits=15, decimal_places=2)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["account_id", "version"]
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        constraints = [models.UniqueConstraint(fields=["account", "version"], name="ledger_account_version_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} (v{self.version})"


# Not a read model: the projection's record of what it could not apply. A rebuild keeps it.


class DeadLetterStatus(TextChoices):
    PENDING = "PENDING", "Pending"
    RETRIED_OK = "RETRIED_OK", "Applied on a retry"
    RESOLVED = "RESOLVED", "Resolved by staff (nothing to apply)"


class DeadLetterSource(TextChoices):
    KAFKA = "kafka", "Kafka topic"
    IN_PROCESS = "in-process", "In-process bus"
    REBUILD = "rebuild", "Read model rebuild"


class DeadLetter(models.Model):
    """A message or event the projection could not apply, set aside so the ones after it go on.

    Recorded once per message (`dedup_key`: the event id, or a hash of the raw
    bytes when they do not decode); seeing it again counts another attempt.
    """

    dedup_key = models.CharField(max_length=80, unique=True, editable=False)
    source = models.CharField(max_length=16, choices=DeadLetterSource.choices)
    raw_message = models.TextField(help_text="The message as received: UTF-8 text, or base64 if not text.")
    raw_is_base64 = models.BooleanField(default=False)
    message_key = models.CharField(max_length=255, blank=True, help_text="The Kafka key (the account id).")
    partition = models.IntegerField(null=True, blank=True)
    offset = models.BigIntegerField(null=True, blank=True)
    # Known when the message decoded; for one that did not, whatever could be read from it.
    event_id = models.UUIDField(null=True, blank=True, db_index=True)
    event_type = models.CharField(max_length=100, blank=True)
    account_id = models.UUIDField(null=True, blank=True, db_index=True)
    version = models.PositiveIntegerField(null=True, blank=True)
    reason_type = models.CharField(max_length=100, help_text="The exception class, or BlockedBehindPoison.")
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=DeadLetterStatus.choices, default=DeadLetterStatus.PENDING)
    attempts = models.PositiveIntegerField(default=1, help_text="How often applying it failed.")
    first_seen_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()
    retried_at = models.DateTimeField(null=True, blank=True)
    resolution = models.TextField(blank=True, help_text="How it stopped being pending.")

    class Meta:
        ordering = ["-first_seen_at", "-id"]
        verbose_name = "dead letter"
        indexes = [models.Index(fields=["status", "first_seen_at"])]
        permissions = [("handle_deadletter", "Can retry or resolve dead letters")]

    def __str__(self) -> str:
        what = f"{self.event_type} v{self.version}" if self.event_type else "undecodable message"
        return f"{what} ({self.reason_type})"


# Not a read model either: the record of rebuilds, their progress and how they ended.


class RebuildStatus(TextChoices):
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"


class RebuildJob(models.Model):
    """A rebuild of the read model (projections.rebuild): who asked, how far it got, how it ended."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=RebuildStatus.choices, default=RebuildStatus.RUNNING)
    # True while it runs, NULL once it ended: unique, so a second one cannot start (NULLs never collide).
    running = models.BooleanField(null=True, unique=True, default=True, editable=False)
    requested_by = models.CharField(max_length=150, blank=True)
    events_done = models.PositiveBigIntegerField(default=0, help_text="Events replayed so far, catch-up included.")
    events_total = models.PositiveBigIntegerField(default=0, help_text="Events in the store (it may grow meanwhile).")
    accounts = models.PositiveIntegerField(null=True, blank=True, help_text="Accounts in the rebuilt read model.")
    started_at = models.DateTimeField()
    heartbeat_at = models.DateTimeField(help_text="Last sign of progress; a job silent for long was abandoned.")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "read model rebuild"
        # The read side's own permission (README, "Access"): it guards starting and watching rebuilds.
        permissions = [("rebuild_read_model", "Can rebuild the read model")]

    def __str__(self) -> str:
        return f"rebuild {self.id} ({self.status})"

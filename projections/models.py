"""Read models. Written only by projectors; can be dropped and rebuilt at any time."""
from django.db import models


class AccountStatus(models.TextChoices):
    OPEN = "OPEN", "Open"
    CLOSED = "CLOSED", "Closed"


class AccountType(models.TextChoices):
    SAVINGS = "SAVINGS", "Savings"
    CURRENT = "CURRENT", "Current"


class AccountSummary(models.Model):
    id = models.UUIDField(primary_key=True)
    holder = models.CharField(max_length=255, db_index=True)
    account_type = models.CharField(max_length=16, choices=AccountType.choices)
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


class EntryKind(models.TextChoices):
    OPENING = "OPENING", "Opening balance"
    DEPOSIT = "DEPOSIT", "Deposit"
    WITHDRAWAL = "WITHDRAWAL", "Withdrawal"
    CLOSURE = "CLOSURE", "Closure"


class LedgerEntry(models.Model):
    """One row per money-relevant event of an account, with the balance after it."""

    account = models.ForeignKey(
        AccountSummary, on_delete=models.DO_NOTHING, db_constraint=False, related_name="ledger"
    )
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
        constraints = [
            models.UniqueConstraint(fields=["account", "version"], name="ledger_account_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} (v{self.version})"

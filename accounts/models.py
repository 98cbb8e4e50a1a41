"""The command side's own tables. (Events live in the event store, not here.)"""

from django.conf import settings
from django.db import models


class IdempotencyRecord(models.Model):
    """One client request made under an Idempotency-Key, and the answer it got.

    A retry with the same key and the same request is answered from here
    without running the command again.
    """

    class Status(models.TextChoices):
        IN_PROGRESS = "IN_PROGRESS", "In progress"
        DONE = "DONE", "Done"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    locked_until = models.DateTimeField(help_text="While in progress: when another request may take over.")
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key_unique")]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"


class AccountCommandPermissions(models.Model):  # noqa: DJ008 - no rows to name: it only carries permissions
    """No table: it only carries the Django permissions of the commands (README, "Access").

    Looking accounts up needs projections.view_accountsummary and rebuilding the read
    model projections.rebuild_read_model (the read side's own); these are the commands'.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("open_account", "Can open accounts"),
            ("move_money", "Can deposit and withdraw funds"),
            ("close_account", "Can close accounts"),
        ]

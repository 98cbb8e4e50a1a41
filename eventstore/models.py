from django.db import models


class StoredEventRecord(models.Model):
    """One row per event, never updated. (stream_id, version) is the concurrency guard."""

    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    stream_id = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    event_type = models.CharField(max_length=100)
    data = models.JSONField()
    metadata = models.JSONField(default=dict)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "event_store"
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["stream_id", "version"], name="event_store_stream_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} v{self.version} of {self.stream_id}"


class OutboxEntry(models.Model):  # noqa: DJ008 - shown nowhere (no admin page); named by its event
    """An event stored but not yet published; written in the append's transaction."""

    stored_event = models.OneToOneField(
        StoredEventRecord, on_delete=models.CASCADE, primary_key=True, db_constraint=False
    )

    class Meta:
        db_table = "event_store_outbox"
        ordering = ["stored_event"]


class SnapshotRecord(models.Model):
    """The latest snapshot of one stream: a cache of its state, rebuilt from the events when missing or stale."""

    stream_id = models.CharField(max_length=64, primary_key=True)
    version = models.PositiveIntegerField()
    schema = models.CharField(max_length=64)
    state = models.JSONField()
    taken_at = models.DateTimeField()

    class Meta:
        db_table = "event_store_snapshots"

    def __str__(self) -> str:
        return f"snapshot of {self.stream_id} at v{self.version}"

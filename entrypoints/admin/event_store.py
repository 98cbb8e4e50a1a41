"""The event store, for staff who need to see exactly what was recorded. Never editable."""

from django.contrib import admin

from entrypoints.admin.read_only import ReadOnlyModelAdmin
from eventstore.models import StoredEventRecord


@admin.register(StoredEventRecord)
class StoredEventAdmin(ReadOnlyModelAdmin):
    list_display = ("position", "event_type", "stream_id", "version", "occurred_at")
    list_filter = ("event_type",)
    search_fields = ("=stream_id", "=event_id")
    readonly_fields = [f.name for f in StoredEventRecord._meta.fields]

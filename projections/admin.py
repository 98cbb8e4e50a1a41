"""Staff browse the read side here; they never edit it (commands change accounts)."""
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from projections.models import AccountSummary, LedgerEntry
from techbank_site import bootstrap
from techbank_site.read_only_admin import ReadOnlyModelAdmin


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    fields = ("version", "kind", "amount", "balance_after", "occurred_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("version",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AccountSummary)
class AccountSummaryAdmin(ReadOnlyModelAdmin):
    list_display = ("holder", "account_type", "balance", "status", "opened_at", "id")
    list_filter = ("account_type", "status")
    search_fields = ("holder", "=id")
    ordering = ("-opened_at",)
    readonly_fields = ("event_history",)
    fieldsets = (
        (None, {"fields": ("id", "holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")}),
        ("Event history (from the event store)", {"fields": ("event_history",)}),
    )
    inlines = [LedgerEntryInline]

    @admin.display(description="Events")
    def event_history(self, account: AccountSummary):
        events = bootstrap.event_store().load_stream(str(account.id))
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e.version, e.event_type, e.occurred_at.isoformat(), e.data, e.metadata.get("issued_by", ""))
                for e in events
            ),
        )
        return format_html(
            "<table><tr><th>Version</th><th>Type</th><th>Occurred at</th><th>Data</th><th>Issued by</th></tr>"
            "{}</table>",
            rows,
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyModelAdmin):
    list_display = ("account", "version", "kind", "amount", "balance_after", "occurred_at")
    list_filter = ("kind",)
    search_fields = ("=account__id", "account__holder")
    list_select_related = ("account",)

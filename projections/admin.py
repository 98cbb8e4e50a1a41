"""Staff browse the read side here; they never edit it (commands change accounts).

Dead letters (events the projection could not apply) are read-only too; staff
act on them only through the Retry and Mark-resolved actions, which call services.
"""
import json
import logging

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from projections.dead_letters import dead_letters_resolve
from projections.models import AccountSummary, DeadLetter, LedgerEntry
from projections.services import retry_dead_letters
from techbank_site import bootstrap
from techbank_site.read_only_admin import ReadOnlyModelAdmin

logger = logging.getLogger(__name__)


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


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyModelAdmin):
    list_display = (
        "first_seen_at", "status", "reason_type", "event_type", "version", "account_id", "source", "attempts",
        "short_reason",
    )
    list_filter = ("status", "reason_type", "source")
    show_facets = admin.ShowFacets.ALWAYS  # the counts, per status, reason and source
    search_fields = ("=account_id", "=event_id")
    actions = ("retry_selected", "mark_resolved")
    fieldsets = (
        (None, {"fields": (
            "status", "reason_type", "reason", "attempts", "first_seen_at", "last_failed_at", "retried_at", "resolution"
        )}),
        ("Event (as far as it could be read)", {"fields": ("event_id", "event_type", "account", "version")}),
        ("Message", {"fields": ("source", "message_key", "partition", "offset", "raw_payload")}),
    )
    readonly_fields = ("account", "raw_payload")

    @admin.display(description="Reason")
    def short_reason(self, letter: DeadLetter):
        return letter.reason if len(letter.reason) <= 80 else letter.reason[:79] + "…"

    @admin.display(description="Account")
    def account(self, letter: DeadLetter):
        if letter.account_id is None:
            return "-"
        if AccountSummary.objects.filter(id=letter.account_id).exists():
            url = reverse("admin:projections_accountsummary_change", args=[letter.account_id])
            return format_html('<a href="{}">{}</a>', url, letter.account_id)
        return f"{letter.account_id} (not in the read model)"

    @admin.display(description="Raw message")
    def raw_payload(self, letter: DeadLetter):
        if letter.raw_is_base64:
            return format_html("<p>Not UTF-8 text; base64:</p><pre>{}</pre>", letter.raw_message)
        try:  # shown indented when it is JSON, as sent otherwise
            text = json.dumps(json.loads(letter.raw_message), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            text = letter.raw_message
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)

    def has_handle_permission(self, request):
        return request.user.has_perm("projections.handle_deadletter")

    @admin.action(description="Retry selected", permissions=["handle"])
    def retry_selected(self, request, queryset):
        try:
            report = retry_dead_letters(dead_letters_to_retry=queryset, event_store=bootstrap.event_store())
        except Exception as exc:  # the event store or read database unavailable: say so instead of a 500
            logger.exception("retrying dead letters failed")
            self.message_user(request, f"Retry stopped, try again later: {type(exc).__name__}: {exc}", messages.ERROR)
            return
        text = f"Applied {report.applied}, still failing {report.failed}"
        if report.caught_up:
            text += f"; {report.caught_up} other pending event(s) of the same accounts applied with them"
        if report.skipped:
            text += f"; {report.skipped} already applied"
        self.message_user(request, text + ".", messages.WARNING if report.failed else messages.SUCCESS)

    @admin.action(description="Mark resolved (nothing to apply)", permissions=["handle"])
    def mark_resolved(self, request, queryset):
        resolved = dead_letters_resolve(dead_letters=queryset, resolved_by=request.user.get_username())
        self.message_user(request, f"Marked {resolved} pending dead letter(s) resolved.", messages.SUCCESS)

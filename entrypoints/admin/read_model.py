"""Staff browse the read side here; they never edit it (commands change accounts).

Dead letters (events the projection could not apply) are read-only too; staff
act on them only through the Retry and Mark-resolved actions, which call services.
"""

import json
import logging

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from entrypoints.admin.read_only import ReadOnlyModelAdmin
from entrypoints.wiring import services
from projections import selectors
from projections.dead_letter_retry import retry_dead_letters
from projections.dead_letters import dead_letters_resolve
from projections.models import AccountSummary, DeadLetter, LedgerEntry

logger = logging.getLogger(__name__)


# How many of an account's latest events and ledger entries its page shows; the
# rest are a link away, in the paginated lists (a page with every row of a long
# account ran to megabytes).
LATEST_ON_ACCOUNT_PAGE = 50


def _history_table(headers: tuple[str, ...], rows) -> str:
    return format_html(
        '<table style="width: 100%"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        format_html_join("", "<th>{}</th>", ((header,) for header in headers)),
        format_html_join("", "<tr>" + "<td>{}</td>" * len(headers) + "</tr>", rows),
    )


def _history_caption(shown: int, total: int, noun: str, list_url: str) -> str:
    told = f"Latest {shown} of {total} {noun}, newest first." if shown < total else f"All {total} {noun}, newest first."
    return format_html('<p>{} <a href="{}">All {} {}, page by page</a></p>', told, list_url, total, noun)


def _as_json(document: dict) -> str:
    return json.dumps(document, ensure_ascii=False, sort_keys=True)


@admin.register(AccountSummary)
class AccountSummaryAdmin(ReadOnlyModelAdmin):
    list_display = ("holder", "account_type", "balance", "status", "opened_at", "id")
    list_filter = ("account_type", "status")
    search_fields = ("holder", "=id")
    ordering = ("-opened_at",)
    readonly_fields = ("event_history", "ledger")
    fieldsets = (
        (None, {"fields": ("id", "holder", "account_type", "balance", "status", "opened_at", "closed_at", "version")}),
        ("Event history (from the event store)", {"fields": ("event_history",)}),
        ("Ledger", {"fields": ("ledger",)}),
    )

    @admin.display(description="Events")
    def event_history(self, account: AccountSummary):
        store = services().event_store
        stream_id = str(account.id)
        total = store.stream_version(stream_id)
        latest = store.load_stream(
            stream_id, after_version=max(total - LATEST_ON_ACCOUNT_PAGE, 0), limit=LATEST_ON_ACCOUNT_PAGE
        )
        list_url = f"{reverse('admin:eventstore_storedeventrecord_changelist')}?{urlencode({'stream_id': stream_id})}"
        table = _history_table(
            ("Version", "Type", "Occurred at (UTC)", "Data", "Issued by", "Correlation id"),
            (
                (
                    e.version,
                    e.event_type,
                    e.occurred_at.isoformat(),
                    format_html("<code>{}</code>", _as_json(e.data)),
                    e.metadata.get("issued_by", ""),
                    e.metadata.get("correlation_id", ""),
                )
                for e in reversed(latest)
            ),
        )
        return _history_caption(len(latest), total, "events", list_url) + table

    @admin.display(description="Entries")
    def ledger(self, account: AccountSummary):
        entries = selectors.ledger_list(account_id=account.id)
        total = entries.count()
        latest = entries.order_by("-version")[:LATEST_ON_ACCOUNT_PAGE]
        list_url = (
            f"{reverse('admin:projections_ledgerentry_changelist')}?{urlencode({'account__id__exact': account.id})}"
        )
        table = _history_table(
            ("Version", "Kind", "Amount", "Balance after", "Occurred at (UTC)"),
            ((e.version, e.get_kind_display(), e.amount, e.balance_after, e.occurred_at.isoformat()) for e in latest),
        )
        return _history_caption(len(latest), total, "ledger entries", list_url) + table


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyModelAdmin):
    list_display = ("account", "version", "kind", "amount", "balance_after", "occurred_at")
    list_filter = ("kind",)
    search_fields = ("=account__id", "account__holder")
    list_select_related = ("account",)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyModelAdmin):
    list_display = (
        "first_seen_at",
        "status",
        "reason_type",
        "event_type",
        "version",
        "account_id",
        "source",
        "attempts",
        "short_reason",
    )
    list_filter = ("status", "reason_type", "source")
    show_facets = admin.ShowFacets.ALWAYS  # the counts, per status, reason and source
    search_fields = ("=account_id", "=event_id")
    actions = ("retry_selected", "mark_resolved")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status",
                    "reason_type",
                    "reason",
                    "attempts",
                    "first_seen_at",
                    "last_failed_at",
                    "retried_at",
                    "resolution",
                )
            },
        ),
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
            report = retry_dead_letters(dead_letters_to_retry=queryset, event_store=services().event_store)
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

"""Staff browse accounts, ledgers and events in the admin, and cannot change them."""

import html
import re
import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from entrypoints.wiring import services
from eventstore.models import StoredEventRecord
from eventstore.store import NewEvent
from projections.models import AccountSummary, LedgerEntry
from projections.rebuild import rebuild_read_model
from tests.staff import staff_group

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_browser(client, django_user_model):
    staff = django_user_model.objects.create_user(username="auditor", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


@pytest.fixture
def browser_as(client, django_user_model):
    """browser_as(groups=["Auditor"]): the admin, signed in as a staff member (not a superuser)."""

    def log_in(*, groups=()):
        staff = django_user_model.objects.create_user(username="clerk", is_staff=True)
        staff.groups.add(*(staff_group(name) for name in groups))
        client.force_login(staff)
        return client

    return log_in


READ_SIDE_PAGES = (
    "admin:projections_accountsummary_changelist",
    "admin:projections_ledgerentry_changelist",
    "admin:eventstore_storedeventrecord_changelist",
)


@pytest.fixture
def accounts(api):
    ids = {}
    for holder, kind in (("Ada Lovelace", "SAVINGS"), ("Alan Turing", "CURRENT")):
        ids[holder] = api.post(
            "/api/accounts/", {"holder": holder, "account_type": kind, "opening_balance": "10.00"}, format="json"
        ).json()["id"]
    api.post(f"/api/accounts/{ids['Alan Turing']}/deposits", {"amount": "7.77"}, format="json")
    api.post(f"/api/accounts/{ids['Alan Turing']}/close")
    return ids


def test_staff_search_accounts_by_holder_and_id(staff_browser, accounts):
    url = reverse("admin:projections_accountsummary_changelist")
    by_holder = staff_browser.get(url, {"q": "Lovelace"}).content.decode()
    assert "Ada Lovelace" in by_holder and "Alan Turing" not in by_holder
    by_id = staff_browser.get(url, {"q": accounts["Alan Turing"]}).content.decode()
    assert "Alan Turing" in by_id and "Ada Lovelace" not in by_id


def test_staff_filter_accounts_by_type_and_status(staff_browser, accounts):
    url = reverse("admin:projections_accountsummary_changelist")
    closed = staff_browser.get(url, {"status__exact": "CLOSED"}).content.decode()
    assert "Alan Turing" in closed and "Ada Lovelace" not in closed
    savings = staff_browser.get(url, {"account_type__exact": "SAVINGS"}).content.decode()
    assert "Ada Lovelace" in savings and "Alan Turing" not in savings


def test_an_accounts_page_shows_its_ledger_and_event_history(staff_browser, accounts):
    page = staff_browser.get(
        reverse("admin:projections_accountsummary_change", args=[accounts["Alan Turing"]])
    ).content.decode()
    assert "7.77" in page and "17.77" in page  # the deposit and the balance after it
    for event_type in ("AccountOpened", "FundsDeposited", "AccountClosed"):
        assert event_type in page
    assert "teller" in page  # who issued the commands


def test_read_models_and_events_cannot_be_added_changed_or_deleted(staff_browser, accounts):
    account_id = accounts["Ada Lovelace"]
    change_url = reverse("admin:projections_accountsummary_change", args=[account_id])
    staff_browser.post(change_url, {"holder": "Mallory", "balance": "1000000.00"})
    assert AccountSummary.objects.get(id=account_id).holder == "Ada Lovelace"
    assert staff_browser.get(reverse("admin:projections_accountsummary_add")).status_code == 403
    assert (
        staff_browser.post(
            reverse("admin:projections_accountsummary_delete", args=[account_id]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AccountSummary.objects.filter(id=account_id).exists()
    event = StoredEventRecord.objects.first()
    assert (
        staff_browser.post(
            reverse("admin:eventstore_storedeventrecord_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert staff_browser.get(reverse("admin:eventstore_storedeventrecord_add")).status_code == 403
    assert "Save" not in staff_browser.get(change_url).content.decode().replace("Save as", "")


def test_staff_without_view_permissions_see_no_accounts_ledgers_or_events(browser_as, accounts):
    browser = browser_as()
    for page in READ_SIDE_PAGES:
        assert browser.get(reverse(page)).status_code == 403, page
    change_url = reverse("admin:projections_accountsummary_change", args=[accounts["Ada Lovelace"]])
    assert browser.get(change_url).status_code == 403
    index = browser.get(reverse("admin:index")).content.decode()
    assert not any(reverse(page) in index for page in READ_SIDE_PAGES)


def test_an_auditor_browses_accounts_ledgers_and_events_but_cannot_change_them(browser_as, accounts):
    browser = browser_as(groups=["Auditor"])
    for page in READ_SIDE_PAGES:
        assert browser.get(reverse(page)).status_code == 200, page
    account_id = accounts["Alan Turing"]
    change_url = reverse("admin:projections_accountsummary_change", args=[account_id])
    page = browser.get(change_url).content.decode()
    assert "17.77" in page and "FundsDeposited" in page
    assert browser.post(change_url, {"holder": "Mallory", "balance": "1000000.00"}).status_code == 403
    assert browser.get(reverse("admin:projections_accountsummary_add")).status_code == 403
    assert (
        browser.post(reverse("admin:projections_accountsummary_delete", args=[account_id]), {"post": "yes"}).status_code
        == 403
    )
    assert AccountSummary.objects.get(id=account_id).holder == "Alan Turing"
    event = StoredEventRecord.objects.first()
    assert (
        browser.post(
            reverse("admin:eventstore_storedeventrecord_change", args=[event.pk]), {"event_type": "X"}
        ).status_code
        == 403
    )
    assert StoredEventRecord.objects.get(pk=event.pk).event_type == event.event_type


def test_not_even_a_superuser_can_add_change_or_delete_ledger_entries_or_events(staff_browser, accounts):
    entry = LedgerEntry.objects.first()
    event = StoredEventRecord.objects.first()
    for model, obj in (("projections_ledgerentry", entry), ("eventstore_storedeventrecord", event)):
        assert staff_browser.get(reverse(f"admin:{model}_add")).status_code == 403
        assert (
            staff_browser.post(
                reverse(f"admin:{model}_change", args=[obj.pk]), {"amount": "1.00", "event_type": "X"}
            ).status_code
            == 403
        )
        assert staff_browser.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.get(pk=entry.pk).amount == entry.amount
    assert StoredEventRecord.objects.get(pk=event.pk).event_type == event.event_type


@pytest.fixture
def long_account(api, accounts):
    """An account of 300 events and 300 ledger entries (deposits stored straight into the
    event store and projected by a rebuild, for speed), beside the two of `accounts`."""
    account_id = api.post(
        "/api/accounts/",
        {"holder": "Grace Hopper", "account_type": "CURRENT", "opening_balance": "1.00"},
        format="json",
    ).json()["id"]
    deposits = [
        NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(UTC), {"issued_by": "teller"})
        for _ in range(299)
    ]
    store = services().event_store
    store.append(account_id, 1, deposits)
    rebuild_read_model(event_store=store)
    return account_id


def links_to(page: str, changelist: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'href="([^"]*)"', page) if href.startswith(changelist + "?")]


def test_a_long_accounts_page_shows_only_its_latest_events_and_ledger_rows(staff_browser, long_account):
    page = staff_browser.get(reverse("admin:projections_accountsummary_change", args=[long_account])).content.decode()
    # 50 events, 50 ledger entries, their headers and the navigation sidebar's rows; not 600.
    assert page.count("<tr") <= 120
    assert "300.00" in page  # the balance after the latest deposit
    assert ">300<" in page and ">251<" in page and ">250<" not in page  # versions of the latest 50 events
    assert "Latest 50 of 300 events" in page and "Latest 50 of 300 ledger entries" in page


def test_a_long_accounts_page_links_to_all_its_events_and_ledger_entries_page_by_page(
    staff_browser, long_account, accounts
):
    page = staff_browser.get(reverse("admin:projections_accountsummary_change", args=[long_account])).content.decode()
    for changelist, total, noun in (
        (reverse("admin:eventstore_storedeventrecord_changelist"), 300, "stored event records"),
        (reverse("admin:projections_ledgerentry_changelist"), 300, "ledger entries"),
    ):
        [link] = set(links_to(page, changelist))
        first = staff_browser.get(link)
        assert first.status_code == 200, link
        listing = first.content.decode()
        assert f"{total} {noun}" in listing  # the paginator's count: this account's only
        assert "Alan Turing" not in listing and accounts["Alan Turing"] not in listing
        assert listing.count('<tr class="') <= 100  # one page of the list
        assert first.context["cl"].result_count == total and first.context["cl"].paginator.num_pages == 3

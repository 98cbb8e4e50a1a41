"""Staff browse accounts, ledgers and events in the admin, and cannot change them."""
import pytest
from django.urls import reverse

from eventstore.models import StoredEventRecord
from projections.models import AccountSummary

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_browser(client, django_user_model):
    staff = django_user_model.objects.create_user(username="auditor", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


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
    assert staff_browser.post(reverse("admin:projections_accountsummary_delete", args=[account_id]), {"post": "yes"}).status_code == 403
    assert AccountSummary.objects.filter(id=account_id).exists()
    event = StoredEventRecord.objects.first()
    assert staff_browser.post(reverse("admin:eventstore_storedeventrecord_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    assert staff_browser.get(reverse("admin:eventstore_storedeventrecord_add")).status_code == 403
    assert "Save" not in staff_browser.get(change_url).content.decode().replace("Save as", "")

"""Staff see dead letters in the admin, read-only, and retry or resolve them with an action."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import OperationalError
from django.urls import reverse

from entrypoints.wiring import services
from eventstore.store import NewEvent
from projections import projectors
from projections.models import AccountSummary, DeadLetter, LedgerEntry
from tests.staff import staff_group

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:projections_deadletter_changelist"


@pytest.fixture
def staff_browser(client, django_user_model):
    staff = django_user_model.objects.create_user(username="operator", is_staff=True, is_superuser=True)
    client.force_login(staff)
    return client


@pytest.fixture
def poisoned(api):
    """An account whose third event has a type no projector knows, and a deposit stuck behind it."""
    account = api.post(
        "/api/accounts/",
        {"holder": "Grace Hopper", "account_type": "SAVINGS", "opening_balance": "10.00"},
        format="json",
    ).json()["id"]
    api.post(f"/api/accounts/{account}/deposits", {"amount": "5.00"}, format="json")
    now = datetime.now(UTC)
    poison, blocked = services().event_store.append(
        account,
        2,
        [
            NewEvent(uuid.uuid4(), "FundsFrozen", {"reason": "court order"}, now, {}),
            NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, now, {}),
        ],
    )
    # Any command relays and consumes the outbox in process: the poison goes to the dead-letter table.
    api.post(
        "/api/accounts/", {"holder": "Bystander", "account_type": "CURRENT", "opening_balance": "1.00"}, format="json"
    )
    return {
        "account": account,
        "poison": DeadLetter.objects.get(event_id=poison.event_id),
        "blocked": DeadLetter.objects.get(event_id=blocked.event_id),
    }


def project_frozen(summary, event):
    return LedgerEntry(
        account_id=summary.id,
        version=event.version,
        event_id=event.event_id,
        kind="DEPOSIT",
        amount=Decimal("0.00"),
        balance_after=summary.balance,
        occurred_at=event.occurred_at,
    )


def retry(browser, *letters):
    return browser.post(
        reverse(CHANGELIST), {"action": "retry_selected", "_selected_action": [d.pk for d in letters]}, follow=True
    )


def test_staff_see_the_dead_letters_with_their_count_filters_and_reasons(staff_browser, poisoned):
    page = staff_browser.get(reverse(CHANGELIST)).content.decode()
    assert "2 dead letters" in page
    assert "UnknownEventType" in page and "BlockedBehindPoison" in page and "FundsFrozen" in page
    unknown = staff_browser.get(reverse(CHANGELIST), {"reason_type": "UnknownEventType"}).content.decode()
    assert "1 dead letter" in unknown and "BlockedBehindPoison</td>" not in unknown
    assert "2 dead letters" in staff_browser.get(reverse(CHANGELIST), {"status__exact": "PENDING"}).content.decode()
    assert "0 dead letters" in staff_browser.get(reverse(CHANGELIST), {"status__exact": "RETRIED_OK"}).content.decode()
    assert "0 dead letters" in staff_browser.get(reverse(CHANGELIST), {"source__exact": "kafka"}).content.decode()


def test_staff_find_dead_letters_by_account_id_and_event_id(staff_browser, poisoned):
    by_account = staff_browser.get(reverse(CHANGELIST), {"q": poisoned["account"]}).content.decode()
    assert "2 dead letters" in by_account
    by_event = staff_browser.get(reverse(CHANGELIST), {"q": str(poisoned["poison"].event_id)}).content.decode()
    assert "1 dead letter" in by_event and "UnknownEventType" in by_event
    assert "0 dead letters" in staff_browser.get(reverse(CHANGELIST), {"q": str(uuid.uuid4())}).content.decode()


def test_a_dead_letters_page_shows_the_raw_message_and_the_reason_read_only(staff_browser, poisoned):
    letter = poisoned["poison"]
    url = reverse("admin:projections_deadletter_change", args=[letter.pk])
    page = staff_browser.get(url).content.decode()
    assert "No projector for event type &#x27;FundsFrozen&#x27;" in page
    assert "&quot;court order&quot;" in page  # the payload, indented JSON
    assert poisoned["account"] in page and "in-process" in page.lower()
    assert "Save" not in page.replace("Save as", "")
    staff_browser.post(url, {"status": "RESOLVED", "reason": "nothing"})
    assert DeadLetter.objects.get(pk=letter.pk).status == "PENDING"
    assert staff_browser.get(reverse("admin:projections_deadletter_add")).status_code == 403
    assert (
        staff_browser.post(
            reverse("admin:projections_deadletter_delete", args=[letter.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


def test_retrying_after_the_projector_is_deployed_applies_the_event_and_the_ones_behind_it(
    staff_browser, poisoned, monkeypatch
):
    monkeypatch.setitem(projectors.PROJECTORS, "FundsFrozen", project_frozen)

    page = retry(staff_browser, poisoned["poison"]).content.decode()

    assert "Applied 1, still failing 0; 1 other pending event(s) of the same accounts applied with them." in page
    summary = AccountSummary.objects.get(id=poisoned["account"])
    assert (summary.version, summary.balance) == (4, Decimal("16.00"))
    assert set(DeadLetter.objects.values_list("status", flat=True)) == {"RETRIED_OK"}

    page = retry(staff_browser, *DeadLetter.objects.all()).content.decode()  # again: nothing changes
    assert "2 already applied" in page
    assert AccountSummary.objects.get(id=poisoned["account"]).version == 4


def test_retrying_before_the_cause_is_fixed_fails_cleanly_and_counts_the_attempt(staff_browser, poisoned):
    response = retry(staff_browser, poisoned["poison"])

    assert response.status_code == 200
    assert "Applied 0, still failing 1." in response.content.decode()
    letter = DeadLetter.objects.get(pk=poisoned["poison"].pk)
    assert (letter.status, letter.attempts, letter.reason_type) == ("PENDING", 2, "UnknownEventType")
    assert letter.retried_at is not None
    assert AccountSummary.objects.get(id=poisoned["account"]).version == 2


def test_staff_can_mark_a_dead_letter_resolved(staff_browser, poisoned):
    response = staff_browser.post(
        reverse(CHANGELIST), {"action": "mark_resolved", "_selected_action": [poisoned["blocked"].pk]}, follow=True
    )
    assert "Marked 1 pending dead letter(s) resolved." in response.content.decode()
    letter = DeadLetter.objects.get(pk=poisoned["blocked"].pk)
    assert letter.status == "RESOLVED" and "operator" in letter.resolution


def test_staff_who_may_only_look_cannot_retry(client, django_user_model, poisoned):
    viewer = django_user_model.objects.create_user(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_deadletter"))
    client.force_login(viewer)
    page = client.get(reverse(CHANGELIST)).content.decode()
    assert "2 dead letters" in page and "retry_selected" not in page
    retry(client, poisoned["poison"])
    assert DeadLetter.objects.get(pk=poisoned["poison"].pk).attempts == 1


def staff_in_group(client, django_user_model, group: str):
    member = django_user_model.objects.create_user(username=f"admin-{group.lower().replace(' ', '-')}", is_staff=True)
    member.groups.add(staff_group(group))
    client.force_login(member)
    return client


@pytest.mark.parametrize("group", ["Auditor", "Teller"])
def test_auditors_and_tellers_see_dead_letters_but_cannot_retry_them(client, django_user_model, poisoned, group):
    browser = staff_in_group(client, django_user_model, group)
    page = browser.get(reverse(CHANGELIST)).content.decode()
    assert "2 dead letters" in page and "retry_selected" not in page
    retry(browser, poisoned["poison"])
    assert DeadLetter.objects.get(pk=poisoned["poison"].pk).status == poisoned["poison"].status


def test_account_managers_retry_dead_letters(client, django_user_model, poisoned):
    browser = staff_in_group(client, django_user_model, "Account manager")
    assert "retry_selected" in browser.get(reverse(CHANGELIST)).content.decode()
    retry(browser, poisoned["poison"])
    assert DeadLetter.objects.get(pk=poisoned["poison"].pk).attempts == 2  # tried again, still no projector


def test_a_retry_while_the_read_database_is_unavailable_says_so_and_changes_nothing(
    staff_browser, poisoned, monkeypatch
):
    def database_down(*args, **kwargs):
        raise OperationalError("could not connect to the read database")

    monkeypatch.setattr(AccountSummary.objects, "raw", database_down)  # the query that locks the summaries
    response = retry(staff_browser, poisoned["poison"])
    assert response.status_code == 200
    assert "Retry stopped, try again later: OperationalError" in response.content.decode()
    assert DeadLetter.objects.get(pk=poisoned["poison"].pk).attempts == 1

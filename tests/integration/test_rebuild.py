"""The read model is derived data: a rebuild from the event store gives it back exactly."""
import random
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from projections.models import AccountSummary, LedgerEntry
from projections.services import read_model_differences
from techbank_site import bootstrap

pytestmark = pytest.mark.django_db(transaction=True)


def read_model_snapshot():
    summaries = sorted(
        AccountSummary.objects.values_list(
            "id", "holder", "account_type", "balance", "status", "opened_at", "closed_at", "version"
        )
    )
    ledger = sorted(
        LedgerEntry.objects.values_list("account_id", "version", "event_id", "kind", "amount", "balance_after", "occurred_at")
    )
    return summaries, ledger


@pytest.fixture
def busy_bank(api):
    rng = random.Random(7)
    for n in range(12):
        account = api.post(
            "/api/accounts/",
            {"holder": f"holder {n % 5}", "account_type": rng.choice(["SAVINGS", "CURRENT"]), "opening_balance": "50.00"},
            format="json",
        ).json()
        for _ in range(rng.randint(0, 6)):
            action = rng.choice(["deposits", "withdrawals"])
            api.post(f"/api/accounts/{account['id']}/{action}", {"amount": f"{rng.randint(1, 4000) / 100:.2f}"}, format="json")
        if n % 4 == 0:
            api.post(f"/api/accounts/{account['id']}/close")


def test_a_rebuild_gives_the_same_read_model_as_live_projection(busy_bank):
    live = read_model_snapshot()
    assert len(live[0]) == 12
    call_command("rebuild_read_model", "--no-progress", stdout=StringIO())
    assert read_model_snapshot() == live
    assert list(read_model_differences(event_store=bootstrap.event_store())) == []


def test_rebuild_restores_a_damaged_read_model_and_reports_what_it_replayed(busy_bank):
    live = read_model_snapshot()
    total_events = bootstrap.event_store().count_events()
    AccountSummary.objects.filter(holder="holder 1").update(balance="999999.99")
    LedgerEntry.objects.filter(kind="DEPOSIT").delete()
    assert list(read_model_differences(event_store=bootstrap.event_store()))

    out, err = StringIO(), StringIO()
    call_command("rebuild_read_model", stdout=out, stderr=err)

    assert read_model_snapshot() == live
    assert f"replayed {total_events} events into 12 accounts" in out.getvalue()
    assert "Replaying" in err.getvalue() and f"{total_events}/{total_events}" in err.getvalue()


def test_projecting_the_same_events_twice_changes_nothing(busy_bank):
    from projections.services import project_events

    live = read_model_snapshot()
    everything = list(bootstrap.event_store().read_all())
    assert project_events(events=everything, event_store=bootstrap.event_store()) == 0
    assert read_model_snapshot() == live


def test_events_projected_out_of_order_fill_the_gap_from_the_store(api):
    from projections.services import project_events

    account = api.post(
        "/api/accounts/", {"holder": "Gap", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()
    for _ in range(3):
        api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "1.00"}, format="json")
    store = bootstrap.event_store()
    AccountSummary.objects.all().delete()
    LedgerEntry.objects.all().delete()
    latest = store.load_stream(account["id"])[-1]
    assert project_events(events=[latest], event_store=store) == 4
    assert AccountSummary.objects.get(id=account["id"]).balance == 4
    assert LedgerEntry.objects.count() == 4


def test_verify_read_model_passes_on_a_true_read_model_and_names_a_damaged_account(busy_bank):
    out = StringIO()
    call_command("verify_read_model", stdout=out)
    assert "matches" in out.getvalue()

    damaged = AccountSummary.objects.order_by("id").first()
    AccountSummary.objects.filter(id=damaged.id).update(balance="0.01")
    out = StringIO()
    with pytest.raises(CommandError, match="1 account"):
        call_command("verify_read_model", stdout=out)
    assert f"differs: {damaged.id}" in out.getvalue()


def _account_with_the_longest_ledger() -> str:
    return str(
        LedgerEntry.objects.values_list("account_id", flat=True).annotate(n=Count("pk")).order_by("-n", "account_id")[0]
    )


def _lose_an_entry_in_the_middle(account_id):
    versions = list(LedgerEntry.objects.filter(account_id=account_id).values_list("version", flat=True))
    LedgerEntry.objects.filter(account_id=account_id, version=versions[len(versions) // 2]).delete()


def _change_the_last_balance(account_id):
    last = LedgerEntry.objects.filter(account_id=account_id).order_by("-version")[0]
    LedgerEntry.objects.filter(pk=last.pk).update(balance_after=last.balance_after + 1)


def _add_an_entry_after_the_last(account_id):
    last = LedgerEntry.objects.filter(account_id=account_id).order_by("-version")[0]
    LedgerEntry.objects.create(
        account_id=account_id, version=last.version + 1, event_id=uuid.uuid4(), kind="DEPOSIT",
        amount=1, balance_after=last.balance_after + 1, occurred_at=last.occurred_at,
    )


@pytest.mark.parametrize("damage", [_lose_an_entry_in_the_middle, _change_the_last_balance, _add_an_entry_after_the_last])
def test_verify_read_model_names_an_account_whose_ledger_is_damaged(busy_bank, damage):
    account_id = _account_with_the_longest_ledger()
    damage(account_id)

    assert list(read_model_differences(event_store=bootstrap.event_store())) == [account_id]
    out = StringIO()
    with pytest.raises(CommandError, match="1 account"):
        call_command("verify_read_model", "--no-progress", stdout=out, stderr=StringIO())
    assert f"differs: {account_id}" in out.getvalue()


def test_verify_read_model_names_a_ledger_without_an_account_in_the_event_store(busy_bank):
    stray = uuid.uuid4()
    LedgerEntry.objects.create(
        account_id=stray, version=1, event_id=uuid.uuid4(), kind="OPENING", amount=1, balance_after=1,
        occurred_at=timezone.now(),
    )
    assert list(read_model_differences(event_store=bootstrap.event_store())) == [str(stray)]


def test_verify_read_model_shows_its_progress_unless_told_not_to(busy_bank):
    total = bootstrap.event_store().count_events()
    err = StringIO()
    call_command("verify_read_model", stdout=StringIO(), stderr=err)
    assert "Verifying" in err.getvalue() and f"{total}/{total}" in err.getvalue()

    err = StringIO()
    call_command("verify_read_model", "--no-progress", stdout=StringIO(), stderr=err)
    assert err.getvalue() == ""

"""Snapshots through the API on the SQL store (SQLite; MariaDB through scripts/test-mariadb.sh)."""

from decimal import Decimal

import pytest

from accounts.adapters.repository import aggregate_schema
from entrypoints.wiring import services
from eventstore.models import SnapshotRecord
from tests.aggregate_code import edit_aggregate_code  # noqa: F401 (fixture)
from tests.integration.test_concurrent_commands import race
from tests.wiring import rewire

pytestmark = pytest.mark.django_db(transaction=True)
EVERY = 5


@pytest.fixture(autouse=True)
def snapshot_every_five(settings):
    settings.TECHBANK_SNAPSHOT_EVERY = EVERY
    rewire()
    yield
    rewire()


def open_account(api) -> str:
    return api.post(
        "/api/accounts/", {"holder": "Long Stream", "account_type": "SAVINGS", "opening_balance": "0.00"}, format="json"
    ).json()["id"]


def balance(api, account_id) -> Decimal:
    return Decimal(api.get(f"/api/accounts/{account_id}").json()["balance"])


def test_commands_on_a_long_account_store_snapshots_beside_its_events(api):
    account_id = open_account(api)
    for _ in range(12):
        assert api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json").status_code == 200
    snapshot = SnapshotRecord.objects.get(stream_id=account_id)
    assert snapshot.version == 10 and snapshot.state["balance"] == "9.00"  # the opening, then 9 deposits
    assert services().account_repository.get(account_id).balance == Decimal("12.00")


def test_a_tampered_snapshot_is_ignored_and_replaced(api):
    account_id = open_account(api)
    for _ in range(EVERY):
        api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json")
    SnapshotRecord.objects.filter(stream_id=account_id).update(state={"balance": "1000000.00"})
    rewire()  # a new process: nothing remembered
    response = api.post(f"/api/accounts/{account_id}/withdrawals", {"amount": "6.00"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "insufficient_funds"
    assert not SnapshotRecord.objects.filter(stream_id=account_id).exists()  # discarded; loading writes none
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json")
    assert SnapshotRecord.objects.get(stream_id=account_id).state["balance"] == "6.00"  # after the next save


def test_a_snapshot_written_before_the_aggregates_code_changed_is_replayed_past_and_replaced(api, edit_aggregate_code):  # noqa: F811 (fixture)
    account_id = open_account(api)
    for _ in range(EVERY):
        api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json")
    # Well formed, but not what the events say: what older code might have made of them.
    written = SnapshotRecord.objects.get(stream_id=account_id)
    SnapshotRecord.objects.filter(stream_id=account_id).update(state={**written.state, "balance": "1000000.00"})
    # The same code trusts it: its balance, plus the deposit after it (6 events, a snapshot at 5).
    assert services().account_repository.get(account_id).balance == Decimal("1000001.00")

    edit_aggregate_code()
    rewire()  # a new process running the new release
    response = api.post(f"/api/accounts/{account_id}/withdrawals", {"amount": "6.00"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "insufficient_funds"
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json")  # replaced after a save
    replacement = SnapshotRecord.objects.get(stream_id=account_id)
    assert (replacement.schema, replacement.state["balance"]) == (aggregate_schema(), "6.00")
    assert replacement.schema != written.schema


def test_racing_commands_with_frequent_snapshots_all_succeed_and_add_up(api):
    account_id = open_account(api)
    responses = race(api, [(f"/api/accounts/{account_id}/deposits", {"amount": "0.01"})] * 12)
    assert [r.status_code for r in responses] == [200] * 12
    assert services().account_repository.get(account_id).balance == Decimal("0.12")
    assert SnapshotRecord.objects.get(stream_id=account_id).version >= EVERY

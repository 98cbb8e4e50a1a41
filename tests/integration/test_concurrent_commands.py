"""Racing clients on one account: the store's unique key decides, the handler retries."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.test import APIClient

from eventstore.models import StoredEventRecord
from projections.models import AccountSummary

pytestmark = pytest.mark.django_db(transaction=True)


def race(api: APIClient, requests: list[tuple[str, dict]]) -> list:
    """Fire all requests at once, each from its own thread and DB connection."""
    barrier = threading.Barrier(len(requests))
    responses = [None] * len(requests)
    credentials = api._credentials

    def send(i, path, body):
        client = APIClient()
        client.credentials(**credentials)
        try:
            barrier.wait()
            responses[i] = client.post(path, body, format="json")
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, *req)) for i, req in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return responses


def test_twenty_concurrent_withdrawals_of_ten_from_a_hundred_give_ten_successes(api):
    account = api.post(
        "/api/accounts/", {"holder": "Racer", "account_type": "CURRENT", "opening_balance": "100.00"}, format="json"
    ).json()
    responses = race(api, [(f"/api/accounts/{account['id']}/withdrawals", {"amount": "10.00"})] * 20)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [409] * 10
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"insufficient_funds"}
    versions = list(StoredEventRecord.objects.filter(stream_id=account["id"]).values_list("version", flat=True))
    assert sorted(versions) == list(range(1, 12))
    summary = AccountSummary.objects.get(id=account["id"])
    assert summary.balance == Decimal("0.00") and summary.version == 11


def test_concurrent_deposits_are_all_kept(api):
    account = api.post(
        "/api/accounts/", {"holder": "Saver", "account_type": "SAVINGS", "opening_balance": "0.00"}, format="json"
    ).json()
    responses = race(api, [(f"/api/accounts/{account['id']}/deposits", {"amount": "0.01"})] * 15)
    assert [r.status_code for r in responses] == [200] * 15
    assert AccountSummary.objects.get(id=account["id"]).balance == Decimal("0.15")

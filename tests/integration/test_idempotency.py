"""Retries are safe: Idempotency-Key on every write endpoint of both APIs."""

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import IdempotencyRecord
from entrypoints.wiring import services
from eventstore.backends.django_orm import DjangoEventStore
from eventstore.models import StoredEventRecord
from eventstore.store import NewEvent
from projections.models import AccountSummary
from tests.wiring import rewire

pytestmark = pytest.mark.django_db(transaction=True)


def open_account(api, balance="100.00"):
    return api.post(
        "/api/accounts/", {"holder": "Idem", "account_type": "SAVINGS", "opening_balance": balance}, format="json"
    ).json()["id"]


def write_requests(account_id):
    """Every write endpoint, each with a valid request: (method, path, body)."""
    return [
        ("post", "/api/accounts/", {"holder": "New", "account_type": "CURRENT", "opening_balance": "5.00"}),
        ("post", f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}),
        ("post", f"/api/accounts/{account_id}/withdrawals", {"amount": "1.00"}),
        ("post", "/api/v1/openBankAccount", {"accountHolder": "New", "accountType": "SAVINGS", "openingBalance": 5}),
        ("put", f"/api/v1/depositFunds/{account_id}", {"amount": 1}),
        ("put", f"/api/v1/withdrawFunds/{account_id}", {"amount": 1}),
        ("post", f"/api/accounts/{account_id}/close", None),
        ("delete", f"/api/v1/closeBankAccount/{account_id}", None),
        ("post", "/api/v1/restoreReadDb", None),
    ]


def send(client, method, path, body, key):
    return getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.parametrize("index", range(9))
def test_the_same_key_and_request_get_the_first_answer_again_with_no_second_effect(api, index):
    account_id = open_account(api)
    method, path, body = write_requests(account_id)[index]
    first = send(api, method, path, body, "retry-me")
    events = StoredEventRecord.objects.count()
    again = send(api, method, path, body, "retry-me")
    assert first.status_code < 300
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert StoredEventRecord.objects.count() == events
    if "Location" in first.headers:
        assert again.headers["Location"] == first.headers["Location"]


@pytest.mark.parametrize("index", range(9))
def test_the_same_key_with_a_different_request_is_refused_with_409(api, index):
    account_id = open_account(api)
    method, path, body = write_requests(account_id)[index]
    send(api, method, path, body, "used-once")
    events = StoredEventRecord.objects.count()
    if body:  # another body on the same route
        other_body = {
            k: ("9.00" if isinstance(v, str) and v[0].isdigit() else 9 if isinstance(v, int) else v + " 2")
            for k, v in body.items()
        }
        response = send(api, method, path, other_body, "used-once")
    else:  # another query on the same route
        response = send(api, method, path + "?other=1", body, "used-once")
    assert response.status_code == 409
    if path.startswith("/api/accounts/"):
        assert response.json()["code"] == "idempotency_key_reuse"
    assert "different request" in response.json()["message"]
    assert StoredEventRecord.objects.count() == events


def test_a_refused_command_is_answered_the_same_way_on_retry_even_if_it_would_now_pass(api):
    account_id = open_account(api, balance="50.00")
    body = {"amount": "100.00"}
    first = send(api, "post", f"/api/accounts/{account_id}/withdrawals", body, "too-much")
    assert first.json()["code"] == "insufficient_funds"
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "100.00"}, format="json")
    again = send(api, "post", f"/api/accounts/{account_id}/withdrawals", body, "too-much")
    assert (again.status_code, again.json()) == (409, first.json())
    assert AccountSummary.objects.get(id=account_id).balance == 150


def test_keys_are_scoped_to_the_user(api, django_user_model):
    from rest_framework.authtoken.models import Token

    account_id = open_account(api)
    other = django_user_model.objects.create_user(username="other-teller", is_superuser=True)
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=other).key}")
    for client in (api, other_api):
        assert (
            send(client, "post", f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, "shared").status_code
            == 200
        )
    assert AccountSummary.objects.get(id=account_id).balance == 102


def test_concurrent_retries_in_flight_have_one_effect_and_one_answer(api):
    account_id = open_account(api)
    credentials = api._credentials
    barrier = threading.Barrier(8)
    answers, failures = [], []

    def deposit():
        client = APIClient()
        client.credentials(**credentials)
        try:
            barrier.wait(timeout=60)
            response = send(client, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "in-flight")
            answers.append((response.status_code, response.json()))
        except BaseException as error:  # noqa: BLE001 - a thread that raised must fail the test, not drop out with a warning
            failures.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=deposit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    assert len(answers) == 8, answers  # every thread answered
    assert len({str(a) for a in answers}) == 1 and answers[0][0] == 200
    assert AccountSummary.objects.get(id=account_id).balance == 110


def test_a_retry_after_the_process_died_between_storing_and_answering_has_no_second_effect(api):
    account_id = open_account(api)
    first = send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "crashed")
    # As if the process had died after storing the events, before recording its answer:
    # the claim on the key is left in progress, and its lease lapses.
    IdempotencyRecord.objects.filter(key="crashed").update(
        status=IdempotencyRecord.Status.IN_PROGRESS,
        response_status=None,
        response_body=None,
        locked_until=timezone.now() - timedelta(seconds=1),
    )
    retry = send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "crashed")
    assert (retry.status_code, retry.json()) == (200, first.json())
    assert AccountSummary.objects.get(id=account_id).balance == 110
    assert StoredEventRecord.objects.filter(stream_id=account_id).count() == 2


def test_a_retry_while_the_first_holds_a_live_claim_waits_then_is_told_to_retry(api, teller, monkeypatch):
    monkeypatch.setattr(services().idempotent_requests, "wait_seconds", 0.2)
    account_id = open_account(api)
    send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "slow")
    IdempotencyRecord.objects.filter(key="slow").update(
        status=IdempotencyRecord.Status.IN_PROGRESS, locked_until=timezone.now() + timedelta(seconds=30)
    )
    response = send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "slow")
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_request_in_progress")
    assert AccountSummary.objects.get(id=account_id).balance == 110


def test_the_key_is_recorded_on_the_events(api):
    account_id = open_account(api)
    send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, "audit-me")
    event = StoredEventRecord.objects.filter(stream_id=account_id).order_by("-version").first()
    assert event.metadata["idempotency_key"] == "audit-me"
    assert event.metadata["issued_by"] == "teller"


@pytest.mark.parametrize("key", ["", "x" * 256, "bad\nkey"])
def test_an_unusable_key_is_a_400(api, key):
    account_id = open_account(api)
    response = send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, key)
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert StoredEventRecord.objects.count() == 1


def test_keys_older_than_their_time_to_live_are_forgotten(api, settings):
    account_id = open_account(api)
    send(api, "post", f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, "old-key")
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - timedelta(hours=settings.TECHBANK_IDEMPOTENCY_TTL_HOURS + 1)
    )
    assert services().idempotent_requests.purge_expired() == 1 and not IdempotencyRecord.objects.exists()


class RivalWriterEventStore(DjangoEventStore):
    """The real SQL store, where another writer stores a deposit on the stream just
    before each of our appends while `racing`: every append loses the race (a real
    conflict on the store's unique version key)."""

    racing = True

    def races(self) -> bool:
        return self.racing

    def append(self, stream_id, expected_version, events):
        if self.races() and expected_version > 0:
            rival = NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, timezone.now(), {"issued_by": "rival"})
            super().append(stream_id, expected_version, [rival])
        return super().append(stream_id, expected_version, events)


def use_event_store(monkeypatch, store) -> None:
    """Build the command side on `store` (until restore_event_store)."""
    rewire(event_store=store)


def restore_event_store() -> None:
    rewire()


@pytest.fixture
def rival_writer(settings, monkeypatch):
    """Every command on an existing account loses its one attempt to a rival writer."""
    settings.TECHBANK_COMMAND_MAX_ATTEMPTS = 1
    store = RivalWriterEventStore()
    use_event_store(monkeypatch, store)
    yield store
    restore_event_store()


@pytest.mark.parametrize(
    "method, route, body, refusal",
    [
        ("post", "/api/accounts/{}/deposits", {"amount": "10.00"}, 409),
        ("put", "/api/v1/depositFunds/{}", {"amount": 10}, 409),
    ],
)
def test_a_concurrency_conflict_is_not_kept_so_a_retry_with_the_same_key_deposits(
    api, rival_writer, method, route, body, refusal
):
    account_id = open_account(api)
    path = route.format(account_id)
    conflict = send(api, method, path, body, "busy-account")
    assert conflict.status_code == refusal, conflict.content
    assert "retry" in conflict.json()["message"]
    if path.startswith("/api/accounts/"):
        assert conflict.json()["code"] == "concurrency_conflict"
    rival_writer.racing = False
    retry = send(api, method, path, body, "busy-account")
    assert retry.status_code == 200, retry.content
    assert "Idempotent-Replayed" not in retry.headers
    ours = StoredEventRecord.objects.filter(
        stream_id=account_id, metadata__issued_by="teller", event_type="FundsDeposited"
    )
    assert [e.data["amount"] for e in ours] == ["10.00"]


class FirstAppendHeldEventStore(DjangoEventStore):
    """The real SQL store, whose first append waits until the test lets it go: a slow request."""

    def __init__(self):
        super().__init__()
        self.entered, self.released = threading.Event(), threading.Event()
        self._first = threading.Lock()

    def append(self, stream_id, expected_version, events):
        if self._first.acquire(blocking=False):
            self.entered.set()
            assert self.released.wait(60), "the test never let the first append go"
        return super().append(stream_id, expected_version, events)


def test_a_request_slower_than_its_lease_keeps_its_key_so_a_retry_never_runs_it_twice(api, monkeypatch):
    store = FirstAppendHeldEventStore()
    use_event_store(monkeypatch, store)
    monkeypatch.setattr(services().idempotent_requests, "lease", timedelta(seconds=3))
    monkeypatch.setattr(services().idempotent_requests, "wait_seconds", 0.5)
    body = {"holder": "Slow", "account_type": "SAVINGS", "opening_balance": "5.00"}
    credentials = api._credentials
    first = []

    def open_slowly():
        client = APIClient()
        client.credentials(**credentials)
        try:
            first.append(send(client, "post", "/api/accounts/", body, "slow-open"))
        finally:
            connection.close()

    slow = threading.Thread(target=open_slowly)
    slow.start()
    try:
        assert store.entered.wait(30)
        first_lease_end = IdempotencyRecord.objects.get(key="slow-open").locked_until
        deadline = time.monotonic() + 30
        while timezone.now() <= first_lease_end and time.monotonic() < deadline:  # until the first lease has run out
            time.sleep(0.05)
        retry = send(api, "post", "/api/accounts/", body, "slow-open")
    finally:
        store.released.set()
        slow.join(60)
        restore_event_store()
    assert (retry.status_code, retry.json().get("code")) == (409, "idempotency_request_in_progress")
    assert [response.status_code for response in first] == [201]
    assert StoredEventRecord.objects.filter(event_type="AccountOpened").count() == 1
    again = send(api, "post", "/api/accounts/", body, "slow-open")
    assert (again.status_code, again.json()) == (201, first[0].json())


class HeldRivalWriterEventStore(RivalWriterEventStore):
    """Appends from the thread named `slow` wait until the test lets them go, then lose to a rival."""

    def __init__(self, slow: str):
        super().__init__()
        self.slow = slow
        self.entered, self.released = threading.Event(), threading.Event()

    def races(self) -> bool:
        return threading.current_thread().name == self.slow

    def append(self, stream_id, expected_version, events):
        if self.races():
            self.entered.set()
            assert self.released.wait(60), "the test never let the append go"
        return super().append(stream_id, expected_version, events)


def test_a_retry_waiting_for_a_request_that_ends_in_a_conflict_runs_the_command_itself(api, settings, monkeypatch):
    from accounts.service_layer.idempotency import IdempotentRequests

    account_id = open_account(api)
    settings.TECHBANK_COMMAND_MAX_ATTEMPTS = 1
    store = HeldRivalWriterEventStore(slow="first")
    use_event_store(monkeypatch, store)
    retry_waits = threading.Event()
    real_wait_for = IdempotentRequests._wait_for

    def wait_for(self, record):
        retry_waits.set()
        return real_wait_for(self, record)

    monkeypatch.setattr(IdempotentRequests, "_wait_for", wait_for)
    credentials = api._credentials
    answers, failures = {}, []

    def deposit():
        client = APIClient()
        client.credentials(**credentials)
        try:
            answers[threading.current_thread().name] = send(
                client, "post", f"/api/accounts/{account_id}/deposits", {"amount": "10.00"}, "conflicted"
            )
        except BaseException as error:  # noqa: BLE001 - a thread that raised must fail the test
            failures.append(repr(error))
        finally:
            connection.close()

    first, retry = threading.Thread(target=deposit, name="first"), threading.Thread(target=deposit, name="retry")
    try:
        first.start()
        assert store.entered.wait(30)
        retry.start()
        assert retry_waits.wait(30)
    finally:
        store.released.set()
        first.join(60)
        retry.join(60)
        restore_event_store()
    assert not failures
    assert answers["first"].json()["code"] == "concurrency_conflict"
    assert answers["retry"].status_code == 200, answers["retry"].content
    ours = StoredEventRecord.objects.filter(
        stream_id=account_id, metadata__issued_by="teller", event_type="FundsDeposited"
    )
    assert [e.data["amount"] for e in ours] == ["10.00"]

"""The resource API under /api/accounts/: shapes, money as strings, every error code."""

import uuid
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from entrypoints.wiring import services
from eventstore.models import StoredEventRecord
from eventstore.store import EventStore, NewEvent
from tests.delegating_store import DelegatingEventStore
from tests.wiring import rewire

pytestmark = pytest.mark.django_db(transaction=True)


def open_account(api, holder="Alice", balance="100.00", account_type="SAVINGS"):
    response = api.post(
        "/api/accounts/", {"holder": holder, "account_type": account_type, "opening_balance": balance}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_opening_answers_201_with_the_account_and_its_location(api):
    response = api.post(
        "/api/accounts/", {"holder": "  Alice ", "account_type": "SAVINGS", "opening_balance": "100"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert response.headers["Location"].endswith(f"/api/accounts/{body['id']}/")
    assert body["holder"] == "Alice"
    assert body["balance"] == "100.00"
    assert body["status"] == "OPEN" and body["version"] == 1 and body["closed_at"] is None
    assert api.get(response.headers["Location"]).json() == body


def test_deposits_withdrawals_and_closing_answer_with_the_account_after_them(api):
    account = open_account(api)
    url = f"/api/accounts/{account['id']}"
    deposited = api.post(f"{url}/deposits", {"amount": "50.25"}, format="json")
    assert deposited.status_code == 200 and deposited.json()["balance"] == "150.25"
    withdrawn = api.post(f"{url}/withdrawals", {"amount": 25}, format="json")
    assert withdrawn.json()["balance"] == "125.25" and withdrawn.json()["version"] == 3
    closed = api.post(f"{url}/close")
    assert closed.status_code == 200
    assert closed.json()["status"] == "CLOSED" and closed.json()["closed_at"] is not None
    assert api.get(f"{url}/").json() == closed.json()


def test_the_events_route_shows_the_stored_stream_with_versions(api):
    account = open_account(api)
    api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "1.50"}, format="json")
    body = api.get(f"/api/accounts/{account['id']}/events").json()
    assert body["count"] == 2
    assert [(e["version"], e["event_type"]) for e in body["results"]] == [(1, "AccountOpened"), (2, "FundsDeposited")]
    assert body["results"][1]["data"] == {"amount": "1.50"}
    assert body["results"][1]["metadata"]["issued_by"] == "teller"


class CountingReads(DelegatingEventStore):
    """The real store, counting the events its stream reads hand back."""

    def __init__(self, inner: EventStore):
        super().__init__(inner)
        self.events_read = 0

    def load_stream(self, stream_id, after_version=0, *, limit=None):
        events = super().load_stream(stream_id, after_version, limit=limit)
        self.events_read += len(events)
        return events

    def read_all(self, after_position=0, batch_size=1000):
        for event in super().read_all(after_position, batch_size):
            self.events_read += 1
            yield event


def deposits(count: int) -> list[NewEvent]:
    return [
        NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": f"{n}.00"}, datetime.now(UTC), {"issued_by": "teller"})
        for n in range(1, count + 1)
    ]


@pytest.fixture
def long_account(api):
    """An account of 300 events (the deposits stored straight into the event store, for speed)."""
    account = open_account(api)
    services().event_store.append(account["id"], 1, deposits(299))
    return account


def test_a_page_of_events_reads_only_that_page_from_the_store(api, long_account, monkeypatch):
    counting = CountingReads(services().event_store)
    rewire(event_store=counting)
    response = api.get(f"/api/accounts/{long_account['id']}/events", {"page": 3, "page_size": 20})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 300
    assert [e["version"] for e in body["results"]] == list(range(41, 61))
    assert body["results"][0]["data"] == {"amount": "40.00"}
    assert parse_qs(urlsplit(body["next"]).query) == {"page": ["4"], "page_size": ["20"]}
    assert parse_qs(urlsplit(body["previous"]).query) == {"page": ["2"], "page_size": ["20"]}
    assert counting.events_read == 20  # not the 300 of the whole stream


def test_the_last_page_of_events_ends_the_stream_and_a_page_past_it_is_a_404(api, long_account):
    url = f"/api/accounts/{long_account['id']}/events"
    last = api.get(url, {"page": 2, "page_size": 200}).json()
    assert [e["version"] for e in last["results"]] == list(range(201, 301))
    assert last["next"] is None
    past = api.get(url, {"page": 3, "page_size": 200})
    assert (past.status_code, past.json()["code"]) == (404, "not_found")
    first = api.get(url).json()  # the default page size
    assert [e["version"] for e in first["results"]] == list(range(1, 51))


def test_the_correlation_id_of_the_request_is_recorded(api):
    response = api.post(
        "/api/accounts/",
        {"holder": "Al", "account_type": "CURRENT", "opening_balance": "1"},
        format="json",
        HTTP_X_CORRELATION_ID="req-123",
    )
    events = api.get(f"/api/accounts/{response.json()['id']}/events").json()["results"]
    assert events[0]["metadata"]["correlation_id"] == "req-123"


def test_the_transactions_route_shows_the_ledger_with_running_balances(api):
    account = open_account(api, balance="10.00")
    api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "5.00"}, format="json")
    api.post(f"/api/accounts/{account['id']}/withdrawals", {"amount": "2.50"}, format="json")
    entries = api.get(f"/api/accounts/{account['id']}/transactions").json()["results"]
    assert [(e["kind"], e["amount"], e["balance_after"]) for e in entries] == [
        ("OPENING", "10.00", "10.00"),
        ("DEPOSIT", "5.00", "15.00"),
        ("WITHDRAWAL", "2.50", "12.50"),
    ]


def test_the_list_filters_and_paginates(api):
    for i in range(3):
        open_account(api, holder="Pat", balance=f"{i * 100}.00")
    open_account(api, holder="Sam", balance="1000.00", account_type="CURRENT")
    closed = open_account(api, holder="Pat", balance="5.00")
    api.post(f"/api/accounts/{closed['id']}/close")

    def holders(query):
        return sorted((a["holder"], a["balance"]) for a in api.get(f"/api/accounts/?{query}").json()["results"])

    assert api.get("/api/accounts/").json()["count"] == 5
    assert holders("holder=Sam") == [("Sam", "1000.00")]
    assert holders("account_type=CURRENT") == [("Sam", "1000.00")]
    assert holders("status=CLOSED") == [("Pat", "5.00")]
    assert holders("balance_gt=100&balance_lt=1000") == [("Pat", "200.00")]
    page = api.get("/api/accounts/?page_size=2&page=2").json()
    assert page["count"] == 5 and len(page["results"]) == 2
    assert page["next"] and page["previous"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("balance_gt=abc", "balance_gt"),
        ("status=FROZEN", "status"),
        ("account_type=GOLD", "account_type"),
        ("colour=red", "colour"),
    ],
)
def test_bad_filters_are_a_validation_error(api, query, field):
    response = api.get(f"/api/accounts/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error" and field in response.json()["fields"]


def test_insufficient_funds_is_a_409(api):
    account = open_account(api, balance="10.00")
    response = api.post(f"/api/accounts/{account['id']}/withdrawals", {"amount": "10.01"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "insufficient_funds"
    assert "10.00" in response.json()["message"]


def test_moving_money_on_a_closed_account_is_a_409(api):
    account = open_account(api)
    api.post(f"/api/accounts/{account['id']}/close")
    for action in ("deposits", "withdrawals"):
        response = api.post(f"/api/accounts/{account['id']}/{action}", {"amount": "1.00"}, format="json")
        assert (response.status_code, response.json()["code"]) == (409, "account_closed")
    again = api.post(f"/api/accounts/{account['id']}/close")
    assert (again.status_code, again.json()["code"]) == (409, "account_closed")


@pytest.mark.parametrize(
    "body, field",
    [
        ({"amount": "0"}, "amount"),
        ({"amount": "-1.00"}, "amount"),
        ({"amount": "1.001"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "1e5"}, "amount"),
        ({"amount": "99999999999999.00"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": None}, "amount"),
        ({}, "amount"),
        ({"amount": "1.00", "note": "x"}, "note"),
    ],
)
def test_a_bad_amount_is_a_400_validation_error_naming_the_field(api, body, field):
    account = open_account(api)
    response = api.post(f"/api/accounts/{account['id']}/deposits", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]
    assert StoredEventRecord.objects.count() == 1


@pytest.mark.parametrize(
    "body, field",
    [
        ({"holder": "", "account_type": "SAVINGS", "opening_balance": "1"}, "holder"),
        ({"holder": "x" * 256, "account_type": "SAVINGS", "opening_balance": "1"}, "holder"),
        ({"holder": "A\u0007", "account_type": "SAVINGS", "opening_balance": "1"}, "holder"),
        ({"holder": "A", "account_type": "GOLD", "opening_balance": "1"}, "account_type"),
        ({"holder": "A", "account_type": "SAVINGS", "opening_balance": "-1"}, "opening_balance"),
        ({"holder": "A", "account_type": "SAVINGS"}, "opening_balance"),
    ],
)
def test_a_bad_opening_is_a_400_and_stores_nothing(api, body, field):
    response = api.post("/api/accounts/", body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert StoredEventRecord.objects.count() == 0


@pytest.mark.parametrize("raw", [b'{"amount": ', b'{"amount": NaN}', b'{"amount": 1e3}', b"\xff\xfe"])
def test_malformed_json_is_a_400(api, raw):
    account = open_account(api)
    response = api.post(f"/api/accounts/{account['id']}/deposits", raw, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")
    assert StoredEventRecord.objects.count() == 1


def test_a_body_that_is_not_json_is_a_415(api):
    account = open_account(api)
    response = api.post(
        f"/api/accounts/{account['id']}/deposits", "amount=5", content_type="application/x-www-form-urlencoded"
    )
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")


@pytest.mark.parametrize("suffix", ["/", "/events", "/transactions"])
def test_an_unknown_account_is_a_404(api, suffix):
    for account_id in (uuid.uuid4(), "12345"):
        response = api.get(f"/api/accounts/{account_id}{suffix}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


@pytest.mark.parametrize("action", ["deposits", "withdrawals", "close"])
def test_a_command_on_an_unknown_account_is_a_404(api, action):
    response = api.post(f"/api/accounts/{uuid.uuid4()}/{action}", {"amount": "1.00"}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_wrong_method_is_a_405_in_the_error_shape(api):
    response = api.delete("/api/accounts/")
    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize(
    "method, path",
    [("get", "/api/accounts/"), ("post", "/api/accounts/"), ("get", f"/api/accounts/{uuid.uuid4()}/events")],
)
def test_anonymous_requests_get_401_in_the_error_shape(anonymous, method, path):
    response = getattr(anonymous, method)(path)
    assert (response.status_code, response.json()["code"]) == (401, "not_authenticated")


def test_a_bad_token_is_a_401(anonymous):
    anonymous.credentials(HTTP_AUTHORIZATION="Token nope")
    response = anonymous.get("/api/accounts/")
    assert (response.status_code, response.json()["code"]) == (401, "authentication_failed")


def test_an_unknown_api_path_is_a_json_404(api, settings):
    settings.DEBUG = False
    response = api.get("/api/nothing-here")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_openapi_schema_and_swagger_ui_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/openBankAccount" in paths and "/api/accounts/{account_id}/withdrawals" in paths
    assert api.get("/api/docs/").status_code == 200


def test_a_deposit_past_the_balance_limit_is_a_409_and_the_account_stays_readable(api):
    account = open_account(api, balance="9999999999999.99")
    response = api.post(f"/api/accounts/{account['id']}/deposits", {"amount": "0.01"}, format="json")
    assert (response.status_code, response.json()["code"]) == (409, "balance_limit_exceeded")
    assert api.get(f"/api/accounts/{account['id']}/").json()["balance"] == "9999999999999.99"
    assert api.get("/api/accounts/").status_code == 200


def test_a_holder_with_a_lone_surrogate_is_refused_and_stores_nothing(api):
    response = api.post(
        "/api/accounts/",
        b'{"holder": "a\\ud800b", "account_type": "SAVINGS", "opening_balance": "1"}',
        content_type="application/json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "validation_error")
    assert "holder" in response.json()["fields"]
    assert StoredEventRecord.objects.count() == 0


def test_deeply_nested_json_is_a_400_not_a_crash(api):
    body = b"[" * 100_000 + b"]" * 100_000
    response = api.post("/api/accounts/", body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


def test_a_body_too_large_for_the_server_is_a_json_400(api, settings):
    settings.DEBUG = False
    holder = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = api.post(
        "/api/accounts/", {"holder": holder, "account_type": "SAVINGS", "opening_balance": "1"}, format="json"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] in {"bad_request", "malformed_request"}
    assert StoredEventRecord.objects.count() == 0

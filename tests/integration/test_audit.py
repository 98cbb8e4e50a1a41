"""The audit trail: every stored event says who issued it, when and from which
request, and nothing (no API route, no management command) changes or deletes one."""

import re
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command, get_commands
from django.db import connection
from django.urls import URLResolver, get_resolver

from entrypoints.wiring import services
from eventstore.models import StoredEventRecord
from eventstore.store import NewEvent
from tests.servers.kafka import kafka_broker  # noqa: F401  (the session's broker, a pytest fixture)
from tests.wiring import CallOnNudge, rewire

pytestmark = pytest.mark.django_db(transaction=True)


def stored_events(account_id: str):
    return services().event_store.load_stream(str(account_id))


class RequestWindow:
    """The server's clock before and after a request: an event it stores must fall in between."""

    def __enter__(self):
        self.before = datetime.now(UTC)
        return self

    def __exit__(self, *exc):
        self.after = datetime.now(UTC)


def resource_api_commands(api, correlation):
    """Open, deposit, withdraw, close through /api/accounts/; yields (request window, account id) per command."""
    with RequestWindow() as window:
        opened = api.post(
            "/api/accounts/",
            {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"},
            format="json",
            HTTP_X_CORRELATION_ID=correlation("open"),
        )
    assert opened.status_code == 201, opened.content
    account_id = opened.json()["id"]
    yield window, account_id
    for path, body, name in (
        ("deposits", {"amount": "25.00"}, "deposit"),
        ("withdrawals", {"amount": "5.50"}, "withdraw"),
        ("close", None, "close"),
    ):
        with RequestWindow() as window:
            response = api.post(
                f"/api/accounts/{account_id}/{path}", body, format="json", HTTP_X_CORRELATION_ID=correlation(name)
            )
        assert response.status_code == 200, response.content
        yield window, account_id


def techbank_api_commands(api, correlation):
    """The same four commands through /api/v1/."""
    with RequestWindow() as window:
        opened = api.post(
            "/api/v1/openBankAccount",
            {"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 100},
            format="json",
            HTTP_X_CORRELATION_ID=correlation("open"),
        )
    assert opened.status_code == 201, opened.content
    account_id = opened.json()["id"]
    yield window, account_id
    for method, path, body, name in (
        ("put", "depositFunds", {"amount": 25}, "deposit"),
        ("put", "withdrawFunds", {"amount": 5.5}, "withdraw"),
        ("delete", "closeBankAccount", None, "close"),
    ):
        with RequestWindow() as window:
            response = getattr(api, method)(
                f"/api/v1/{path}/{account_id}", body, format="json", HTTP_X_CORRELATION_ID=correlation(name)
            )
        assert response.status_code == 200, response.content
        yield window, account_id


@pytest.mark.parametrize(
    "commands", [resource_api_commands, techbank_api_commands], ids=["resource API", "techbank API"]
)
def test_every_event_records_who_issued_it_when_and_the_requests_correlation_id(api, commands):
    run = uuid.uuid4().hex[:8]

    def correlation(name):
        return f"{run}-{name}"

    steps = list(commands(api, correlation))
    windows = [window for window, _ in steps]
    events = stored_events(steps[0][1])
    assert [e.event_type for e in events] == ["AccountOpened", "FundsDeposited", "FundsWithdrawn", "AccountClosed"]
    for event, window, name in zip(events, windows, ("open", "deposit", "withdraw", "close"), strict=True):
        assert event.metadata["correlation_id"] == correlation(name), event
        assert event.metadata["issued_by"] == "teller", event
        # Set by the server while it handled that request, in UTC.
        assert event.occurred_at.utcoffset() == timedelta(0), event
        assert window.before <= event.occurred_at <= window.after, (event, window.before, window.after)


def test_the_events_route_shows_each_events_time_and_metadata_as_stored(api):
    run = uuid.uuid4().hex[:8]
    [(_, account_id), *_] = resource_api_commands(api, lambda name: f"{run}-{name}")
    shown = api.get(f"/api/accounts/{account_id}/events").json()["results"]
    stored = stored_events(account_id)
    assert [datetime.fromisoformat(e["occurred_at"]) for e in shown] == [e.occurred_at for e in stored]
    assert [e["metadata"] for e in shown] == [e.metadata for e in stored]


def test_a_request_without_a_correlation_id_gets_a_fresh_one_per_request(api):
    account_id = api.post(
        "/api/accounts/", {"holder": "Bo", "account_type": "CURRENT", "opening_balance": "1.00"}, format="json"
    ).json()["id"]
    api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 1}, format="json")
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00"}, format="json", HTTP_X_CORRELATION_ID="")
    given = [e.metadata["correlation_id"] for e in stored_events(account_id)]
    assert len(given) == 3 and len(set(given)) == 3
    assert all(uuid.UUID(value) for value in given)


def test_a_body_that_tries_to_set_an_events_time_or_author_is_refused_and_stores_nothing(api):
    account_id = api.post(
        "/api/accounts/", {"holder": "Cy", "account_type": "CURRENT", "opening_balance": "1.00"}, format="json"
    ).json()["id"]
    forged = {"occurred_at": "2001-01-01T00:00:00Z", "issued_by": "mallory", "metadata": {"issued_by": "mallory"}}
    resource = api.post(f"/api/accounts/{account_id}/deposits", {"amount": "1.00", **forged}, format="json")
    assert (resource.status_code, resource.json()["code"]) == (400, "validation_error")
    techbank = api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 1, **forged}, format="json")
    assert techbank.status_code == 400 and "message" in techbank.json()
    assert [e.event_type for e in stored_events(account_id)] == ["AccountOpened"]


# -- events cannot be changed -------------------------------------------------------------------

UNSAFE_METHODS = ("post", "put", "patch", "delete")
# What a forger would send: a stored event's fields with other values.
FORGED_EVENT = {
    "version": 1,
    "event_type": "FundsDeposited",
    "data": {"amount": "1000000.00"},
    "amount": "1.00",
    "occurred_at": "2001-01-01T00:00:00Z",
    "metadata": {"issued_by": "mallory"},
}


def every_event_as_stored() -> list:
    return list(services().event_store.read_all())


def assert_unchanged(before: list, after: list) -> None:
    """Every event stored before is still there, as it was, in its place; new ones may follow."""
    assert after[: len(before)] == before


def _routes(patterns, prefix: str = "") -> list[str]:
    """The whole pattern of every route, through every include."""
    routes = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            routes += _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            routes.append(prefix + str(pattern.pattern))
    return routes


def api_paths(account_id: str, event_id: str) -> list[str]:
    """Every route of both APIs, with an existing account's id (and an event's) in the path."""
    values = {"account_id": account_id, "holder": "Ada", "equality_type": "GREATER_THAN", "balance": "0"}
    paths = [
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)
        for route in _routes(get_resolver().url_patterns)
        if route.startswith(("api/v1/", "api/accounts/"))
    ]
    events = f"/api/accounts/{account_id}/events"
    return [*paths, f"{events}/", f"{events}/1", f"{events}/{event_id}", f"/api/events/{event_id}"]


def test_no_api_route_changes_or_deletes_a_stored_event(api):
    account_id = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"}, format="json"
    ).json()["id"]
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "7.77"}, format="json")
    before = every_event_as_stored()
    answers = {}
    for path in api_paths(account_id, str(before[0].event_id)):
        for method in UNSAFE_METHODS:
            response = getattr(api, method)(path, FORGED_EVENT, format="json")
            answers[method, path] = response.status_code
            assert response.status_code < 500, (method, path, response.content)
    after = every_event_as_stored()
    assert_unchanged(before, after)
    assert len(after) > len(before)  # the sweep reached the account: its command routes appended
    events = f"/api/accounts/{account_id}/events"
    assert {answers[method, events] for method in UNSAFE_METHODS} == {405}
    assert {answers[method, f"{events}/1"] for method in UNSAFE_METHODS} == {404}


def test_the_events_route_answers_405_in_the_error_shape_to_every_unsafe_method(api):
    account_id = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()["id"]
    before = every_event_as_stored()
    for method in UNSAFE_METHODS:
        response = getattr(api, method)(f"/api/accounts/{account_id}/events", FORGED_EVENT, format="json")
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed"), method
    assert api.options(f"/api/accounts/{account_id}/events").headers["Allow"] == "GET, HEAD, OPTIONS"
    assert every_event_as_stored() == before


# The SQL statements that would change or remove a row of the events table (not of
# event_store_outbox or event_store_snapshots, whose names begin with its name).
_EVENTS_TABLE = r"""[`"]?event_store[`"]?(?!\w)"""
_CHANGES_AN_EVENT = re.compile(
    rf"""^\s*(UPDATE\s+{_EVENTS_TABLE}|DELETE\s+FROM\s+{_EVENTS_TABLE}|REPLACE\s+INTO\s+{_EVENTS_TABLE}
    |TRUNCATE\s+(TABLE\s+)?{_EVENTS_TABLE}|DROP\s+TABLE\s+(IF\s+EXISTS\s+)?{_EVENTS_TABLE}|ALTER\s+TABLE\s+{_EVENTS_TABLE}
    |INSERT\s+INTO\s+{_EVENTS_TABLE}.*\bON\s+(CONFLICT|DUPLICATE\s+KEY)\b)""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)


class StatementsThatChangeEvents:
    """A connection.execute_wrapper noting every statement that would update or delete a stored event."""

    def __init__(self):
        self.seen = []

    def __call__(self, execute, sql, params, many, context):
        if _CHANGES_AN_EVENT.search(sql):
            self.seen.append(sql)
        return execute(sql, params, many, context)


def test_the_statement_watch_spots_an_update_or_delete_of_an_event_and_not_the_outboxs(api):
    """The watch the command tests below rely on."""
    api.post("/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json")
    # An event straight into the store waits in the outbox (no command projected and published it).
    services().event_store.append(
        str(uuid.uuid4()), 0, [NewEvent(uuid.uuid4(), "AccountClosed", {}, datetime.now(UTC))]
    )
    watch = StatementsThatChangeEvents()
    with connection.execute_wrapper(watch):
        StoredEventRecord.objects.filter(version=99).update(event_type="Forged")
        with connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {connection.ops.quote_name('event_store')} WHERE 1 = 0")
        store = services().event_store
        waiting = [e.event_id for e in store.unpublished()]
        store.mark_published(waiting)
    assert len(waiting) == 1 and store.unpublished() == []
    assert len(watch.seen) == 2, watch.seen


PROJECT_APPS = {"accounts", "entrypoints", "eventstore", "projections", "techbank_site"}
COMMANDS_RUN_ON_THE_EMBEDDED_STACK = {
    "create_demo_staff": [],
    "rebuild_read_model": ["--no-progress"],
    "verify_read_model": ["--no-progress"],
}
COMMANDS_RUN_ON_KAFKA = {
    "relay_outbox": [],
    "run_projection_consumer": ["--until-idle", "1"],
}


def test_these_tests_run_every_management_command_of_the_project():
    ours = {name for name, app in get_commands().items() if app.split(".")[-1] in PROJECT_APPS}
    assert ours == set(COMMANDS_RUN_ON_THE_EMBEDDED_STACK) | set(COMMANDS_RUN_ON_KAFKA)


def run_commands_watching_the_events(commands: dict[str, list[str]]) -> None:
    before = every_event_as_stored()
    watch = StatementsThatChangeEvents()
    with connection.execute_wrapper(watch):
        for name, args in commands.items():
            try:
                call_command(name, *args, stdout=StringIO(), stderr=StringIO())
            except SystemExit as exit:  # verify_read_model's status: whether the read model differs
                assert exit.code in (0, None), (name, exit.code)  # noqa: PT017 - only some commands exit
    assert watch.seen == []
    assert_unchanged(before, every_event_as_stored())


def test_no_management_command_changes_or_deletes_a_stored_event(api):
    account_id = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"}, format="json"
    ).json()["id"]
    api.post(f"/api/accounts/{account_id}/withdrawals", {"amount": "7.77"}, format="json")
    run_commands_watching_the_events(COMMANDS_RUN_ON_THE_EMBEDDED_STACK)


@pytest.fixture
def kafka_bus(settings, kafka_broker, monkeypatch):  # noqa: F811
    settings.TECHBANK_EVENT_BUS = "kafka"
    settings.TECHBANK_KAFKA_BOOTSTRAP = kafka_broker
    settings.TECHBANK_KAFKA_TOPIC = f"techbank.test.{uuid.uuid4().hex[:8]}"
    settings.TECHBANK_KAFKA_GROUP = f"g-{uuid.uuid4().hex[:8]}"
    rewire(relay_nudges=CallOnNudge())  # the relay runs as the command below
    yield
    services().transport.close()
    rewire()


def test_no_kafka_stack_command_changes_or_deletes_a_stored_event(api, kafka_bus):
    account_id = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"}, format="json"
    ).json()["id"]
    api.post(f"/api/accounts/{account_id}/deposits", {"amount": "7.77"}, format="json")
    assert len(services().event_store.unpublished()) == 2  # for relay_outbox to publish
    run_commands_watching_the_events(COMMANDS_RUN_ON_KAFKA)
    assert services().event_store.unpublished() == []  # published, and still stored (checked above)

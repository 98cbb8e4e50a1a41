"""Every kind of bad input to every endpoint gets its documented 4xx, and nothing is stored.

One table, built below as endpoints x bad inputs. Bodies are raw bytes: json.dumps
cannot write NaN, 1e3 or an unpaired surrogate the way a careless client does.
"""

import json
import uuid
from dataclasses import dataclass

import pytest

from eventstore.models import OutboxEntry, StoredEventRecord
from projections.models import AccountSummary, LedgerEntry, RebuildJob

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "{account}"  # in a path: the id of an open account, made before the request

INVALID = ("validation_error", 400)  # a field is wrong: the body was read
MALFORMED = ("malformed_request", 400)  # the body is not JSON we accept
UNSUPPORTED = ("unsupported_media_type", 415)
NOT_FOUND = ("not_found", 404)


@dataclass(frozen=True)
class Case:
    route: str  # the cases of one route share a test (and its database): one database flush per route
    name: str
    method: str
    path: str
    expected: tuple[str, int]
    body: bytes | None = None
    content_type: str = "application/json"
    field: str | None = None  # the field a validation error names
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def techbank(self) -> bool:
        return self.path.startswith("/api/v1/")


@dataclass(frozen=True)
class BodyEndpoint:
    method: str
    path: str
    valid: dict
    money: dict[str, bool]  # money field -> must it be positive (not merely not negative)?
    holder: str | None = None
    account_type: str | None = None


BODY_ENDPOINTS = [
    BodyEndpoint(
        "POST",
        "/api/v1/openBankAccount",
        {"accountHolder": "Ada", "accountType": "SAVINGS", "openingBalance": 100},
        {"openingBalance": False},
        holder="accountHolder",
        account_type="accountType",
    ),
    BodyEndpoint("PUT", f"/api/v1/depositFunds/{ACCOUNT}", {"amount": 10}, {"amount": True}),
    BodyEndpoint("PUT", f"/api/v1/withdrawFunds/{ACCOUNT}", {"amount": 10}, {"amount": True}),
    BodyEndpoint(
        "POST",
        "/api/accounts/",
        {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "100.00"},
        {"opening_balance": False},
        holder="holder",
        account_type="account_type",
    ),
    BodyEndpoint("POST", f"/api/accounts/{ACCOUNT}/deposits", {"amount": "10.00"}, {"amount": True}),
    BodyEndpoint("POST", f"/api/accounts/{ACCOUNT}/withdrawals", {"amount": "10.00"}, {"amount": True}),
]

# Bad values: (the JSON literal a client sends, the answer it gets). ZERO is refused
# only where an amount must be positive: an account may open with 0.00.
ZERO = "zero"
AMOUNT_NUMBERS = [
    ("-1", INVALID),
    ("0", ZERO),
    ("0.00", ZERO),
    ("1.001", INVALID),
    ("10000000000000.00", INVALID),
    ("NaN", MALFORMED),
    ("Infinity", MALFORMED),
    ("-Infinity", MALFORMED),
    ("1e3", MALFORMED),
    ("1E-2", MALFORMED),
]
AMOUNT_STRINGS = [
    *[(json.dumps(text), ZERO if expected is ZERO else INVALID) for text, expected in AMOUNT_NUMBERS],
    ('""', INVALID),
    ('"   "', INVALID),
    ('"abc"', INVALID),
    ('"1_000"', INVALID),  # Decimal() would read 1000
    ('"\\u0661\\u0662"', INVALID),  # Arabic-Indic digits: Decimal() would read 12
    ('"0x10"', INVALID),
    ('"1\\ud800"', INVALID),
]
AMOUNT_OTHER_TYPES = [("true", INVALID), ("null", INVALID), ("[]", INVALID), ("{}", INVALID), ("[10]", INVALID)]
HOLDERS = [
    ('""', INVALID),
    ('"   "', INVALID),
    (json.dumps("x" * 10_000), INVALID),
    ('"A\\u0000B"', INVALID),
    ('"A\\nB"', INVALID),
    ('"\\u0007"', INVALID),
    ('"A\\u0085B"', INVALID),  # a C1 control character
    ('"\\ud800"', INVALID),  # an unpaired surrogate: not text, and no database can store it
    # Unicode format characters (Cf): spoofing in the admin, dodging exact lookups.
    ('"Ada\\u202eecalevoL"', INVALID),  # right-to-left override
    ('"A\\u2066B\\u2069"', INVALID),  # left-to-right isolate
    ('"Ada\\u200bLovelace"', INVALID),  # zero-width space
    ('"Ada\\u200dLovelace"', INVALID),  # zero-width joiner
    ('"\\ufeffAda"', INVALID),  # byte order mark
    ('"Ada\\u00adLovelace"', INVALID),  # soft hyphen
    ("123", INVALID),
    ("null", INVALID),
]
ACCOUNT_TYPES = [
    ('"GOLD"', INVALID),
    ('"savings"', INVALID),
    ('""', INVALID),
    ("null", INVALID),
    ("1", INVALID),
    ('"\\udfff"', INVALID),  # echoed in the error message, which must still render
]

PLACEHOLDER = "__value__"


def with_value(valid: dict, field: str, literal: str) -> bytes:
    """`valid` with `field` set to a raw JSON literal."""
    return json.dumps({**valid, field: PLACEHOLDER}).replace(json.dumps(PLACEHOLDER), literal).encode()


def field_cases(endpoint: BodyEndpoint) -> list[Case]:
    def case(field, literal, expected):
        body = with_value(endpoint.valid, field, literal)
        name = f"{field}={literal[:20]}"
        route = f"{endpoint.method} {endpoint.path}"
        return Case(route, name, endpoint.method, endpoint.path, expected, body, field=field)

    cases = []
    for field, positive in endpoint.money.items():
        for literal, expected in AMOUNT_NUMBERS + AMOUNT_STRINGS + AMOUNT_OTHER_TYPES:
            if expected is ZERO and not positive:
                continue
            cases.append(case(field, literal, INVALID if expected is ZERO else expected))
    for field, values in ((endpoint.holder, HOLDERS), (endpoint.account_type, ACCOUNT_TYPES)):
        cases += [case(field, literal, expected) for literal, expected in values if field]
    return cases


def body_cases(endpoint: BodyEndpoint) -> list[Case]:
    where = f"{endpoint.method} {endpoint.path}"
    valid = json.dumps(endpoint.valid).encode()

    def case(what, expected, body, content_type="application/json", field=None):
        return Case(where, what, endpoint.method, endpoint.path, expected, body, content_type, field)

    def without(name: str) -> bytes:
        return json.dumps({k: v for k, v in endpoint.valid.items() if k != name}).encode()

    return [
        case("an extra field", INVALID, json.dumps({**endpoint.valid, "note": "x"}).encode(), field="note"),
        *[case(f"without {name}", INVALID, without(name), field=name) for name in endpoint.valid],
        case("an empty body", INVALID, b""),
        case("a JSON list", INVALID, json.dumps([endpoint.valid]).encode(), field="non_field_errors"),
        case("a JSON string", INVALID, b'"x"', field="non_field_errors"),
        case("a JSON number", INVALID, b"5", field="non_field_errors"),
        case("JSON null", INVALID, b"null", field="non_field_errors"),
        case("cut-off JSON", MALFORMED, valid[:-1]),
        case("JSON with trailing garbage", MALFORMED, valid + b" x"),
        case("single-quoted JSON", MALFORMED, valid.replace(b'"', b"'")),
        case("a body that is not UTF-8", MALFORMED, valid[:-1] + b', "x": "\xff\xfe"}'),
        case("an unpaired surrogate in a field's name", INVALID, valid[:-1] + b', "\\udc00": 1}', field="\udc00"),
        case("JSON nested 100,000 deep", MALFORMED, b"[" * 100_000 + b"]" * 100_000),
        # A gateway or a reviewer reading the first of two keys sees another request than the one run.
        *[
            case(f"{name} given twice", MALFORMED, valid[:-1] + b", " + json.dumps({name: value}).encode()[1:])
            for name, value in endpoint.valid.items()
        ],
        *[
            case(
                f"{name} given twice, the last larger", MALFORMED, valid[:-1] + b', "' + name.encode() + b'": 99999.00}'
            )
            for name in endpoint.money
        ],
        case("a key given twice in a nested object", MALFORMED, valid[:-1] + b', "note": {"a": 1, "a": 2}}'),
        case("a form-encoded body", UNSUPPORTED, b"amount=10", "application/x-www-form-urlencoded"),
        case("a multipart body", UNSUPPORTED, b"--x\r\n\r\n--x--\r\n", "multipart/form-data; boundary=x"),
        case("JSON sent as text/plain", UNSUPPORTED, valid, "text/plain"),
        case("JSON without a content type", UNSUPPORTED, valid, ""),
    ]


NOT_UUIDS = ["12345", "not-a-uuid", f"{uuid.UUID(int=1)}x", "%00", "x" * 300]
ID_ROUTES = [
    ("PUT", f"/api/v1/depositFunds/{ACCOUNT}", b'{"amount": 10}'),
    ("PUT", f"/api/v1/withdrawFunds/{ACCOUNT}", b'{"amount": 10}'),
    ("DELETE", f"/api/v1/closeBankAccount/{ACCOUNT}", None),
    ("GET", f"/api/v1/bankAccountLookup/byId/{ACCOUNT}", None),
    ("GET", f"/api/accounts/{ACCOUNT}/", None),
    ("POST", f"/api/accounts/{ACCOUNT}/deposits", b'{"amount": "10.00"}'),
    ("POST", f"/api/accounts/{ACCOUNT}/withdrawals", b'{"amount": "10.00"}'),
    ("POST", f"/api/accounts/{ACCOUNT}/close", None),
    ("GET", f"/api/accounts/{ACCOUNT}/events", None),
    ("GET", f"/api/accounts/{ACCOUNT}/transactions", None),
    ("GET", f"/api/rebuilds/{ACCOUNT}", None),
]


def id_cases() -> list[Case]:
    return [
        Case(f"{method} {route}", f"id={bad_id[:20]}", method, route.replace(ACCOUNT, bad_id), NOT_FOUND, body)
        for method, route, body in ID_ROUTES
        for bad_id in NOT_UUIDS
    ]


# Every write endpoint takes an Idempotency-Key header; the only input restoreReadDb has.
BAD_IDEMPOTENCY_KEYS = ["", "k" * 256, "a\x01b"]
WRITE_ROUTES = [
    *[(e.method, e.path, json.dumps(e.valid).encode()) for e in BODY_ENDPOINTS],
    ("DELETE", f"/api/v1/closeBankAccount/{ACCOUNT}", None),
    ("POST", f"/api/accounts/{ACCOUNT}/close", None),
    ("POST", "/api/v1/restoreReadDb", None),
    ("POST", "/api/rebuilds/", None),
]


def header_cases() -> list[Case]:
    def case(method, route, body, key):
        name = f"Idempotency-Key={key[:20]!r}"
        headers = (("Idempotency-Key", key),)
        return Case(f"{method} {route}", name, method, route, INVALID, body, field="Idempotency-Key", headers=headers)

    return [case(method, route, body, key) for method, route, body in WRITE_ROUTES for key in BAD_IDEMPOTENCY_KEYS]


BAD_MONEY_PARAMETERS = [
    *["NaN", "Infinity", "-Infinity", "1e3", "1E-2", "abc", "1.001", "10000000000000.00", "1_000"],
    "%D9%A1",  # an Arabic-Indic digit one
]
WITH_BALANCE = "/api/v1/bankAccountLookup/withBalance/"


def query_cases() -> list[Case]:
    def get(path, expected, field=None):
        route, _, query = path.partition("?")
        if route.startswith(WITH_BALANCE):
            route, query = f"{WITH_BALANCE}{{equalityType}}/{{balance}}", route.removeprefix(WITH_BALANCE)
        return Case(f"GET {route}", query, "GET", path, expected, field=field)

    paginated = ["/api/accounts/", f"/api/accounts/{ACCOUNT}/events", f"/api/accounts/{ACCOUNT}/transactions"]
    return [
        *[
            get(f"/api/accounts/?{name}={value}", INVALID, name)
            for name in ("balance_gt", "balance_lt")
            for value in [*BAD_MONEY_PARAMETERS, ""]
        ],
        *[get(f"/api/accounts/?account_type={value}", INVALID, "account_type") for value in ("GOLD", "savings", "")],
        get("/api/accounts/?status=FROZEN", INVALID, "status"),
        get("/api/accounts/?holder=", INVALID, "holder"),
        get("/api/accounts/?holder=A%00B", INVALID, "holder"),
        *[
            case
            for path in paginated
            for case in (
                get(f"{path}?colour=red", INVALID, "colour"),
                *[get(f"{path}?page={value}", INVALID, "page") for value in ("0", "-1", "abc", "1.5", "")],
                *[get(f"{path}?page_size={value}", INVALID, "page_size") for value in ("0", "501", "abc")],
                get(f"{path}?page=99", NOT_FOUND),  # past the last page
            )
        ],
        *[
            get(f"{WITH_BALANCE}{comparison}/10", INVALID, "equalityType")
            for comparison in ("EQUAL_TO", "greater_than", "GREATER_THAN%00")
        ],
        *[get(f"{WITH_BALANCE}LESS_THAN/{value}", INVALID, "balance") for value in BAD_MONEY_PARAMETERS],
    ]


CASES = [
    *[case for endpoint in BODY_ENDPOINTS for case in field_cases(endpoint) + body_cases(endpoint)],
    *id_cases(),
    *header_cases(),
    *query_cases(),
]
TABLE: dict[str, list[Case]] = {}
for _case in CASES:
    TABLE.setdefault(_case.route, []).append(_case)


def stored_state() -> tuple:
    """Everything a request could have stored: events, the outbox, the read models."""
    return (
        list(StoredEventRecord.objects.order_by("pk").values_list("pk", flat=True)),
        OutboxEntry.objects.count(),
        list(AccountSummary.objects.order_by("id").values()),
        LedgerEntry.objects.count(),
        RebuildJob.objects.count(),
    )


@pytest.fixture
def account_id(api) -> str:
    body = {"holder": "Alice", "account_type": "SAVINGS", "opening_balance": "100.00"}
    response = api.post("/api/accounts/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def assert_refused_as_documented(api, account_id: str, case: Case) -> None:
    before = stored_state()
    path = case.path.replace(ACCOUNT, account_id)
    headers = dict(case.headers)
    response = api.generic(case.method, path, case.body or b"", content_type=case.content_type, headers=headers)

    code, status = case.expected
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if case.techbank:
        assert set(body) == {"message"} and body["message"].strip()
        if case.field and case.expected == INVALID:
            assert case.field in body["message"]
    else:
        assert body["code"] == code and body["message"].strip()
        assert set(body) <= {"code", "message", "fields"}
        if case.field and case.expected == INVALID:
            assert case.field in body["fields"]
    assert stored_state() == before


def test_the_table_covers_every_write_endpoint_of_both_apis_and_the_query_routes():
    assert {f"{method} {route}" for method, route, _ in WRITE_ROUTES + ID_ROUTES} <= set(TABLE)
    assert "GET /api/accounts/" in TABLE
    assert len(CASES) > 400


@pytest.mark.parametrize("route", list(TABLE))
def test_bad_input_gets_the_documented_error_and_stores_nothing(api, account_id, subtests, route):
    for case in TABLE[route]:
        with subtests.test(case.name):
            assert_refused_as_documented(api, account_id, case)


def test_a_lookup_by_a_holder_no_account_can_have_finds_none(api, account_id):
    for holder in ("a%0Ab", "%0A", "a%00b", "%E2%80%A8", "%20"):
        response = api.get(f"/api/v1/bankAccountLookup/byHolder/{holder}")
        assert response.status_code == 204, (holder, response.content)

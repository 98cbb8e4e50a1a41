"""Who may do what (README, "Access"), route by route under /api/: anonymous
requests are 401, signed-in users without the route's permission 403 with
nothing stored, and each staff group may do exactly its share."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import URLResolver, get_resolver

from entrypoints.drf.permissions import (
    CLOSE_ACCOUNT,
    MOVE_MONEY,
    OPEN_ACCOUNT,
    REBUILD_READ_MODEL,
    VIEW_ACCOUNTS,
)
from eventstore.models import StoredEventRecord
from projections.models import AccountSummary, RebuildJob

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
AUTHENTICATED = None  # any signed-in user, no particular permission

# Every method of every route under /api/ (parameters without their converters):
# the permission it needs, and a body that succeeds.
ACCESS = {
    ("POST", "api/v1/openBankAccount"): (
        OPEN_ACCOUNT,
        {"accountHolder": "Eve", "accountType": "SAVINGS", "openingBalance": 5},
    ),
    ("PUT", "api/v1/depositFunds/<account_id>"): (MOVE_MONEY, {"amount": 1}),
    ("PUT", "api/v1/withdrawFunds/<account_id>"): (MOVE_MONEY, {"amount": 1}),
    ("DELETE", "api/v1/closeBankAccount/<account_id>"): (CLOSE_ACCOUNT, None),
    ("POST", "api/v1/restoreReadDb"): (REBUILD_READ_MODEL, None),
    ("GET", "api/v1/bankAccountLookup/"): (VIEW_ACCOUNTS, None),
    ("GET", "api/v1/bankAccountLookup/byId/<account_id>"): (VIEW_ACCOUNTS, None),
    ("GET", "api/v1/bankAccountLookup/byHolder/<holder>"): (VIEW_ACCOUNTS, None),
    ("GET", "api/v1/bankAccountLookup/withBalance/<equality_type>/<balance>"): (VIEW_ACCOUNTS, None),
    ("GET", "api/accounts/"): (VIEW_ACCOUNTS, None),
    ("POST", "api/accounts/"): (OPEN_ACCOUNT, {"holder": "Eve", "account_type": "SAVINGS", "opening_balance": "5.00"}),
    ("GET", "api/accounts/<account_id>/"): (VIEW_ACCOUNTS, None),
    ("POST", "api/accounts/<account_id>/deposits"): (MOVE_MONEY, {"amount": "1.00"}),
    ("POST", "api/accounts/<account_id>/withdrawals"): (MOVE_MONEY, {"amount": "1.00"}),
    ("POST", "api/accounts/<account_id>/close"): (CLOSE_ACCOUNT, None),
    ("GET", "api/accounts/<account_id>/events"): (VIEW_ACCOUNTS, None),
    ("GET", "api/accounts/<account_id>/transactions"): (VIEW_ACCOUNTS, None),
    ("POST", "api/rebuilds/"): (REBUILD_READ_MODEL, None),
    ("GET", "api/rebuilds/<rebuild_id>"): (REBUILD_READ_MODEL, None),
    ("GET", "api/schema/"): (AUTHENTICATED, None),
    ("GET", "api/docs/"): (AUTHENTICATED, None),
}
ROUTES = sorted(ACCESS, key=lambda method_route: (method_route[1], method_route[0]))

# What each group made by the migrations may do (accounts/migrations/0003_staff_groups.py, and the
# read side's projections/migrations/0005_rebuild_read_model_permission.py).
GROUP_PERMISSIONS = {
    "Auditor": {VIEW_ACCOUNTS},
    "Teller": {VIEW_ACCOUNTS, OPEN_ACCOUNT, MOVE_MONEY},
    "Account manager": {VIEW_ACCOUNTS, OPEN_ACCOUNT, MOVE_MONEY, CLOSE_ACCOUNT, REBUILD_READ_MODEL},
}


def api_routes() -> set[tuple[str, str]]:
    """(method, route) for every view under /api/, read from the URL resolver itself."""

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), pattern.callback

    routes = set()
    for route, view in walk(get_resolver().url_patterns):
        route = re.sub(r"<\w+:(\w+)>", r"<\1>", route)  # <str:account_id> -> <account_id>
        if route.startswith("api/"):
            view_class = getattr(view, "view_class", None)  # a function view: any method, so "*"
            methods = view_class.http_method_names if view_class else ["*"]
            routes |= {
                (m.upper(), route)
                for m in methods
                if m not in ("head", "options") and (not view_class or hasattr(view_class, m))
            }
    return routes


@pytest.fixture
def account(api) -> dict:
    """An account, and a finished rebuild to watch (the routes' parameters)."""
    opened = api.post(
        "/api/accounts/",
        {"holder": "Ada Lovelace", "account_type": "SAVINGS", "opening_balance": "100.00"},
        format="json",
    ).json()
    rebuild = api.post("/api/v1/restoreReadDb")
    assert rebuild.status_code == 201, rebuild.content
    return {**opened, "rebuild_id": RebuildJob.objects.get().id}


def call(client, method: str, route: str, account: dict):
    values = {
        "account_id": account["id"],
        "holder": account["holder"],
        "equality_type": "GREATER_THAN",
        "balance": "0",
        "rebuild_id": str(account["rebuild_id"]),
    }
    path = "/" + re.sub(r"<(\w+)>", lambda m: values[m.group(1)], route)
    _, body = ACCESS[(method, route)]
    return getattr(client, method.lower())(path, body, format="json" if body is not None else None)


def stored_state() -> tuple:
    return StoredEventRecord.objects.count(), list(AccountSummary.objects.order_by("id").values())


def assert_refused_in_the_apis_shape(response, route: str, status: int, code: str):
    assert response.status_code == status, response.content
    if route.startswith("api/v1/"):
        assert list(response.json()) == ["message"]
    elif route.startswith("api/accounts/"):
        assert response.json()["code"] == code


def test_the_access_table_has_every_api_route_and_method():
    routes = api_routes()
    assert not routes - set(ACCESS), (
        f"routes missing from ACCESS (say who may call them): {sorted(routes - set(ACCESS))}"
    )
    assert not set(ACCESS) - routes, f"ACCESS names routes that do not exist: {sorted(set(ACCESS) - routes)}"


@pytest.mark.parametrize("method, route", ROUTES)
def test_anonymous_requests_are_refused_with_401(anonymous, account, method, route):
    before = stored_state()
    response = call(anonymous, method, route, account)
    assert_refused_in_the_apis_shape(response, route, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Token"
    assert stored_state() == before


@pytest.mark.parametrize("method, route", ROUTES)
def test_a_user_without_permissions_is_refused_with_403_and_nothing_is_stored(api_as, account, method, route):
    permission, _ = ACCESS[(method, route)]
    before = stored_state()
    response = call(api_as(), method, route, account)
    if permission is AUTHENTICATED:
        assert response.status_code == 200, response.content
        return
    assert_refused_in_the_apis_shape(response, route, 403, "permission_denied")
    body = response.json()
    assert permission in body["message"], body  # says which permission to ask for
    assert stored_state() == before


@pytest.mark.parametrize("group", GROUP_PERMISSIONS)
@pytest.mark.parametrize("method, route", ROUTES)
def test_each_staff_group_may_do_exactly_its_share(api_as, account, group, method, route):
    permission, _ = ACCESS[(method, route)]
    before = stored_state()
    response = call(api_as(groups=[group]), method, route, account)
    if permission is AUTHENTICATED or permission in GROUP_PERMISSIONS[group]:
        assert 200 <= response.status_code < 300, response.content
    else:
        assert_refused_in_the_apis_shape(response, route, 403, "permission_denied")
        assert stored_state() == before


def test_a_permission_given_to_the_user_directly_counts_too(api_as, account):
    auditor_who_may_deposit = api_as(MOVE_MONEY, groups=["Auditor"])
    assert (
        auditor_who_may_deposit.post(
            f"/api/accounts/{account['id']}/deposits", {"amount": "1.00"}, format="json"
        ).status_code
        == 200
    )
    assert auditor_who_may_deposit.post(f"/api/accounts/{account['id']}/close").status_code == 403


def test_a_signed_in_browser_session_without_the_permission_gets_403_not_401(client, django_user_model, account):
    client.force_login(django_user_model.objects.create_user(username="clerk", is_staff=True))
    response = client.get("/api/accounts/")
    assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert client.get("/api/docs/").status_code == 200


def test_a_fresh_database_gets_the_three_staff_groups(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHBANK_") and k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        TECHBANK_SECRET_KEY="x" * 50,
        DJANGO_SETTINGS_MODULE="techbank_site.settings",
    )
    manage = [sys.executable, str(ROOT / "manage.py")]
    migrated = subprocess.run(
        [*manage, "migrate", "--no-input", "-v0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr
    listed = subprocess.run(
        [
            *manage,
            "shell",
            "-v0",
            "-c",
            (
                "import json\n"
                "from django.contrib.auth.models import Group\n"
                "print(json.dumps({g.name: sorted(f'{p.content_type.app_label}.{p.codename}'"
                " for p in g.permissions.all()) for g in Group.objects.all()}))"
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    groups = json.loads(listed.stdout.strip().splitlines()[-1])
    # The admin's read-only pages: events, ledgers and dead letters; account managers also retry dead letters.
    browse = ["eventstore.view_storedeventrecord", "projections.view_deadletter", "projections.view_ledgerentry"]
    dead_letters = {"Account manager": ["projections.handle_deadletter"]}
    assert groups == {
        name: sorted([*permissions, *browse, *dead_letters.get(name, [])])
        for name, permissions in GROUP_PERMISSIONS.items()
    }


# What a command answer could tell about an account beyond its id.
ACCOUNT_STATE = {"holder", "account_type", "balance", "status", "version", "opened_at", "closed_at"}
COMMAND_ROUTES = sorted(
    (method, route)
    for (method, route), (permission, _) in ACCESS.items()
    if permission in (OPEN_ACCOUNT, MOVE_MONEY, CLOSE_ACCOUNT)
)


@pytest.mark.parametrize("method, route", COMMAND_ROUTES)
def test_a_user_who_may_act_but_not_look_up_accounts_gets_answers_without_account_state(api_as, account, method, route):
    permission, _ = ACCESS[(method, route)]
    response = call(api_as(permission), method, route, account)
    assert 200 <= response.status_code < 300, response.content
    body = response.json()
    assert not ACCOUNT_STATE & set(body), body
    assert not re.search(r"\d\.\d\d", response.content.decode()), body  # no amount, no balance
    if route.startswith("api/accounts/"):
        assert set(body) == {"id", "operation", "outcome"} and body["outcome"] == "completed"


@pytest.mark.parametrize("method, route", [r for r in COMMAND_ROUTES if r[1].startswith("api/accounts/")])
def test_a_user_who_may_also_look_up_accounts_gets_the_account_after_the_command(api_as, account, method, route):
    permission, _ = ACCESS[(method, route)]
    response = call(api_as(permission, VIEW_ACCOUNTS), method, route, account)
    assert 200 <= response.status_code < 300, response.content
    assert set(response.json()) >= ACCOUNT_STATE


REFUSED_MOVEMENTS = [
    ("post", "/api/accounts/{}/withdrawals", {"amount": "500.00"}, 409),
    ("put", "/api/v1/withdrawFunds/{}", {"amount": 500}, 400),
    ("post", "/api/accounts/{}/deposits", {"amount": "9999999999999.99"}, 409),
    ("put", "/api/v1/depositFunds/{}", {"amount": 9999999999999.99}, 400),
]


@pytest.mark.parametrize("method, path, body, status", REFUSED_MOVEMENTS)
def test_a_refusal_tells_the_balance_only_to_those_who_may_look_up_accounts(api, api_as, method, path, body, status):
    opened = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "123.45"}, format="json"
    )
    account_path = path.format(opened.json()["id"])
    teller_only = getattr(api_as(MOVE_MONEY), method)(account_path, body, format="json")
    assert teller_only.status_code == status, teller_only.content
    assert teller_only.json()["message"].strip()
    assert "123.45" not in teller_only.content.decode()
    viewer = getattr(api_as(MOVE_MONEY, VIEW_ACCOUNTS), method)(account_path, body, format="json")
    assert (viewer.status_code, "123.45" in viewer.json()["message"]) == (status, True)

"""The techbank course API, route for route, as its clients use it."""

import uuid
from decimal import Decimal

import pytest

from eventstore.models import StoredEventRecord
from projections.models import AccountSummary

# Transactional: commands project into the read model when their transaction commits.
pytestmark = pytest.mark.django_db(transaction=True)


def open_account(api, holder="Alice", balance=100.0, account_type="SAVINGS"):
    response = api.post(
        "/api/v1/openBankAccount",
        {"accountHolder": holder, "accountType": account_type, "openingBalance": balance},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_opening_an_account_answers_201_with_the_message_and_a_uuid(api):
    response = api.post(
        "/api/v1/openBankAccount",
        {"accountHolder": "Alice", "accountType": "SAVINGS", "openingBalance": 100.0},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["message"] == "Bank account creation request completed successfully!"
    assert uuid.UUID(response.json()["id"])


def test_deposit_withdraw_and_close_answer_with_techbank_messages(api):
    account_id = open_account(api)
    deposit = api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 50.0}, format="json")
    assert (deposit.status_code, deposit.json()) == (200, {"message": "Deposit funds request completed successfully!"})
    withdraw = api.put(f"/api/v1/withdrawFunds/{account_id}", {"amount": 25.0}, format="json")
    assert (withdraw.status_code, withdraw.json()) == (
        200,
        {"message": "Withdraw funds request completed successfully!"},
    )
    close = api.delete(f"/api/v1/closeBankAccount/{account_id}")
    assert (close.status_code, close.json()) == (
        200,
        {"message": "Bank account closure request successfully completed!"},
    )


def test_money_arrives_as_json_numbers_and_is_kept_exact(api):
    account_id = open_account(api, balance=0.1)
    api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 0.2}, format="json")
    assert AccountSummary.objects.get(id=account_id).balance == Decimal("0.30")
    [account] = api.get(f"/api/v1/bankAccountLookup/byId/{account_id}").json()["accounts"]
    assert account["balance"] == 0.3


def test_lookups_return_open_accounts_in_the_techbank_shape(api):
    account_id = open_account(api, holder="Bob", balance=250.5, account_type="CURRENT")
    body = api.get("/api/v1/bankAccountLookup/").json()
    assert body["message"] == "Successfully returned 1 bank account(s)!"
    [account] = body["accounts"]
    assert account["id"] == account_id
    assert account["accountHolder"] == "Bob"
    assert account["accountType"] == "CURRENT"
    assert account["balance"] == 250.5
    assert account["creationDate"].startswith("20")


def test_lookup_by_holder_returns_all_of_that_holders_open_accounts(api):
    first, second = open_account(api, holder="Carol"), open_account(api, holder="Carol", account_type="CURRENT")
    open_account(api, holder="Dave")
    body = api.get("/api/v1/bankAccountLookup/byHolder/Carol").json()
    assert sorted(a["id"] for a in body["accounts"]) == sorted([first, second])


@pytest.mark.parametrize(
    "comparison, threshold, expected",
    [("GREATER_THAN", "100", ["rich"]), ("LESS_THAN", "100", ["poor"]), ("GREATER_THAN", "500", [])],
)
def test_lookup_by_balance_is_strict(api, comparison, threshold, expected):
    open_account(api, holder="rich", balance=500)
    open_account(api, holder="poor", balance=10)
    open_account(api, holder="even", balance=100)
    response = api.get(f"/api/v1/bankAccountLookup/withBalance/{comparison}/{threshold}")
    if not expected:
        assert response.status_code == 204 and response.content == b""
    else:
        assert [a["accountHolder"] for a in response.json()["accounts"]] == expected


def test_closed_accounts_do_not_appear_in_lookups(api):
    account_id = open_account(api, holder="Eve")
    api.delete(f"/api/v1/closeBankAccount/{account_id}")
    assert api.get(f"/api/v1/bankAccountLookup/byId/{account_id}").status_code == 204
    assert api.get("/api/v1/bankAccountLookup/byHolder/Eve").status_code == 204
    assert api.get("/api/v1/bankAccountLookup/").status_code == 204


def test_restore_read_db_rebuilds_the_read_model(api):
    account_id = open_account(api, balance=10)
    api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 5}, format="json")
    AccountSummary.objects.all().delete()
    response = api.post("/api/v1/restoreReadDb")
    assert (response.status_code, response.json()) == (
        201,
        {"message": "Read database restore request completed successfully!"},
    )
    assert AccountSummary.objects.get(id=account_id).balance == Decimal("15.00")


@pytest.mark.parametrize(
    "path, body, words",
    [
        ("withdrawFunds", {"amount": 1000}, "Insufficient funds"),
        ("withdrawFunds", {"amount": -5}, "greater than 0.00"),
        ("withdrawFunds", {"amount": 0}, "greater than 0.00"),
        ("depositFunds", {"amount": 1.005}, "2 decimal places"),
        ("depositFunds", {}, "amount"),
        ("depositFunds", {"amount": "lots"}, "number"),
    ],
)
def test_refused_commands_answer_400_with_a_message(api, path, body, words):
    account_id = open_account(api)
    response = api.put(f"/api/v1/{path}/{account_id}", body, format="json")
    assert response.status_code == 400
    assert words in response.json()["message"]
    assert set(response.json()) == {"message"}
    assert StoredEventRecord.objects.count() == 1


def test_a_closed_account_refuses_deposits_and_a_second_closure(api):
    account_id = open_account(api)
    api.delete(f"/api/v1/closeBankAccount/{account_id}")
    deposit = api.put(f"/api/v1/depositFunds/{account_id}", {"amount": 5}, format="json")
    assert deposit.status_code == 400 and "closed" in deposit.json()["message"]
    again = api.delete(f"/api/v1/closeBankAccount/{account_id}")
    assert again.status_code == 400 and "already closed" in again.json()["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"accountHolder": "", "accountType": "SAVINGS", "openingBalance": 1}, "accountHolder"),
        ({"accountHolder": "A", "accountType": "GOLD", "openingBalance": 1}, "accountType"),
        ({"accountHolder": "A", "accountType": "SAVINGS", "openingBalance": -1}, "openingBalance"),
        ({"accountHolder": "A", "accountType": "SAVINGS"}, "openingBalance"),
    ],
)
def test_a_bad_opening_is_refused_with_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/openBankAccount", body, format="json")
    assert response.status_code == 400 and field in response.json()["message"]
    assert StoredEventRecord.objects.count() == 0


@pytest.mark.parametrize(
    "method, path", [("put", "depositFunds"), ("put", "withdrawFunds"), ("delete", "closeBankAccount")]
)
def test_an_unknown_account_answers_404(api, method, path):
    for account_id in (uuid.uuid4(), "not-a-uuid"):
        response = getattr(api, method)(f"/api/v1/{path}/{account_id}", {"amount": 1}, format="json")
        assert response.status_code == 404 and "No bank account" in response.json()["message"]


def test_a_bad_balance_comparison_answers_400(api):
    assert api.get("/api/v1/bankAccountLookup/withBalance/EQUAL_TO/10").status_code == 400
    assert api.get("/api/v1/bankAccountLookup/withBalance/LESS_THAN/abc").status_code == 400


@pytest.mark.parametrize(
    "method, path",
    [
        ("post", "/api/v1/openBankAccount"),
        ("put", f"/api/v1/depositFunds/{uuid.uuid4()}"),
        ("put", f"/api/v1/withdrawFunds/{uuid.uuid4()}"),
        ("delete", f"/api/v1/closeBankAccount/{uuid.uuid4()}"),
        ("post", "/api/v1/restoreReadDb"),
        ("get", "/api/v1/bankAccountLookup/"),
        ("get", f"/api/v1/bankAccountLookup/byId/{uuid.uuid4()}"),
        ("get", "/api/v1/bankAccountLookup/byHolder/x"),
        ("get", "/api/v1/bankAccountLookup/withBalance/LESS_THAN/1"),
    ],
)
def test_anonymous_requests_get_401(anonymous, method, path):
    response = getattr(anonymous, method)(path)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Token"

"""With the database down (users, tokens, Idempotency-Key records and read models live there), the API
answers at once with a 503 a client can act on, not a 500; tests/e2e/test_faults.py stops a real server."""

import uuid

import pytest
from django.db import OperationalError
from rest_framework.authentication import TokenAuthentication

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_down(monkeypatch):
    def cannot_connect(self, key):
        raise OperationalError(2002, "Can't connect to server on '127.0.0.1' (111)")

    monkeypatch.setattr(TokenAuthentication, "authenticate_credentials", cannot_connect)


def test_a_command_gets_a_503_with_retry_after_and_the_resource_api_error_shape(api, database_down):
    response = api.post(
        "/api/accounts/",
        {"holder": "Down", "account_type": "SAVINGS", "opening_balance": "1.00"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="down-1",
    )
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable" and "retry" in response.json()["message"]
    assert response["Retry-After"] == "5"


def test_a_query_and_a_techbank_command_get_a_503_too(api, database_down):
    assert api.get(f"/api/accounts/{uuid.uuid4()}/").status_code == 503
    response = api.put(f"/api/v1/depositFunds/{uuid.uuid4()}", {"amount": 1}, format="json")
    assert response.status_code == 503 and set(response.json()) == {"message"}

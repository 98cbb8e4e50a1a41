import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.fixture
def teller(django_user_model):
    return django_user_model.objects.create_user(username="teller")  # no password: hashing one costs 0.5 s


@pytest.fixture
def api(teller) -> APIClient:
    """A client that authenticates as a user would: with a DRF token header."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=teller).key}")
    return client


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()

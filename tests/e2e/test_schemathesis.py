"""Schemathesis fuzzes every operation of the OpenAPI schema against the real app on a real database.

Every answer must be one the schema describes: never a 5xx, a documented
status and content type, and a body that matches its schema. Bounded and
derandomized, so a run is repeatable and takes seconds; a failure prints the
request that reproduces it.
"""

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 25
SEED = 20261126


# The schema as /api/schema/ generates it: that view needs a signed-in user, and the tests are
# made before any database exists (test_the_fuzzed_schema_is_the_served_one checks they agree).
schema = schemathesis.openapi.from_dict(
    SchemaGenerator().get_schema(request=None, public=True), config=schemathesis.Config(seed=SEED)
)
# The app techbank_site/wsgi.py serves (less its django.setup(), which pytest-django has done),
# set as from_wsgi() sets it: cases are called on it in process, no server in between.
schema.app = WSGIHandler()


@pytest.fixture
def superuser_headers(django_user_model) -> dict:
    """A superuser may call everything, so the fuzzer reaches every operation's code, not its 403."""
    user = django_user_model.objects.create_superuser("fuzzer", "fuzzer@example.com", None)
    return {"Authorization": f"Token {Token.objects.create(user=user).key}"}


@pytest.fixture
def open_account_id(superuser_headers) -> str:
    client = APIClient(headers=superuser_headers)
    response = client.post(
        "/api/accounts/", {"holder": "Fuzz", "account_type": "CURRENT", "opening_balance": "5000.00"}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_fuzzed_schema_is_the_served_one(superuser_headers):
    served = APIClient(headers=superuser_headers).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    assert served.json() == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_answer_is_one_the_schema_describes(case, superuser_headers, open_account_id):
    # Random ids only ever meet a 404 (test_bad_input.py covers those): act on a real account instead.
    if "account_id" in case.path_parameters:
        case.path_parameters["account_id"] = open_account_id
    case.call_and_validate(headers=superuser_headers, checks=CHECKS)

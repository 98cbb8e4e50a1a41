"""Signing in (README, "Authentication"): tokens expire, and failed sign-ins are throttled
per client, on the API (by address) and on the admin's login form (by username and address)."""

import os
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from eventstore.models import StoredEventRecord
from tests.servers.processes import free_port, unavailable

pytestmark = pytest.mark.django_db(transaction=True)

ROUTES = [("/api/accounts/", "code"), ("/api/v1/bankAccountLookup/", "message")]
REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_cache(url: str, prefix: str) -> dict:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


@pytest.fixture(params=["in-process", "redis"])
def sign_in_cache(request, settings):
    """Where failed sign-ins are counted: the default per-process cache, or a real Redis (TECHBANK_CACHE_URL)."""
    if request.param == "in-process":
        yield
        return
    import redis

    server = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        server.ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    prefix = f"techbank-test-{uuid.uuid4().hex[:8]}"
    settings.CACHES = redis_cache(REDIS_URL, prefix)
    yield
    for key in server.scan_iter(f"{prefix}:*"):  # only ours: others share this database
        server.delete(key)


def client_from(address: str, token: str) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def age_token(user, hours: float) -> str:
    token = Token.objects.get(user=user)
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(hours=hours))
    return token.key


@pytest.mark.parametrize("path, shape", ROUTES)
def test_a_token_older_than_its_time_to_live_is_refused_with_401_saying_it_expired(api, teller, settings, path, shape):
    settings.TECHBANK_TOKEN_TTL_HOURS = 2
    key = age_token(teller, hours=3)
    response = client_from("10.0.0.1", key).get(path)
    assert response.status_code == 401, response.content
    assert "expired" in response.json()["message"]
    if shape == "code":
        assert response.json()["code"] == "authentication_failed"
    else:
        assert set(response.json()) == {"message"}


def test_a_token_younger_than_its_time_to_live_is_accepted(api, teller, settings):
    settings.TECHBANK_TOKEN_TTL_HOURS = 2
    key = age_token(teller, hours=1)
    assert client_from("10.0.0.1", key).get("/api/accounts/").status_code == 200


def test_an_expired_token_cannot_move_money(api, teller, settings):
    account_id = api.post(
        "/api/accounts/", {"holder": "Ada", "account_type": "SAVINGS", "opening_balance": "1.00"}, format="json"
    ).json()["id"]
    settings.TECHBANK_TOKEN_TTL_HOURS = 2
    key = age_token(teller, hours=3)
    events = StoredEventRecord.objects.count()
    response = client_from("10.0.0.1", key).post(
        f"/api/accounts/{account_id}/deposits", {"amount": "5.00"}, format="json"
    )
    assert response.status_code == 401
    assert StoredEventRecord.objects.count() == events


@pytest.mark.parametrize("path, shape", ROUTES)
def test_failed_token_sign_ins_from_one_address_are_throttled_with_429_for_that_address_only(
    api, teller, settings, sign_in_cache, path, shape
):
    settings.TECHBANK_FAILED_SIGN_IN_RATE = "3/min"
    good_key = Token.objects.get(user=teller).key
    attacker = "10.0.0.66"
    for guess in range(3):
        assert client_from(attacker, f"guess{guess}").get(path).status_code == 401
    throttled = client_from(attacker, "guess3").get(path)
    assert throttled.status_code == 429, throttled.content
    assert int(throttled["Retry-After"]) > 0
    if shape == "code":
        assert throttled.json()["code"] == "throttled"
    else:
        assert set(throttled.json()) == {"message"}
    # While throttled, even a right token from that address tells nothing (no oracle for guesses).
    assert client_from(attacker, good_key).get(path).status_code == 429
    assert client_from("10.0.0.7", good_key).get(path).status_code in (200, 204)


def test_an_address_behind_a_forwarding_proxy_header_is_not_believed_unless_configured(api, teller, settings):
    """A client must not dodge the throttle by sending another X-Forwarded-For each time."""
    settings.TECHBANK_FAILED_SIGN_IN_RATE = "2/min"
    for n in range(2):
        client_from("10.0.0.66", "nope").get("/api/accounts/", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    response = client_from("10.0.0.66", "nope").get("/api/accounts/", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert response.status_code == 429


def test_sign_ins_go_on_unthrottled_when_the_cache_that_counts_failures_is_down(api, teller, settings):
    settings.TECHBANK_FAILED_SIGN_IN_RATE = "1/min"
    settings.CACHES = redis_cache(f"redis://127.0.0.1:{free_port()}/0", "nobody-listens")
    good_key = Token.objects.get(user=teller).key
    assert [client_from("10.0.0.66", "nope").get("/api/accounts/").status_code for _ in range(3)] == [401] * 3
    assert client_from("10.0.0.66", good_key).get("/api/accounts/").status_code == 200


def test_successful_sign_ins_are_not_counted(api, teller, settings):
    settings.TECHBANK_FAILED_SIGN_IN_RATE = "2/min"
    good = client_from("10.0.0.8", Token.objects.get(user=teller).key)
    assert all(good.get("/api/accounts/").status_code == 200 for _ in range(5))


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(username="clerk", password="a right password 1", is_staff=True)


def admin_login(username: str, password: str, address: str = "10.0.0.5"):
    browser = Client(REMOTE_ADDR=address)
    return browser.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def test_the_admin_login_locks_a_username_at_an_address_after_repeated_failures(admin_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert admin_login("clerk", "wrong").status_code == 200  # the form again, with an error
    assert admin_login("clerk", "wrong").status_code == 429
    assert admin_login("clerk", "a right password 1").status_code == 429  # even the right password
    # The same user from elsewhere, and the lock does not let anyone lock a user out from afar.
    assert admin_login("clerk", "a right password 1", address="10.0.0.6").status_code == 302


def test_the_admin_login_lock_lapses_after_its_cool_off(admin_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login("clerk", "wrong")
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert admin_login("clerk", "a right password 1").status_code == 302


def test_the_demo_staff_user_gets_a_working_token_again_once_its_token_expired(settings):
    from io import StringIO

    from django.core.management import call_command

    settings.TECHBANK_TOKEN_TTL_HOURS = 2
    call_command("create_demo_staff", stdout=StringIO())
    demo = Token.objects.get(user__username="demo-staff")
    kept = StringIO()
    call_command("create_demo_staff", stdout=kept)
    assert demo.key in kept.getvalue()  # a token still valid is kept
    Token.objects.filter(pk=demo.pk).update(created=timezone.now() - timedelta(hours=3))
    renewed = StringIO()
    call_command("create_demo_staff", stdout=renewed)
    key = renewed.getvalue().split("Authorization: Token ")[1].split()[0]
    assert key != demo.key
    assert client_from("10.0.0.9", key).get("/api/accounts/").status_code == 200

import itertools
import threading

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from entrypoints import wiring
from tests.staff import ALL_ACCOUNT_PERMISSIONS, grant, staff_group, token_client
from tests.wiring import rewire

_usernames = (f"staff-{n}" for n in itertools.count(1))


@pytest.fixture(autouse=True)
def no_failed_sign_ins_remembered():
    """Failed token sign-ins are counted per address in the cache, which outlives a test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def teller(django_user_model):
    """The user most tests act as: may do everything the API offers (as the "Account manager" group)."""
    user = django_user_model.objects.create_user(username="teller")  # no password: hashing one costs 0.5 s
    grant(user, *ALL_ACCOUNT_PERMISSIONS)
    return user


@pytest.fixture
def api(teller) -> APIClient:
    """A client that authenticates as a user would: with a DRF token header."""
    return token_client(teller)


@pytest.fixture
def api_as(django_user_model):
    """api_as("accounts.move_money", groups=["Auditor"]): a client for a new user with exactly these."""

    def client_for(*permissions: str, groups=()) -> APIClient:
        user = django_user_model.objects.create_user(username=next(_usernames))
        grant(user, *permissions)
        user.groups.add(*(staff_group(name) for name in groups))
        return token_client(user)

    return client_for


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def services_as_the_settings_say():
    """A test that installed services of its own (tests.wiring.rewire) leaves the next one the settings' own."""
    before = wiring.services()
    yield
    if wiring.services() is not before:
        rewire()


@pytest.fixture(autouse=True)
def rebuilds_end_before_the_test_does():
    """A rebuild started through the API runs in a thread of its own (entrypoints.background.run_rebuild_in_background):
    it must end before the test's database is emptied under it. The timeout only bounds a hang."""
    yield
    for thread in threading.enumerate():
        if thread.name.startswith("rebuild-"):
            thread.join(timeout=120)
            assert not thread.is_alive(), f"{thread.name} still runs"


def pytest_collection_modifyitems(config, items):
    """Tests of what only MySQL/MariaDB can do are deselected on SQLite, so no run reports them as skipped."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
        return
    mysql_only = [item for item in items if item.get_closest_marker("mysql_only")]
    if mysql_only:
        config.hook.pytest_deselected(items=mysql_only)
        items[:] = [item for item in items if not item.get_closest_marker("mysql_only")]

"""Nudges for the relay over a real Redis: heard at once, not lost while the relay is busy, taken together."""
import os
import time
import uuid

import pytest

from eventstore.nudges import RedisRelayNudges
from tests.servers.processes import unavailable

REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def nudges():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        unavailable(f"Redis not reachable at {REDIS_URL}: {error}")
    return RedisRelayNudges(REDIS_URL, f"techbank:relay-nudge:test-{uuid.uuid4().hex[:8]}")


def subscribed(nudges):
    listener = nudges.listen()
    listener.wait(0.05)  # subscribes (and may return early on the subscription's confirmation)
    return listener


def test_a_nudge_wakes_the_waiting_relay_at_once(nudges):
    listener = subscribed(nudges)
    try:
        nudges.nudge()
        started = time.monotonic()
        assert listener.wait(5) is True
        assert time.monotonic() - started < 1
    finally:
        listener.close()


def test_nudges_sent_while_the_relay_was_busy_wake_it_once_and_then_it_waits(nudges):
    listener = subscribed(nudges)
    try:
        for _ in range(5):  # while it relays, not waiting
            nudges.nudge()
        assert listener.wait(5) is True
        started = time.monotonic()
        assert listener.wait(0.3) is False  # the five were taken as one
        assert time.monotonic() - started >= 0.25
    finally:
        listener.close()


def test_with_redis_unreachable_a_nudge_fails_fast_and_the_relay_falls_back_to_its_idle_round():
    unreachable = RedisRelayNudges("redis://127.0.0.1:1/0", "techbank:relay-nudge:nowhere")
    import redis

    started = time.monotonic()
    with pytest.raises(redis.RedisError):
        unreachable.nudge()
    assert time.monotonic() - started < 2  # no retries: a request is not held up
    listener = unreachable.listen()
    started = time.monotonic()
    assert listener.wait(0.2) is False
    assert 0.15 < time.monotonic() - started < 2

"""Nudges for the relay over a real Redis: heard at once, not lost while the relay is busy, taken together.

No test here times anything: each shows which way the code went (woken by a nudge or by its timeout,
how many connections a failing nudge made), and long timeouts only bound a hang.
"""

import logging
import os
import socket
import threading
import uuid

import pytest

from eventstore.nudges import RedisRelayNudges
from tests.servers.processes import unavailable

REDIS_URL = os.environ.get("TECHBANK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HANG_SECONDS = 30  # a wait this long only ends by its timeout if the nudge was never heard


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


def test_a_nudge_wakes_the_waiting_relay(nudges):
    listener = subscribed(nudges)
    try:
        nudges.nudge()
        assert listener.wait(HANG_SECONDS) is True  # True: a nudge ended the wait, not its timeout
    finally:
        listener.close()


def test_nudges_sent_while_the_relay_was_busy_wake_it_once_and_then_it_waits(nudges):
    listener = subscribed(nudges)
    try:
        for _ in range(5):  # while it relays, not waiting
            nudges.nudge()
        assert listener.wait(HANG_SECONDS) is True
        assert listener.wait(0.1) is False  # False: its timeout ended the wait; the five were taken as one
        nudges.nudge()
        assert listener.wait(HANG_SECONDS) is True  # and it still hears the next one
    finally:
        listener.close()


class RefusingServer:
    """A TCP server on loopback that counts connections and closes each at once, as a broken Redis might."""

    def __init__(self):
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.1)  # so that the serving thread sees the stop below
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stopping.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self._stopping.set()
        self._thread.join(HANG_SECONDS)
        self._socket.close()


def test_with_redis_failing_a_nudge_fails_at_the_first_attempt_and_the_relay_falls_back_to_its_idle_round(caplog):
    import redis

    server = RefusingServer()
    try:
        failing = RedisRelayNudges(f"redis://127.0.0.1:{server.port}/0", "techbank:relay-nudge:nowhere")
        with pytest.raises(redis.RedisError):
            failing.nudge()
        assert server.connections == 1  # no retry: the request that nudged is not held up

        listener = failing.listen()
        with caplog.at_level(logging.WARNING, logger="eventstore.nudges"):
            assert listener.wait(0.2) is False
        assert "relay nudges unavailable" in caplog.text  # the failure path, which waits out its timeout
        listener.close()
    finally:
        server.close()

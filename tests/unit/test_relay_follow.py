"""The long-running relay (follow_outbox), with in-memory parts and a fake lock and wake-ups."""
import threading
import time
import uuid
from datetime import datetime, timezone

from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import follow_outbox
from eventstore.store import NewEvent
from eventstore.transports.base import TransportUnavailable
from eventstore.transports.memory import InMemoryTransport


def deposit() -> NewEvent:
    return NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(timezone.utc), {})


class FakeLock:
    """One holder at a time, like the Redis lock; `expire()` makes it lapse as a frozen holder's would."""

    timeout = 0.3

    def __init__(self, shared=None):
        self.shared = shared if shared is not None else {"holder": None}

    def acquire(self, blocking=True):
        if self.shared["holder"] is None:
            self.shared["holder"] = self
            return True
        return False

    def reacquire(self):
        if self.shared["holder"] is not self:
            raise RuntimeError("lock not owned")
        return True

    def release(self):
        if self.shared["holder"] is not self:
            raise RuntimeError("lock not owned")
        self.shared["holder"] = None

    def expire(self):
        self.shared["holder"] = None


class FakeWakeUps:
    def __init__(self):
        self.nudged = threading.Event()

    def nudge(self):
        self.nudged.set()

    def wait(self, timeout):
        woken = self.nudged.wait(timeout)
        self.nudged.clear()
        return woken

    def close(self):
        pass


class Follower:
    """follow_outbox in a thread, stopped at the end of the test."""

    def __init__(self, store, transport, lock, wake_ups=None, idle_seconds=5.0):
        self.stop = threading.Event()
        self.wake_ups = wake_ups or FakeWakeUps()
        self.thread = threading.Thread(target=lambda: follow_outbox(
            event_store=store, transport=transport, lock=lock, wake_ups=self.wake_ups,
            stopping=self.stop.is_set, idle_seconds=idle_seconds, retry_seconds=0.05,
        ))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.wake_ups.nudge()
        self.thread.join(10)
        assert not self.thread.is_alive()


def wait_until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def topic_versions(transport):
    subscription = transport.subscribe(f"check-{uuid.uuid4().hex[:6]}")
    return [d.event.version for d in subscription.poll(timeout_ms=10)]


def test_a_nudge_has_the_following_relay_publish_at_once_not_at_its_idle_round():
    store, transport, lock = InMemoryEventStore(), InMemoryTransport(partitions=1), FakeLock()
    with Follower(store, transport, lock, idle_seconds=30) as follower:
        store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
        follower.wake_ups.nudge()
        wait_until(lambda: not store.unpublished())
    assert topic_versions(transport) == [1, 2]
    assert lock.shared["holder"] is None  # released when it stopped


def test_events_whose_nudge_was_lost_go_out_at_the_idle_round():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    with Follower(store, transport, FakeLock(), idle_seconds=0.05):
        store.append(str(uuid.uuid4()), 0, [deposit()])  # nobody nudges
        wait_until(lambda: not store.unpublished())


def test_a_second_relay_stands_by_until_the_first_one_stops_then_takes_over():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    shared = {"holder": None}
    first_lock, second_lock = FakeLock(shared), FakeLock(shared)
    first = Follower(store, transport, first_lock, idle_seconds=0.05).__enter__()
    wait_until(lambda: shared["holder"] is first_lock)
    with Follower(store, transport, second_lock, idle_seconds=0.05):
        time.sleep(0.2)
        assert shared["holder"] is first_lock
        first.__exit__(None, None, None)
        wait_until(lambda: shared["holder"] is second_lock)
        store.append(str(uuid.uuid4()), 0, [deposit()])
        wait_until(lambda: not store.unpublished())
    assert topic_versions(transport) == [1]


def test_a_relay_that_lost_its_lock_stops_relaying_until_it_has_it_again():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    shared = {"holder": None}
    lock, other = FakeLock(shared), FakeLock(shared)
    with Follower(store, transport, lock, idle_seconds=0.05):
        wait_until(lambda: shared["holder"] is lock)
        lock.expire()
        assert other.acquire()  # another relay took it: the first must not relay meanwhile
        time.sleep(0.4)  # more than the renewal interval: the first has noticed
        store.append(str(uuid.uuid4()), 0, [deposit()])
        time.sleep(0.2)
        assert len(store.unpublished()) == 1
        other.release()
        wait_until(lambda: not store.unpublished())
        assert shared["holder"] is lock


class DownTransport(InMemoryTransport):
    def __init__(self):
        super().__init__(partitions=1)
        self.down = True

    def send(self, events):
        if self.down:
            raise TransportUnavailable("broker down")
        super().send(events)


def test_with_the_broker_down_the_following_relay_keeps_the_events_and_sends_them_once_it_is_back():
    store, transport = InMemoryEventStore(), DownTransport()
    with Follower(store, transport, FakeLock(), idle_seconds=0.05) as follower:
        store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
        follower.wake_ups.nudge()
        time.sleep(0.2)
        assert len(store.unpublished()) == 2
        transport.down = False
        wait_until(lambda: not store.unpublished())
    assert topic_versions(transport) == [1, 2]

"""The long-running relay (follow_outbox), with in-memory parts and a fake lock and wake-ups.

No test sleeps to let something happen: each waits for the thing itself (a refused acquire,
a failed send), with a deadline that only bounds a hang.
"""

import threading
import time
import uuid
from datetime import UTC, datetime

from eventstore.backends.memory import InMemoryEventStore
from eventstore.relay import follow_outbox
from eventstore.store import NewEvent
from eventstore.transports.base import TransportUnavailable
from eventstore.transports.memory import InMemoryTransport
from tests.fake_relay_lock import FakeRelayLock


def deposit() -> NewEvent:
    return NewEvent(uuid.uuid4(), "FundsDeposited", {"amount": "1.00"}, datetime.now(UTC), {})


class FakeWakeUps:
    def __init__(self):
        self.nudged = threading.Event()
        self.waits = 0  # how often the relay began waiting for a nudge
        self.woken = 0  # how often a nudge ended its wait

    def nudge(self):
        self.nudged.set()

    def wait(self, timeout):
        self.waits += 1
        woken = self.nudged.wait(timeout)
        self.nudged.clear()
        self.woken += woken
        return woken

    def close(self):
        pass


class Follower:
    """follow_outbox in a thread, stopped at the end of the test."""

    def __init__(self, store, transport, lock, wake_ups=None, idle_seconds=5.0, batch_size=500):
        self.stop = threading.Event()
        self.wake_ups = wake_ups or FakeWakeUps()
        self.thread = threading.Thread(
            target=lambda: follow_outbox(
                event_store=store,
                transport=transport,
                lock=lock,
                wake_ups=self.wake_ups,
                stopping=self.stop.is_set,
                idle_seconds=idle_seconds,
                retry_seconds=0.05,
                batch_size=batch_size,
            )
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.wake_ups.nudge()
        self.thread.join(10)
        assert not self.thread.is_alive()


def wait_until(condition, seconds=30.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def topic_versions(transport):
    subscription = transport.subscribe(f"check-{uuid.uuid4().hex[:6]}")
    return [d.event.version for d in subscription.poll(timeout_ms=10)]


def test_a_nudge_has_the_following_relay_publish_at_once_not_at_its_idle_round():
    store, transport, lock = InMemoryEventStore(), InMemoryTransport(partitions=1), FakeRelayLock()
    with Follower(store, transport, lock, idle_seconds=3600) as follower:
        wait_until(lambda: follower.wake_ups.waits >= 1)  # its first round is done: it waits
        store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
        follower.wake_ups.nudge()
        wait_until(lambda: not store.unpublished())  # an idle round would come in an hour
        assert follower.wake_ups.woken == 1
    assert topic_versions(transport) == [1, 2]
    assert lock.shared["holder"] is None  # released when it stopped


def test_events_whose_nudge_was_lost_go_out_at_the_idle_round():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    with Follower(store, transport, FakeRelayLock(), idle_seconds=0.05) as follower:
        store.append(str(uuid.uuid4()), 0, [deposit()])  # nobody nudges
        wait_until(lambda: not store.unpublished())
        assert follower.wake_ups.woken == 0  # no nudge ended a wait: the idle round sent it
    assert topic_versions(transport) == [1]


def test_a_second_relay_stands_by_until_the_first_one_stops_then_takes_over():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    shared = {"holder": None}
    first_lock, second_lock = FakeRelayLock(shared), FakeRelayLock(shared)
    first = Follower(store, transport, first_lock, idle_seconds=0.05).__enter__()
    wait_until(lambda: first_lock.held)
    with Follower(store, transport, second_lock, idle_seconds=0.05):
        wait_until(lambda: second_lock.refused >= 2)  # it asked, twice, and stood by
        assert first_lock.held
        first.__exit__(None, None, None)
        wait_until(lambda: second_lock.held)
        store.append(str(uuid.uuid4()), 0, [deposit()])
        wait_until(lambda: not store.unpublished())
    assert topic_versions(transport) == [1]


def test_a_relay_whose_lock_lapsed_while_idle_relays_nothing_until_it_has_the_lock_again():
    store, transport = InMemoryEventStore(), InMemoryTransport(partitions=1)
    shared = {"holder": None}
    lock, other = FakeRelayLock(shared), FakeRelayLock(shared)
    with Follower(store, transport, lock, idle_seconds=0.05) as follower:
        wait_until(lambda: lock.held)
        lock.lapse()
        assert other.acquire()  # another relay took it: the first must not relay meanwhile
        wait_until(lambda: lock.confirmations_failed >= 1)  # its renewal found the lock gone
        store.append(str(uuid.uuid4()), 0, [deposit()])
        follower.wake_ups.nudge()
        refused_before = lock.refused
        wait_until(lambda: lock.refused >= refused_before + 2)  # standing by, twice, with the event there
        assert len(store.unpublished()) == 1
        other.release()
        wait_until(lambda: not store.unpublished())
        assert lock.held
    assert topic_versions(transport) == [1]


class LockTakenAfterSends(InMemoryTransport):
    """A topic whose relay loses its lock to another relay right after its `sends`-th batch is acknowledged."""

    def __init__(self, lock: FakeRelayLock, other: FakeRelayLock, sends: int):
        super().__init__(partitions=1)
        self.lock, self.other, self.sends_left = lock, other, sends

    def send(self, events):
        super().send(events)
        self.sends_left -= 1
        if self.sends_left == 0:
            self.lock.lapse()
            assert self.other.acquire()


def test_a_relay_that_loses_its_lock_mid_drain_stops_before_its_next_batch_and_the_new_holder_sends_the_rest():
    store = InMemoryEventStore()
    shared = {"holder": None}
    lock, other = FakeRelayLock(shared), FakeRelayLock(shared)
    transport = LockTakenAfterSends(lock, other, sends=2)
    account = str(uuid.uuid4())
    store.append(account, 0, [deposit() for _ in range(10)])
    follower = Follower(store, transport, lock, idle_seconds=0.05, batch_size=2).__enter__()
    try:
        wait_until(lambda: lock.confirmations_failed >= 1)
        wait_until(lambda: lock.refused >= 1)  # it let go, and stands by
        assert [e.version for e in store.unpublished()] == [5, 6, 7, 8, 9, 10]
        assert topic_versions(transport) == [1, 2, 3, 4]
    finally:
        follower.__exit__(None, None, None)


class DownTransport(InMemoryTransport):
    def __init__(self):
        super().__init__(partitions=1)
        self.down = True
        self.refused_sends = 0

    def send(self, events):
        if self.down:
            self.refused_sends += 1
            raise TransportUnavailable("broker down")
        super().send(events)


def test_with_the_broker_down_the_following_relay_keeps_the_events_and_sends_them_once_it_is_back():
    store, transport = InMemoryEventStore(), DownTransport()
    with Follower(store, transport, FakeRelayLock(), idle_seconds=0.05) as follower:
        store.append(str(uuid.uuid4()), 0, [deposit(), deposit()])
        follower.wake_ups.nudge()
        wait_until(lambda: transport.refused_sends >= 2)  # tried, failed, tried again
        assert len(store.unpublished()) == 2
        transport.down = False
        wait_until(lambda: not store.unpublished())
    assert topic_versions(transport) == [1, 2]

"""The event-bus contract: every transport subclasses this class once, unchanged.

A subclass provides two fixtures:
- `transport`: a transport on a fresh, empty topic of 3 partitions;
- `transport_raw_send`: a function (key: bytes, value: bytes) that puts a message
  on that topic as it is, not necessarily an envelope (only tests need that).

Waiting is bounded: every loop that waits for messages gives up after
WAIT_SECONDS, so a broken transport fails the test instead of hanging it.
Every subscription is closed at the end of its test, whether or not the test
closed it already: closing twice must be harmless.
"""

import json
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest

from eventstore.store import StoredEvent
from eventstore.transports.base import Delivery, EventSubscription, TransportUnavailable

WAIT_SECONDS = 20


def account() -> str:
    return str(uuid.uuid4())


def group(purpose: str) -> str:
    """A group id no other test uses, so no member of another test can join it."""
    return f"techbank-{purpose}-{uuid.uuid4().hex[:8]}"


def make_event(account_id: str, version: int = 1, event_type: str = "FundsDeposited", **data) -> StoredEvent:
    return StoredEvent(
        event_id=uuid.uuid4(),
        stream_id=account_id,
        version=version,
        event_type=event_type,
        data=data or {"amount": "10.00"},
        occurred_at=datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC),
        metadata={"issued_by": "teller", "correlation_id": str(uuid.uuid4())},
    )


def receive(subscription: EventSubscription, count: int, *, quiet_seconds: float = 0.0) -> list[Delivery]:
    """Poll until `count` messages arrived (or WAIT_SECONDS passed), then `quiet_seconds` more."""
    received: list[Delivery] = []
    deadline = time.monotonic() + WAIT_SECONDS
    while len(received) < count and time.monotonic() < deadline:
        received += subscription.poll(timeout_ms=500)
    quiet_until = time.monotonic() + quiet_seconds
    while time.monotonic() < quiet_until:
        received += subscription.poll(timeout_ms=max(1, int((quiet_until - time.monotonic()) * 1000)))
    return received


def event_ids(deliveries: list[Delivery]) -> list[uuid.UUID]:
    return [d.event.event_id for d in deliveries if d.event is not None]


def ids_of(events: list[StoredEvent]) -> list[uuid.UUID]:
    return [e.event_id for e in events]


class BackgroundMember(threading.Thread):
    """A member of a group as a consumer runs it: poll, then commit, in a loop of its own."""

    def __init__(self, subscription: EventSubscription):
        super().__init__(daemon=True)
        self.subscription = subscription
        self.failed_commits = 0
        self.error: BaseException | None = None
        self._deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def run(self):
        try:
            while not self._stopping.is_set():
                batch = self.subscription.poll(timeout_ms=200)
                if not batch:
                    continue
                with self._lock:
                    self._deliveries += batch
                try:
                    self.subscription.commit()
                except TransportUnavailable:  # e.g. during a rebalance: those messages come again
                    self.failed_commits += 1
        except BaseException as error:  # noqa: BLE001 - raised again by the test's thread
            self.error = error

    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def stop(self):
        self._stopping.set()
        self.join(WAIT_SECONDS)
        assert not self.is_alive(), "a member's poll did not return"
        assert self.error is None, f"a member failed: {self.error!r}"


class EventTransportContract:
    # After the expected messages arrived: how long to keep listening for ones that should not
    # come (duplicates). A transport where nothing can arrive late may shorten it.
    quiet_seconds = 1.0

    @pytest.fixture
    def transport(self):
        pytest.fail("a transport's test class provides `transport`: a fresh transport on a fresh topic")

    @pytest.fixture
    def transport_raw_send(self, transport):
        pytest.fail("a transport's test class provides `transport_raw_send(key, value)`, writing raw bytes")

    @pytest.fixture
    def subscribe(self, transport):
        """transport.subscribe, with every subscription closed at the end of the test."""
        opened: list[EventSubscription] = []

        def subscribe(group_id: str, *, member_id: str | None = None) -> EventSubscription:
            opened.append(transport.subscribe(group_id, member_id=member_id))
            return opened[-1]

        yield subscribe
        for subscription in reversed(opened):
            subscription.close()

    def test_sent_events_arrive_once_each_with_their_envelope_fields_intact(self, transport, subscribe):
        paris = timezone(timedelta(hours=1))
        opened = StoredEvent(
            event_id=uuid.uuid4(),
            stream_id=account(),
            version=1,
            event_type="AccountOpened",
            data={"holder": "Zoë Ñandú", "opening_balance": "1234.50"},
            occurred_at=datetime(2026, 11, 26, 10, 30, 15, 654321, tzinfo=paris),
            metadata={"issued_by": "teller-7", "correlation_id": str(uuid.uuid4())},
        )
        deposited = make_event(opened.stream_id, 2, amount="0.10")
        withdrawn = make_event(account(), 7, "FundsWithdrawn", amount="99999999.99")
        transport.send([opened, deposited, withdrawn])

        received = receive(subscribe(group("envelope")), 3, quiet_seconds=self.quiet_seconds)

        assert sorted(event_ids(received)) == sorted(ids_of([opened, deposited, withdrawn]))
        by_id = {d.event.event_id: d for d in received}
        assert all(d.problem is None for d in received)
        for sent in (opened, deposited, withdrawn):
            assert by_id[sent.event_id].event == sent
        arrived = by_id[opened.event_id].event
        assert arrived.occurred_at.microsecond == 654321
        assert arrived.occurred_at.utcoffset() == timedelta(hours=1)
        assert arrived.data == {"holder": "Zoë Ñandú", "opening_balance": "1234.50"}
        assert arrived.metadata == opened.metadata
        assert json.loads(by_id[withdrawn.event_id].raw)["data"] == {"amount": "99999999.99"}

    def test_one_accounts_events_arrive_in_version_order_when_interleaved_with_other_accounts(
        self, transport, subscribe
    ):
        accounts = [account() for _ in range(5)]
        events = [make_event(accounts[i % 5], version=i // 5 + 1, amount=f"{i}.00") for i in range(50)]
        transport.send(events)

        received = receive(subscribe(group("order")), 50, quiet_seconds=self.quiet_seconds)

        assert sorted(event_ids(received)) == sorted(ids_of(events))
        for account_id in accounts:
            versions = [d.event.version for d in received if d.event.stream_id == account_id]
            assert versions == list(range(1, 11))
        for partition in {d.partition for d in received}:
            offsets = [d.offset for d in received if d.partition == partition]
            assert offsets == sorted(offsets)

    def test_the_message_key_is_the_account_id_so_an_account_stays_on_one_partition(self, transport, subscribe):
        accounts = [account() for _ in range(4)]
        transport.send([make_event(a, v) for v in (1, 2, 3) for a in accounts])

        received = receive(subscribe(group("key")), 12)

        assert len(received) == 12
        assert all(d.key == d.event.stream_id for d in received)
        for account_id in accounts:
            assert len({d.partition for d in received if d.key == account_id}) == 1

    def test_two_members_of_one_group_share_the_partitions_and_together_see_every_event_once(
        self, transport, subscribe
    ):
        group_id = group("shared")
        members = [BackgroundMember(subscribe(group_id)), BackgroundMember(subscribe(group_id))]
        for member in members:
            member.start()
        try:
            # Until both members have received something, the group may still be rebalancing,
            # and a rebalance may deliver an uncommitted message twice: warm up first.
            deadline = time.monotonic() + WAIT_SECONDS
            while not all(member.deliveries() for member in members):
                assert time.monotonic() < deadline, "the two members never both received messages"
                transport.send([make_event(account()) for _ in range(6)])
                time.sleep(0.2)

            events = [make_event(account()) for _ in range(40)]  # 40 accounts: every partition gets some
            transport.send(events)
            expected = set(ids_of(events))
            deadline = time.monotonic() + WAIT_SECONDS
            while time.monotonic() < deadline:
                if expected <= {i for member in members for i in event_ids(member.deliveries())}:
                    break
                time.sleep(0.1)
            time.sleep(self.quiet_seconds)
        finally:
            for member in members:
                member.stop()

        seen = [
            [d for d in member.deliveries() if d.event is not None and d.event.event_id in expected]
            for member in members
        ]
        assert Counter(event_ids(seen[0] + seen[1])) == Counter(expected), (
            f"each event exactly once (failed commits: {[m.failed_commits for m in members]})"
        )
        assert seen[0] and seen[1], "both members got a share"
        assert not {d.partition for d in seen[0]} & {d.partition for d in seen[1]}, "no partition read by both"

    def test_a_member_that_closes_without_committing_leaves_its_messages_to_the_next_member(self, transport, subscribe):
        group_id = group("redelivery")
        events = [make_event(a, v) for a in (account(), account()) for v in range(1, 6)]
        transport.send(events)
        first = subscribe(group_id)
        assert sorted(event_ids(receive(first, 10))) == sorted(ids_of(events))
        first.close()

        again = receive(subscribe(group_id), 10, quiet_seconds=self.quiet_seconds)

        assert sorted(event_ids(again)) == sorted(ids_of(events))

    def test_committed_messages_are_not_delivered_again_to_a_new_member(self, transport, subscribe):
        group_id = group("committed")
        accounts = [account(), account(), account()]
        done = [make_event(a, 1) for a in accounts] + [make_event(a, 2) for a in accounts]
        pending = [make_event(a, 3) for a in accounts]
        first = subscribe(group_id)
        transport.send(done)
        assert len(receive(first, 6)) == 6
        first.commit()
        transport.send(pending)
        assert sorted(event_ids(receive(first, 3))) == sorted(ids_of(pending))
        first.close()  # without committing `pending`

        second = receive(subscribe(group_id), 3, quiet_seconds=self.quiet_seconds)

        assert sorted(event_ids(second)) == sorted(ids_of(pending))

    def test_after_a_rewind_the_member_gets_again_what_it_polled_since_its_last_commit(self, transport, subscribe):
        # A batch that could not be applied (the read database down): the same member reads it again.
        account_id = account()
        done, failed = [make_event(account_id, 1)], [make_event(account_id, 2), make_event(account_id, 3)]
        member = subscribe(group("rewind"), member_id="projector-1")
        transport.send(done)
        assert event_ids(receive(member, 1)) == ids_of(done)
        member.commit()
        transport.send(failed)
        assert event_ids(receive(member, 2)) == ids_of(failed)

        member.rewind()

        assert event_ids(receive(member, 2, quiet_seconds=self.quiet_seconds)) == ids_of(failed)

    def test_a_rewind_before_any_commit_goes_back_to_the_beginning(self, transport, subscribe):
        events = [make_event(account(), 1) for _ in range(4)]
        transport.send(events)
        member = subscribe(group("rewind-first"))
        assert sorted(event_ids(receive(member, 4))) == sorted(ids_of(events))

        member.rewind()

        assert sorted(event_ids(receive(member, 4, quiet_seconds=self.quiet_seconds))) == sorted(ids_of(events))

    def test_a_member_that_comes_back_under_its_member_id_resumes_from_the_last_commit(self, transport, subscribe):
        # A crash: the first instance never closes. Its replacement, with the same member_id
        # (static membership), takes its place at once, without waiting for it to time out,
        # and the old instance, should it still be running, can no longer commit.
        group_id = group("static")
        account_id = account()
        transport.send([make_event(account_id, 1), make_event(account_id, 2)])
        crashed = subscribe(group_id, member_id="relay-1")
        assert len(receive(crashed, 2)) == 2
        crashed.commit()
        later = [make_event(account_id, 3), make_event(account_id, 4)]
        transport.send(later)
        assert len(receive(crashed, 2)) == 2

        replacement = receive(subscribe(group_id, member_id="relay-1"), 2, quiet_seconds=self.quiet_seconds)

        assert event_ids(replacement) == ids_of(later)
        with pytest.raises(TransportUnavailable):
            crashed.commit()

    def test_a_different_group_sees_everything_independently(self, transport, subscribe):
        events = [make_event(account(), 1) for _ in range(8)]
        transport.send(events)
        projections = subscribe(group("projections"))
        assert len(receive(projections, 8)) == 8
        projections.commit()

        notifications = receive(subscribe(group("notifications")), 8, quiet_seconds=self.quiet_seconds)

        assert sorted(event_ids(notifications)) == sorted(ids_of(events))

    def test_an_undecodable_message_arrives_with_its_problem_and_the_messages_after_it_still_arrive(
        self, transport, transport_raw_send, subscribe
    ):
        account_id = account()
        transport.send([make_event(account_id, 1)])
        transport_raw_send(account_id.encode(), b"{not json")
        transport_raw_send(account_id.encode(), json.dumps({"schema_version": 99}).encode())
        after = [make_event(account_id, 2), make_event(account_id, 3)]
        transport.send(after)
        group_id = group("poison")
        member = subscribe(group_id)

        received = receive(member, 5, quiet_seconds=self.quiet_seconds)

        assert [d.event.version if d.event else None for d in received] == [1, None, None, 2, 3]
        bad = received[1:3]
        assert [d.raw for d in bad] == [b"{not json", b'{"schema_version": 99}']
        assert all(d.problem and d.key == account_id for d in bad)
        assert "schema_version" in bad[1].problem
        assert all(d.problem is None for d in received if d.event)
        member.commit()
        member.close()

        # The commit went past the bad messages: the group's next member starts after them.
        later = make_event(account_id, 4)
        transport.send([later])
        successor = receive(subscribe(group_id), 1, quiet_seconds=self.quiet_seconds)
        assert [d.raw for d in successor if d.event is None] == []
        assert event_ids(successor) == [later.event_id]

"""The embedded stack's in-process topic keeps to the transport contract, drops what every group committed
beyond its retention, and refuses a send beyond its capacity (the events then wait in the outbox)."""

import threading
from dataclasses import replace

import pytest

from eventstore.transports import envelope
from eventstore.transports.base import TransportUnavailable
from eventstore.transports.in_process import InProcessTransport
from tests.contract.event_transport_contract import EventTransportContract, account, event_ids, group, make_event


class TestInProcessTransport(EventTransportContract):
    quiet_seconds = 0.1  # nothing arrives late: a message is in the partition once send() returns

    @pytest.fixture
    def transport(self):
        return InProcessTransport(partitions=3)

    @pytest.fixture
    def transport_raw_send(self, transport):
        return transport.send_raw


def test_a_message_is_dropped_once_every_group_has_committed_it():
    transport = InProcessTransport(retention=0)
    projections, audit = transport.subscribe(group("projections")), transport.subscribe(group("audit"))
    transport.send([make_event(account()) for _ in range(3)])

    assert len(projections.poll(timeout_ms=0)) == 3 and transport.held() == 3  # received, not yet committed
    projections.commit()
    assert transport.held() == 3  # the other group still needs them
    assert len(audit.poll(timeout_ms=0)) == 3
    audit.commit()
    assert transport.held() == 0


def test_committed_messages_beyond_the_retention_are_dropped_and_a_group_that_joins_later_reads_the_rest():
    transport = InProcessTransport(retention=2)
    member = transport.subscribe("projections")
    events = [make_event(account()) for _ in range(5)]
    transport.send(events)
    assert transport.held() == 5  # nothing committed: nothing dropped

    member.poll(timeout_ms=0)
    member.commit()
    assert transport.held() == 2
    assert event_ids(transport.subscribe("newcomer").poll(timeout_ms=0)) == [e.event_id for e in events[3:]]


def test_after_dropping_the_offsets_go_on_and_a_rewind_or_a_new_group_starts_at_what_is_kept():
    transport = InProcessTransport(retention=0)
    member = transport.subscribe("projections")
    transport.send([make_event(account())])
    member.poll(timeout_ms=0)
    member.commit()
    kept = [make_event(account()), make_event(account())]
    transport.send(kept)

    assert [d.offset for d in member.poll(timeout_ms=0)] == [1, 2]
    member.rewind()
    assert event_ids(member.poll(timeout_ms=0)) == [e.event_id for e in kept]
    newcomer = transport.subscribe("newcomer")
    assert event_ids(newcomer.poll(timeout_ms=0)) == [e.event_id for e in kept]


def test_a_send_beyond_the_capacity_is_refused_whole_until_the_consumer_commits():
    transport = InProcessTransport(capacity=3, retention=1)
    member = transport.subscribe("projections")
    transport.send([make_event(account()), make_event(account())])

    with pytest.raises(TransportUnavailable, match="full"):
        transport.send([make_event(account()), make_event(account())])
    assert transport.uncommitted() == 2  # nothing of the refused send was kept

    member.poll(timeout_ms=0)
    member.commit()
    transport.send([make_event(account()), make_event(account())])  # what is retained does not count
    assert len(member.poll(timeout_ms=0)) == 2


def test_senders_in_many_threads_lose_nothing_and_duplicate_nothing():
    transport = InProcessTransport(partitions=3, retention=0)
    member = transport.subscribe("projections")
    sent = [[make_event(account()) for _ in range(50)] for _ in range(8)]
    threads = [threading.Thread(target=transport.send, args=[events]) for events in sent]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    received = member.poll(max_records=1_000, timeout_ms=0)
    member.commit()
    assert sorted(event_ids(received)) == sorted(e.event_id for events in sent for e in events)
    assert transport.held() == 0


def test_a_capacity_below_one_message_or_a_negative_retention_is_refused():
    for sizes in ({"capacity": 0}, {"retention": -1}):
        with pytest.raises(ValueError, match="at least one"):
            InProcessTransport(**sizes)


def test_a_delivery_carries_the_event_sent_beside_its_envelope_which_decodes_to_the_same_event():
    transport = InProcessTransport()
    member = transport.subscribe("projections")
    sent = replace(make_event(account()), position=42)
    transport.send([sent])

    [delivery] = member.poll(timeout_ms=0)

    assert delivery.event is sent  # not decoded again: it was a StoredEvent already
    assert envelope.decode(delivery.raw) == replace(sent, position=None)  # the bytes a dead letter keeps

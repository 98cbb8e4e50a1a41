import threading

import pytest

from eventstore.transports.base import TransportUnavailable
from eventstore.transports.memory import InMemoryTransport, SubscriptionClosed
from tests.contract.event_transport_contract import EventTransportContract, account, group, make_event


class TestInMemoryTransport(EventTransportContract):
    quiet_seconds = 0.1  # nothing arrives late: a message is in the partition once send() returns

    @pytest.fixture
    def transport(self):
        return InMemoryTransport(partitions=3)

    @pytest.fixture
    def transport_raw_send(self, transport):
        return transport.send_raw


def test_a_replaced_static_member_can_no_longer_poll():
    transport = InMemoryTransport()
    old = transport.subscribe("relay", member_id="relay-1")
    transport.subscribe("relay", member_id="relay-1")
    with pytest.raises(TransportUnavailable, match="fenced"):
        old.poll(timeout_ms=0)


def test_a_closed_subscription_cannot_be_used_but_closing_it_again_is_harmless():
    member = InMemoryTransport().subscribe("relay")
    member.close()
    member.close()
    with pytest.raises(SubscriptionClosed):
        member.poll(timeout_ms=0)


def test_a_poll_waits_for_a_message_sent_while_it_waits():
    transport = InMemoryTransport()
    member = transport.subscribe(group("wait"))
    event = make_event(account())
    threading.Timer(0.1, transport.send, args=[[event]]).start()
    [delivery] = member.poll(timeout_ms=5000)
    assert delivery.event == event

"""Session: in-flight window, bounded queue with a counted overflow policy, packet ids, resume."""

from __future__ import annotations

from instamsg.broker.message import Message
from instamsg.broker.session import AWAITING_COMPLETE, Session
from instamsg.broker.settings import OverflowPolicy


class FakeChannel:
    def __init__(self) -> None:
        self.writable = True
        self.sent: list[tuple[str, int, int | None, bool]] = []
        self.pubrels: list[int] = []
        self.refuse = False

    def send_publish(
        self,
        message: Message,
        qos: int,
        retain: bool,
        packet_id: int | None,
        dup: bool,
        subscription_identifiers: tuple[int, ...] | None,
    ) -> bool:
        if self.refuse:
            return False
        self.sent.append((message.topic, qos, packet_id, dup))
        return True

    def send_pubrel(self, packet_id: int) -> None:
        self.pubrels.append(packet_id)


def message(topic: str = "t", qos: int = 1) -> Message:
    return Message("tenant", topic, b"x", qos, False, None)


def test_window_then_queue_then_refill_in_order() -> None:
    session = Session("u", "tenant", window=2, max_queued=10)
    channel = FakeChannel()
    session.resume(channel, 2)  # type: ignore[arg-type]
    for index in range(4):
        assert session.deliver(message(f"m{index}"), 1, False)
    assert [entry[0] for entry in channel.sent] == ["m0", "m1"]
    assert len(session.queue) == 2
    assert session.acknowledge(1) is not None
    assert [entry[0] for entry in channel.sent] == ["m0", "m1", "m2"]
    assert session.acknowledge(99) is None


def test_qos_capped_by_session_max_qos() -> None:
    session = Session("u", "tenant")
    session.max_qos = 1
    channel = FakeChannel()
    session.resume(channel, 10)  # type: ignore[arg-type]
    session.deliver(message(qos=2), 2, False)
    assert channel.sent[0][1] == 1


def test_offline_qos0_dropped_and_counted_qos1_queued() -> None:
    session = Session("u", "tenant")
    assert not session.deliver(message(qos=0), 0, False)
    assert session.dropped_offline_qos0 == 1
    assert session.deliver(message(qos=1), 1, False)
    assert len(session.queue) == 1


def test_overflow_drop_new_and_drop_oldest_are_counted() -> None:
    session = Session("u", "tenant", max_queued=2)
    for index in range(3):
        session.deliver(message(f"m{index}"), 1, False)
    assert [item.message.topic for item in session.queue] == ["m0", "m1"]
    assert session.dropped_overflow == 1
    session = Session("u", "tenant", max_queued=2, overflow_policy=OverflowPolicy.DROP_OLDEST)
    for index in range(3):
        session.deliver(message(f"m{index}"), 1, False)
    assert [item.message.topic for item in session.queue] == ["m1", "m2"]
    assert session.dropped_overflow == 1


def test_unwritable_connection_parks_messages_in_the_bounded_queue() -> None:
    session = Session("u", "tenant", max_queued=2)
    channel = FakeChannel()
    session.resume(channel, 10)  # type: ignore[arg-type]
    channel.writable = False
    assert session.deliver(message("a", qos=0), 0, False)
    assert session.deliver(message("b", qos=1), 1, False)
    assert not session.deliver(message("c", qos=0), 0, False)
    assert session.dropped_overflow == 1 and len(session.queue) == 2 and not channel.sent
    channel.writable = True
    session.pump()
    assert [(topic, qos) for topic, qos, _, _ in channel.sent] == [("a", 0), ("b", 1)]


def test_packet_ids_skip_in_flight_and_wrap() -> None:
    session = Session("u", "tenant", window=100)
    channel = FakeChannel()
    session.resume(channel, 100)  # type: ignore[arg-type]
    session.next_packet_id = 65535
    session.deliver(message(), 1, False)
    session.deliver(message(), 1, False)
    assert [entry[2] for entry in channel.sent] == [65535, 1]
    session.next_packet_id = 1
    session.deliver(message(), 1, False)
    assert channel.sent[-1][2] == 2


def test_resume_resends_with_dup_and_pubrel() -> None:  # MQTT-4.4.0-1
    session = Session("u", "tenant", window=10)
    first = FakeChannel()
    session.resume(first, 10)  # type: ignore[arg-type]
    session.deliver(message("q1", 1), 1, False)
    session.deliver(message("q2", 2), 2, False)
    assert session.received(2)
    assert session.inflight[2].state == AWAITING_COMPLETE
    session.detach()
    session.deliver(message("queued", 1), 1, False)
    second = FakeChannel()
    session.resume(second, 10)  # type: ignore[arg-type]
    assert second.sent[0] == ("q1", 1, 1, True)
    assert second.pubrels == [2]
    assert second.sent[1] == ("queued", 1, 3, False)


def test_expired_messages_are_not_delivered() -> None:  # MQTT-3.3.2-5
    session = Session("u", "tenant")
    expired = message()
    expired.expires_at = 0.0
    session.deliver(expired, 1, False)
    channel = FakeChannel()
    session.resume(channel, 10)  # type: ignore[arg-type]
    assert channel.sent == [] and session.dropped_expired == 1


def test_refused_by_connection_leaves_no_inflight() -> None:
    session = Session("u", "tenant")
    channel = FakeChannel()
    channel.refuse = True
    session.resume(channel, 10)  # type: ignore[arg-type]
    session.deliver(message(), 1, False)
    assert session.inflight == {}

"""SessionStore wiring: sessions survive a node restart; acks wait for durable offline queueing (C18)."""

from __future__ import annotations

from collections.abc import Callable

from instamsg.broker import BrokerNode, BrokerSettings, Directory
from instamsg.broker.ports import MemorySessionStore, StoredMessage, StoredSession
from tests.broker.conftest import make_directory
from tests.broker.support import ALICE, CAROL, RawClient, publish_bytes, subscribe_bytes


class SlowStore(MemorySessionStore):
    """Commits only when the test says so, like a group-committing database between flushes."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Callable[[], None]] = []

    def append(
        self, client_uuid: str, message: StoredMessage, on_committed: Callable[[], None] | None = None
    ) -> None:
        super().append(client_uuid, message, None)
        if on_committed is not None:
            self.waiting.append(on_committed)

    def commit(self) -> None:
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()


def settings() -> BrokerSettings:
    return BrokerSettings(mqtt_port=0, timer_resolution=0.1)


async def open_client(node: BrokerNode) -> RawClient:
    return await RawClient.open("127.0.0.1", node.ports["mqtt"] or 0)


async def test_persistent_session_survives_restart() -> None:
    store = MemorySessionStore()
    directory = make_directory()
    first = BrokerNode(settings(), directory, session_store=store)
    await first.start()
    try:
        carol = await open_client(first)
        assert await carol.connect(CAROL, clean=False) == b"\x20\x02\x00\x00"
        carol.send(subscribe_bytes(1, ("p/+", 1), ("$share/g/s", 2)))
        await carol.expect(b"\x90\x04\x00\x01\x01\x02")
        first.deliver("tenant-a", None, "p/1", b"in-flight", 1)
        await carol.expect(publish_bytes("p/1", b"in-flight", qos=1, packet_id=1))  # never acknowledged
        carol.send(b"\xe0\x00")
        await carol.expect_closed()
        assert first.deliver("tenant-a", None, "p/2", b"queued", 1) == 1
        [saved] = store.load_all()
        assert isinstance(saved, StoredSession) and [m.payload for m in saved.messages] == [
            b"in-flight",
            b"queued",
        ]
    finally:
        await first.stop()
    second = BrokerNode(settings(), directory, session_store=store)
    await second.start()
    try:
        assert second.statistics().sessions == 1
        assert second.deliver("tenant-a", None, "s", b"shared", 1) == 1  # shared subscription restored
        carol = await open_client(second)
        assert await carol.connect(CAROL, clean=False) == b"\x20\x02\x01\x00"
        await carol.expect(publish_bytes("p/1", b"in-flight", qos=1, packet_id=1, dup=True))
        await carol.expect(publish_bytes("p/2", b"queued", qos=1, packet_id=2))
        await carol.expect(publish_bytes("s", b"shared", qos=1, packet_id=3))
        assert store.load_all() == []  # online: the live session is the truth
        carol.close()
    finally:
        await second.stop()


async def test_ack_waits_for_commit_and_keeps_publish_order(directory: Directory) -> None:
    store = SlowStore()
    node = BrokerNode(settings(), directory, session_store=store)
    await node.start()
    try:
        carol = await open_client(node)
        assert await carol.connect(CAROL, clean=False) == b"\x20\x02\x00\x00"
        carol.send(subscribe_bytes(1, ("offline", 1)))
        await carol.expect(b"\x90\x03\x00\x01\x01")
        carol.send(b"\xe0\x00")
        await carol.expect_closed()
        alice = await open_client(node)
        assert await alice.connect(ALICE) == b"\x20\x02\x00\x00"
        alice.send(publish_bytes("offline", b"1", qos=1, packet_id=1))
        alice.send(publish_bytes("elsewhere", b"2", qos=1, packet_id=2))
        alice.send(b"\xc0\x00")
        await alice.expect(b"\xd0\x00")  # PINGRESP is not an acknowledgement: it is not held back
        await alice.expect_silence(0.2)
        store.commit()
        await alice.expect(b"\x40\x02\x00\x01\x40\x02\x00\x02")
        alice.close()
    finally:
        await node.stop()


async def test_expired_or_unknown_sessions_are_not_restored() -> None:
    store = MemorySessionStore()
    store.save(StoredSession(CAROL.uuid, "tenant-a", expiry_interval=10, disconnected_at=0.0))
    store.save(StoredSession("0a1b2c3d-0000-4000-8000-000000000999", "tenant-a", expiry_interval=10**12))
    store.save(StoredSession(ALICE.uuid, "tenant-b", expiry_interval=10**12))  # tenant changed
    node = BrokerNode(settings(), make_directory(), session_store=store)
    await node.start()
    try:
        assert node.statistics().sessions == 0 and store.load_all() == []
    finally:
        await node.stop()


class CountingStore(MemorySessionStore):
    """Counts the calls a durable store would turn into writes."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def save(self, session: StoredSession, on_committed: Callable[[], None] | None = None) -> None:
        self.calls.append("save")
        super().save(session, on_committed)

    def delete(self, client_uuid: str) -> None:
        self.calls.append("delete")
        super().delete(client_uuid)


async def test_clean_sessions_never_reach_the_store() -> None:
    store = CountingStore()
    node = BrokerNode(settings(), make_directory(), session_store=store)
    await node.start()
    try:
        for _ in range(3):
            alice = await open_client(node)
            assert await alice.connect(ALICE) == b"\x20\x02\x00\x00"
            alice.send(b"\xe0\x00")
            await alice.expect_closed()
        assert store.calls == []  # a clean connect/disconnect cycle costs the store nothing
        carol = await open_client(node)
        assert await carol.connect(CAROL, clean=False) == b"\x20\x02\x00\x00"
        carol.send(b"\xe0\x00")
        await carol.expect_closed()
        assert store.calls == ["save"]
        carol = await open_client(node)
        assert await carol.connect(CAROL, clean=True) == b"\x20\x02\x00\x00"
        assert store.calls == ["save", "delete"] and store.load_all() == []
        carol.close()
    finally:
        await node.stop()

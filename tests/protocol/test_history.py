"""What the history recorder records from a real broker (spec §6.5, §12.2, C18)."""

from __future__ import annotations

import time

from instamsg.broker import ClientRecord, Directory, TenantRecord
from instamsg.protocol.history import RecordedRow, install_history
from tests.broker.support import Identity, RawClient, publish_bytes
from tests.support.devices import port_of, protocol_node

SENDER = Identity("cbf7d550-7204-11e4-a2ad-543530e3bc65", "1" * 32)
PEER = Identity("5d3f2c1e-9a8b-4c7d-8e6f-102030405060", "2" * 32)


def _directory() -> Directory:
    directory = Directory()
    directory.load(
        [TenantRecord("tenant-1", active=True, max_messages=100_000, messages_used=0)],
        [
            ClientRecord(
                SENDER.uuid,
                "tenant-1",
                SENDER.token,
                ("data/#", PEER.uuid, "instamsg/webhook", f"instamsg/clients/{SENDER.uuid}/logs"),
                ("data/#",),
            ),
            ClientRecord(PEER.uuid, "tenant-1", PEER.token, (), ()),
        ],
    )
    return directory


async def test_pub_p2p_and_webhook_are_recorded_and_nothing_else() -> None:
    recorded: list[RecordedRow] = []
    started = time.time()
    async with protocol_node(
        _directory(), install=(lambda devices: install_history(devices, recorded.append),)
    ) as (
        node,
        _devices,
    ):
        client = await RawClient.open("127.0.0.1", port_of(node, "tcp"))
        try:
            await client.connect(SENDER)
            publishes = [
                ("data/a", b"one", 1),
                (PEER.uuid.upper(), b'{"message_id": "1", "reply_to": "x", "body": "hi"}', 1),
                ("instamsg/webhook", b'{"data": 1}', 1),
                (f"instamsg/clients/{SENDER.uuid}/logs", b"a log line", 1),  # a special topic: not history
                ("data/b", b"two", 0),
            ]
            for packet_id, (topic, payload, qos) in enumerate(publishes, start=1):
                client.send(publish_bytes(topic, payload, qos, packet_id if qos else None))
                if qos:
                    assert (await client.read_packet())[0] == 0x40  # PUBACK: accepted
            # Control-plane publishes (REST, wills) carry no channel and store their own rows.
            node.deliver("tenant-1", SENDER.uuid, "data/c", b"from rest", 1)
            # A QoS 0 publish has no acknowledgement: a PINGRESP after it proves it was handled.
            client.send(b"\xc0\x00")
            assert await client.read_packet() == b"\xd0\x00"
        finally:
            client.close()
    assert [row[:7] for row in recorded] == [
        ("tenant-1", SENDER.uuid, "pub", None, "data/a", b"one", 2),
        (
            "tenant-1",
            SENDER.uuid,
            "p2p",
            PEER.uuid,  # the addressee's canonical (lowercase) UUID
            PEER.uuid,
            b'{"message_id": "1", "reply_to": "x", "body": "hi"}',
            2,
        ),
        ("tenant-1", SENDER.uuid, "pub", None, "instamsg/webhook", b'{"data": 1}', 2),
        ("tenant-1", SENDER.uuid, "pub", None, "data/b", b"two", 1),
    ]
    assert all(started <= row[7] <= time.time() for row in recorded)

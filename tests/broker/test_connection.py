"""Connection: coalesced writes, flushed once per loop turn or as soon as a batch is full."""

from __future__ import annotations

import asyncio
from typing import Any

from instamsg.broker import BrokerNode, BrokerSettings
from instamsg.broker.connection import WRITE_BATCH_FRAMES, Connection
from tests.broker.conftest import make_directory


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[list[bytes]] = []

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def writelines(self, frames: list[bytes]) -> None:
        self.writes.append(list(frames))

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def test_writes_coalesce_per_turn_and_go_out_when_a_batch_is_full() -> None:
    node = BrokerNode(BrokerSettings(mqtt_port=None), make_directory())
    node._running = True  # accept the socket without binding listeners
    connection = Connection(node, "mqtt")
    transport = RecordingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    assert connection.peer == "127.0.0.1:50000"
    frames = [bytes((0x30, 2, 0, index % 256)) for index in range(WRITE_BATCH_FRAMES + 3)]
    for frame in frames:
        connection.write(frame)
    assert transport.writes == [frames[:WRITE_BATCH_FRAMES]]  # a full batch does not wait for the turn
    await asyncio.sleep(0)
    assert transport.writes == [frames[:WRITE_BATCH_FRAMES], frames[WRITE_BATCH_FRAMES:]]
    node.wheel.stop()

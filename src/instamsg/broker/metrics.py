"""Metering: messages and bytes in/out per client and per tenant, as plain ints on the hot path.

Each client and tenant owns one small list `[messages_in, bytes_in, messages_out, bytes_out]` that
channels and sessions hold a reference to and bump directly. `take_deltas` reads and zeroes them in
place, so held references stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MESSAGES_IN: Final = 0
BYTES_IN: Final = 1
MESSAGES_OUT: Final = 2
BYTES_OUT: Final = 3

# The meter of a connection that has had no traffic yet: compared by identity, never bumped.
NO_METER: Final[list[int]] = [0, 0, 0, 0]


@dataclass(frozen=True, slots=True)
class MeterDelta:
    messages_in: int
    bytes_in: int
    messages_out: int
    bytes_out: int


@dataclass(frozen=True, slots=True)
class MeterDeltas:
    """What accumulated since the previous `take_meter_deltas()`; keys are client UUIDs / tenant ids."""

    clients: dict[str, MeterDelta]
    tenants: dict[str, MeterDelta]


class Meters:
    __slots__ = ("_clients", "_tenants")

    def __init__(self) -> None:
        self._clients: dict[str, list[int]] = {}
        self._tenants: dict[str, list[int]] = {}

    def client(self, client_uuid: str) -> list[int]:
        counters = self._clients.get(client_uuid)
        if counters is None:
            counters = self._clients[client_uuid] = [0, 0, 0, 0]
        return counters

    def tenant(self, tenant_id: str) -> list[int]:
        counters = self._tenants.get(tenant_id)
        if counters is None:
            counters = self._tenants[tenant_id] = [0, 0, 0, 0]
        return counters

    def forget_client(self, client_uuid: str) -> None:
        self._clients.pop(client_uuid, None)

    def take_deltas(self) -> MeterDeltas:
        return MeterDeltas(clients=_drain(self._clients), tenants=_drain(self._tenants))


def _drain(counters_by_key: dict[str, list[int]]) -> dict[str, MeterDelta]:
    result: dict[str, MeterDelta] = {}
    for key, counters in counters_by_key.items():
        if counters[0] or counters[1] or counters[2] or counters[3]:
            result[key] = MeterDelta(*counters)
            counters[0] = counters[1] = counters[2] = counters[3] = 0
    return result

"""Per-connection profiles (spec §1.5, §3.6) and the values CONNECT hooks answer with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConnectionProfile:
    """What a connection may do; the device-protocol plugin returns its own from `client.profile`."""

    name: str
    max_qos: int = 2  # granted and delivered QoS cap
    retain_from_client: bool = True  # False: RETAIN on the client's PUBLISH is treated as 0
    retained_replay: bool = True  # send retained messages on SUBSCRIBE
    will_allowed: bool = True
    persistent_sessions: bool = True  # False: always a clean session
    suback_return_codes: bool = True  # False: SUBACK with remaining length 2 (spec Q2)
    keepalive_floor: float = 0.0  # timeout = max(1.5 K, floor) for K > 0
    implicit_delivery: bool = False  # inbox and server→device topics without SUBSCRIBE (spec §6.1, S3)
    # Server-originated pushes (config, commands): first one no earlier than `push_delay` seconds after
    # CONNACK (Q4), then at least `push_spacing` seconds apart (Q3). 0: no pacing.
    push_delay: float = 0.0
    push_spacing: float = 0.0


STANDARD = ConnectionProfile("standard")
LEGACY = ConnectionProfile(
    "legacy",
    max_qos=1,
    retain_from_client=False,
    retained_replay=False,
    will_allowed=False,
    persistent_sessions=False,
    keepalive_floor=270.0,
)


@dataclass(frozen=True, slots=True)
class ConnectReply:
    """Answer a CONNECT with these bytes instead of CONNACK (e.g. PROVACK) and handle nothing more.

    close=True: the broker closes the socket after `close_delay` seconds (0: at once).
    close=False: the peer is expected to close it (spec §5.5: never reset a provisioning connection);
    the broker still closes it after `BrokerSettings.connect_timeout`.
    Empty `data`: nothing is written now; the hook writes its answer to `channel.connection` later.
    """

    data: bytes
    close: bool = True
    close_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refuse a CONNECT with an MQTT 5 reason code (mapped to the 3.x return code for 3.x clients)."""

    reason_code: int

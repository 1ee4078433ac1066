"""Typed settings of the broker: listeners and every limit, with documented defaults."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class OverflowPolicy(StrEnum):
    """What a session does when its bounded queue is full (the drop is always counted)."""

    DROP_NEW = "drop_new"  # refuse the incoming message, keep the older ones
    DROP_OLDEST = "drop_oldest"  # evict the oldest queued message to make room


@dataclass
class BrokerSettings:
    """Everything the broker can be told; ports: int binds (0 = a free port), None = listener off."""

    host: str = "127.0.0.1"
    mqtt_port: int | None = 1883
    mqtts_port: int | None = None
    ws_port: int | None = None
    wss_port: int | None = None
    # Built by the caller for MQTTS/WSS; its verify_mode decides whether client certificates are asked for.
    ssl_context: ssl.SSLContext | None = None
    # WSS never asks for client certificates (spec §3.4 rule 7, C16); None: use ssl_context.
    wss_ssl_context: ssl.SSLContext | None = None
    # Takes over non-WebSocket HTTP requests on the ws/wss ports (one port for WS and HTTP, spec S1).
    ws_http_fallback: Callable[[bytes, asyncio.Transport], None] | None = None
    backlog: int = 1024
    # Sockets beyond this are closed at once (connection floods must not grow memory without bound).
    max_connections: int = 100_000

    # Framing limits: largest packet accepted from clients (MQTT 5 Maximum Packet Size sent in CONNACK).
    max_packet_size: int = 1_048_576
    # Seconds a fresh socket may stay silent before its CONNECT arrives.
    connect_timeout: float = 10.0

    # Flow control per session.
    # Outbound QoS 1/2 window per session (capped by the client's Receive Maximum); also the Receive
    # Maximum we announce: QoS 1 is acknowledged at once, so it bounds unreleased inbound QoS 2 ids.
    max_inflight: int = 64
    max_queued_messages: int = 1000  # messages waiting beyond the window or while offline
    queue_qos0_offline: bool = False  # MQTT leaves QoS 0 to offline sessions optional; off by default
    overflow_policy: OverflowPolicy = OverflowPolicy.DROP_NEW

    # Keep-alive (seconds); 0 in max_keepalive means "whatever the client asks".
    max_keepalive: int = 0
    legacy_keepalive_floor: float = 270.0  # spec §3.5: legacy clients get max(1.5 K, 270 s)

    # Sessions.
    # Cap on the MQTT 5 Session Expiry Interval a client may ask for (0xFFFFFFFF included).
    max_session_expiry: int = 7 * 24 * 3600
    # 3.1.1 clean session 0 never expires by the standard; an abandoned one is dropped after this.
    persistent_session_expiry_v311: int = 7 * 24 * 3600

    # Retained messages per tenant.
    max_retained_per_tenant: int = 10_000
    max_retained_payload: int = 262_144

    # MQTT 5 features announced in CONNACK.
    max_topic_alias: int = 64  # topic aliases the client may use towards us (0 = none)
    max_qos: int = 2

    # Transport back-pressure: a receiver whose write buffer passes high-water stops our reading of
    # publishers' sockets until it drains (asyncio flow control).
    write_buffer_high_water: int = 1_048_576
    write_buffer_low_water: int = 262_144

    # Timer wheel resolution in seconds (keep-alive, connect timeout, expiries, will delay).
    timer_resolution: float = 0.5

    # Minimum seconds between two identical warnings (per client and reason) in the log.
    log_throttle_seconds: float = 60.0

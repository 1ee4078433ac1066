"""What the broker needs from outside, as records and Protocols (implemented by store/ and protocol/).

The records are the broker's view of clients and tenants (spec C24); `SessionStore` is where persistent
sessions go so they survive a restart. `MemorySessionStore` is the in-memory implementation used until
the durable one (group commit in the store package) is wired in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A client as the broker authenticates and authorises it."""

    uuid: str
    tenant_id: str
    auth_token: str
    pub_topics: tuple[str, ...]
    sub_topics: tuple[str, ...]
    blocked: bool = False
    secure_cert_enabled: bool = False
    client_type: str = "device"
    # Provisioning (spec §5.4): the server-wide id, the key (None or "": any password is accepted),
    # whether it provisioned before (a repeat is logged), and whether a keyless client may still
    # provision, i.e. has not connected normally since (C3).
    provisioning_id: str | None = None
    provisioning_key: str | None = None
    provisioned: bool = False
    provisioning_open: bool = True


@dataclass(frozen=True, slots=True)
class TenantRecord:
    """A tenant: its activity flag and its cumulative message budget (spec §6.4)."""

    id: str
    active: bool
    max_messages: int
    messages_used: int


@dataclass(slots=True)
class StoredMessage:
    """A message kept for an offline session, in a form a store can persist."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int | None  # set when it was in flight (sent, unacknowledged) at save time
    # MQTT 5 properties as (name, value) pairs; expiry is kept as an absolute wall-clock deadline.
    properties: dict[str, object] | None = None
    expires_at: float | None = None  # wall-clock (time.time()) deadline
    subscription_identifiers: tuple[int, ...] | None = None


@dataclass(slots=True)
class StoredSubscription:
    topic_filter: str  # as subscribed, `$share/<group>/` prefix included
    qos: int
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0
    subscription_identifier: int | None = None


@dataclass(slots=True)
class StoredSession:
    """A persistent session at rest: keyed by client UUID, never by the MQTT client identifier."""

    client_uuid: str
    tenant_id: str
    expiry_interval: int
    subscriptions: list[StoredSubscription] = field(default_factory=list)
    messages: list[StoredMessage] = field(default_factory=list)
    # Inbound QoS 2 packet ids received and not yet released (PUBREL pending).
    inbound_unreleased: list[int] = field(default_factory=list)
    # Outbound QoS 2 packet ids whose PUBREC arrived (we owe a PUBREL, waiting for PUBCOMP).
    outbound_released: list[int] = field(default_factory=list)
    disconnected_at: float = 0.0


class SessionStore(Protocol):
    """Durable persistent sessions, group-committed.

    The broker calls `save` with a whole snapshot when a persistent session goes offline, `append` for
    each message queued to it while offline, and `delete` when the session comes back online or ends
    (the live session in memory is then the truth). `on_committed` is called on the event loop once the
    write is durable: a QoS 1/2 PUBLISH queued for an offline session is acknowledged only then (spec
    C18). Nothing on the publish path awaits the store.
    """

    def save(self, session: StoredSession, on_committed: Callable[[], None] | None = None) -> None: ...

    def append(
        self, client_uuid: str, message: StoredMessage, on_committed: Callable[[], None] | None = None
    ) -> None: ...

    def delete(self, client_uuid: str) -> None: ...

    def load_all(self) -> list[StoredSession]: ...


class MemorySessionStore:
    """Sessions kept in a dict; `on_committed` is called synchronously (memory is "durable" at once).

    It survives a BrokerNode restart within one process, which is what the tests use it for.
    """

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[str, StoredSession] = {}

    def save(self, session: StoredSession, on_committed: Callable[[], None] | None = None) -> None:
        self._sessions[session.client_uuid] = session
        if on_committed is not None:
            on_committed()

    def append(
        self, client_uuid: str, message: StoredMessage, on_committed: Callable[[], None] | None = None
    ) -> None:
        stored = self._sessions.get(client_uuid)
        if stored is not None:
            stored.messages.append(message)
        if on_committed is not None:
            on_committed()

    def delete(self, client_uuid: str) -> None:
        self._sessions.pop(client_uuid, None)

    def load_all(self) -> list[StoredSession]:
        return list(self._sessions.values())

"""Durable persistent MQTT sessions with group commit (implements `broker.ports.SessionStore`).

The broker calls `save` (a snapshot when a session goes offline), `append` (each message queued to it
afterwards) and `delete` synchronously on its hot path; they only record what to write. A flush task
the store owns writes everything pending in one transaction, at most every `flush_interval` seconds,
and then runs the `on_committed` callbacks, which is when the broker acknowledges a QoS 1/2 message
queued for an offline session (spec C18). A later snapshot or deletion of a session supersedes what
was pending for it, so each flush writes each session at most once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select

from instamsg.broker.ports import StoredMessage, StoredSession, StoredSubscription
from instamsg.domain.clock import utc_now
from instamsg.store.store import Store
from instamsg.store.tables import broker_session, broker_session_message, client

logger = logging.getLogger(__name__)


def _to_json(value: Any) -> Any:
    """JSON-safe and reversible: bytes and tuples are tagged, so they come back as they went in."""
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple):
        return {"t": [_to_json(item) for item in value]}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {"d": [[key, _to_json(item)] for key, item in value.items()]}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if isinstance(value, dict):
        if "b" in value:
            return base64.b64decode(value["b"])
        if "t" in value:
            return tuple(_from_json(item) for item in value["t"])
        return {key: _from_json(item) for key, item in value["d"]}
    return value


def encode_session(session: StoredSession) -> dict[str, Any]:
    state: dict[str, Any] = _to_json(asdict(session))
    return state


def encode_message(message: StoredMessage) -> dict[str, Any]:
    encoded: dict[str, Any] = _to_json(asdict(message))
    return encoded


def decode_message(state: dict[str, Any]) -> StoredMessage:
    return StoredMessage(**_from_json(state))


def decode_session(state: dict[str, Any]) -> StoredSession:
    fields = _from_json(state)
    return StoredSession(
        client_uuid=fields["client_uuid"],
        tenant_id=fields["tenant_id"],
        expiry_interval=fields["expiry_interval"],
        subscriptions=[StoredSubscription(**item) for item in fields["subscriptions"]],
        messages=[StoredMessage(**item) for item in fields["messages"]],
        inbound_unreleased=list(fields["inbound_unreleased"]),
        outbound_released=list(fields["outbound_released"]),
        disconnected_at=fields["disconnected_at"],
    )


@dataclass(slots=True)
class _Pending:
    """What one flush must do for one session: replace (or delete) its row, then add messages."""

    replace: StoredSession | None = None
    delete: bool = False
    appended: list[StoredMessage] = field(default_factory=list)


class DurableSessionStore:
    """Sessions in `broker_session` (+ `broker_session_message`); `preload()` before the broker starts,
    `close()` after it stopped."""

    def __init__(self, store: Store, *, flush_interval: float = 0.005):
        self.store = store
        self.flush_interval = flush_interval
        self._loaded: list[StoredSession] = []
        self._pending: dict[str, _Pending] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self.flushes = 0
        self.failed_flushes = 0

    async def preload(self) -> None:
        async with self.store.read() as connection:
            states = (await connection.execute(select(broker_session.c.state))).scalars().all()
            appended = (
                await connection.execute(
                    select(broker_session_message.c.client_uuid, broker_session_message.c.message).order_by(
                        broker_session_message.c.id
                    )
                )
            ).all()
        sessions = {session.client_uuid: session for session in map(decode_session, states)}
        for client_uuid, message in appended:
            if client_uuid in sessions:
                sessions[client_uuid].messages.append(decode_message(message))
        self._loaded = list(sessions.values())
        logger.info("sessions_loaded count=%d queued_messages=%d", len(sessions), len(appended))

    def load_all(self) -> list[StoredSession]:
        return list(self._loaded)

    def save(self, session: StoredSession, on_committed: Callable[[], None] | None = None) -> None:
        self._pending[session.client_uuid] = _Pending(replace=session)
        self._after_change(on_committed)

    def append(
        self, client_uuid: str, message: StoredMessage, on_committed: Callable[[], None] | None = None
    ) -> None:
        self._pending.setdefault(client_uuid, _Pending()).appended.append(message)
        self._after_change(on_committed)

    def delete(self, client_uuid: str) -> None:
        self._pending[client_uuid] = _Pending(delete=True)
        self._after_change(None)

    def _after_change(self, on_committed: Callable[[], None] | None) -> None:
        if on_committed is not None:
            self._callbacks.append(on_committed)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="session-flush"
            )

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval)
        while self._pending or self._callbacks:
            await self.flush()

    async def flush(self) -> None:
        """Write everything pending in one transaction, then run the commit callbacks."""
        pending, self._pending = self._pending, {}
        callbacks, self._callbacks = self._callbacks, []
        if not pending and not callbacks:
            return
        try:
            await self._write(pending)
        except BaseException as error:
            # Keep the work, also when cancelled; anything recorded meanwhile comes after it.
            newer, self._pending = self._pending, pending
            for client_uuid, change in newer.items():
                self._merge(client_uuid, change)
            self._callbacks[:0] = callbacks
            if not isinstance(error, Exception):
                raise
            self.failed_flushes += 1
            logger.exception("session_flush_failed sessions=%d", len(pending))
            await asyncio.sleep(max(self.flush_interval, 0.5))
            return
        self.flushes += 1
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("session_commit_callback_failed")

    def _merge(self, client_uuid: str, change: _Pending) -> None:
        if change.replace is not None or change.delete:
            self._pending[client_uuid] = change
        else:
            self._pending.setdefault(client_uuid, _Pending()).appended.extend(change.appended)

    async def _write(self, pending: dict[str, _Pending]) -> None:
        now = utc_now()
        async with self.store.write() as connection:
            replaced = [
                uuid for uuid, change in pending.items() if change.replace is not None or change.delete
            ]
            if replaced:
                # Message rows go with their session row (ON DELETE CASCADE); a snapshot holds them all.
                await connection.execute(
                    delete(broker_session).where(broker_session.c.client_uuid.in_(replaced))
                )
            snapshots = [change.replace for change in pending.values() if change.replace is not None]
            if snapshots:
                # A session of a client deleted meanwhile has no parent row: skip it, keep the batch.
                existing = set(
                    (
                        await connection.execute(
                            select(client.c.id)
                            .where(client.c.id.in_([session.client_uuid for session in snapshots]))
                            # PostgreSQL: a client deleted concurrently waits for this commit (SQLite
                            # writes are serialised anyway, and ignores the clause).
                            .with_for_update(read=True, key_share=True)
                        )
                    ).scalars()
                )
                rows = [
                    {
                        "client_uuid": session.client_uuid,
                        "tenant_id": session.tenant_id,
                        "state": encode_session(session),
                        "updated_at": now,
                    }
                    for session in snapshots
                    if session.client_uuid in existing
                ]
                if rows:
                    await connection.execute(insert(broker_session), rows)
            appended_to = [uuid for uuid, change in pending.items() if change.appended]
            if appended_to:
                stored = set(
                    (
                        await connection.execute(
                            select(broker_session.c.client_uuid).where(
                                broker_session.c.client_uuid.in_(appended_to)
                            )
                        )
                    ).scalars()
                )
                messages = [
                    {"client_uuid": uuid, "message": encode_message(message)}
                    for uuid in appended_to
                    if uuid in stored
                    for message in pending[uuid].appended
                ]
                if messages:
                    await connection.execute(insert(broker_session_message), messages)

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown."""
        if self._flush_task is not None and not self._flush_task.done():
            # Never cancel a flush in progress: its transaction may be committing.
            await self._flush_task
        while self._pending or self._callbacks:
            await self.flush()

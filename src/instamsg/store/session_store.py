"""Durable persistent MQTT sessions with group commit (implements `broker.ports.SessionStore`).

The broker calls `save` and `delete` synchronously on its hot path; they only mark the session dirty.
A flush task the store owns writes every dirty session in one transaction, at most every
`flush_interval` seconds, and then runs the `on_committed` callbacks, which is when the broker
acknowledges a QoS 1/2 message queued for an offline session (spec C18). Several saves of one session
inside a window collapse into one write of its latest state.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from instamsg.broker.ports import StoredMessage, StoredSession, StoredSubscription
from instamsg.domain.clock import utc_now
from instamsg.store.store import Store
from instamsg.store.tables import broker_session, client

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


class DurableSessionStore:
    """Sessions in the `broker_session` table; call `preload()` before the broker starts, `close()` last."""

    def __init__(self, store: Store, *, flush_interval: float = 0.005):
        self.store = store
        self.flush_interval = flush_interval
        self._sessions: dict[str, StoredSession] = {}
        self._dirty: dict[str, StoredSession | None] = {}  # None marks a deletion
        self._callbacks: list[Callable[[], None]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self.flushes = 0
        self.failed_flushes = 0

    async def preload(self) -> None:
        async with self.store.read() as connection:
            rows = (await connection.execute(select(broker_session.c.state))).scalars().all()
        self._sessions = {}
        for state in rows:
            session = decode_session(state)
            self._sessions[session.client_uuid] = session
        logger.info("sessions_loaded count=%d", len(self._sessions))

    def load_all(self) -> list[StoredSession]:
        return list(self._sessions.values())

    def save(self, session: StoredSession, on_committed: Callable[[], None] | None = None) -> None:
        self._sessions[session.client_uuid] = session
        self._dirty[session.client_uuid] = session
        if on_committed is not None:
            self._callbacks.append(on_committed)
        self._schedule()

    def delete(self, client_uuid: str) -> None:
        self._sessions.pop(client_uuid, None)
        self._dirty[client_uuid] = None
        self._schedule()

    def _schedule(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(
                self._flush_soon(), name="session-flush"
            )

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.flush_interval)
        while self._dirty or self._callbacks:
            await self.flush()

    async def flush(self) -> None:
        """Write every dirty session in one transaction, then run the commit callbacks."""
        dirty, self._dirty = self._dirty, {}
        callbacks, self._callbacks = self._callbacks, []
        if not dirty and not callbacks:
            return
        try:
            await self._write(dirty)
        except BaseException as error:
            # Keep the work, also when cancelled: newer saves of the same sessions win, callbacks wait.
            for client_uuid, session in dirty.items():
                self._dirty.setdefault(client_uuid, session)
            self._callbacks[:0] = callbacks
            if not isinstance(error, Exception):
                raise
            self.failed_flushes += 1
            logger.exception("session_flush_failed sessions=%d", len(dirty))
            await asyncio.sleep(max(self.flush_interval, 0.5))
            return
        self.flushes += 1
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("session_commit_callback_failed")

    async def _write(self, dirty: dict[str, StoredSession | None]) -> None:
        now = utc_now()
        async with self.store.write() as connection:
            removed = [client_uuid for client_uuid, session in dirty.items() if session is None]
            if removed:
                await connection.execute(
                    delete(broker_session).where(broker_session.c.client_uuid.in_(removed))
                )
            rows = [
                {
                    "client_uuid": session.client_uuid,
                    "tenant_id": session.tenant_id,
                    "state": encode_session(session),
                    "updated_at": now,
                }
                for session in dirty.values()
                if session is not None
            ]
            # A session of a client deleted meanwhile has no parent row: skip it rather than fail the batch.
            existing = set(
                (
                    await connection.execute(
                        select(client.c.id).where(client.c.id.in_([row["client_uuid"] for row in rows]))
                    )
                ).scalars()
            )
            rows = [row for row in rows if row["client_uuid"] in existing]
            if not rows:
                return
            insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(
                broker_session
            )
            upsert = insert.on_conflict_do_update(
                index_elements=[broker_session.c.client_uuid],
                set_={
                    "tenant_id": insert.excluded.tenant_id,
                    "state": insert.excluded.state,
                    "updated_at": now,
                },
            )
            await connection.execute(upsert, rows)

    async def close(self) -> None:
        """Flush what is pending; called on graceful shutdown."""
        if self._flush_task is not None and not self._flush_task.done():
            # Never cancel a flush in progress: its transaction may be committing.
            await self._flush_task
        while self._dirty or self._callbacks:
            await self.flush()

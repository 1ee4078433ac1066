"""Keyset pages of a client's time-ordered records (sessions, logs, network logs, messages).

A page ends at the (time, id) of its last item; the cursor names that position and is bound to the
query that produced it, so it is refused with other filters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from instamsg.domain.errors import InvalidCursor
from instamsg.domain.timestamps import decode_cursor, encode_cursor

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def cursor_query(
    client_id: str, start: datetime | None, end: datetime | None, descending: bool, **filters: Any
) -> dict[str, Any]:
    """The query a cursor is bound to: the client, the time range, the other filters and the order."""
    return {
        "client": client_id,
        "start": start.isoformat() if start else None,
        "end": end.isoformat() if end else None,
        **filters,
        "desc": descending,
    }


def _invalid_cursor(cursor: str) -> InvalidCursor:
    return InvalidCursor(
        "The cursor is malformed or was produced by a different query.", details={"cursor": cursor[:100]}
    )


def position_after(cursor: str | None, query: dict[str, Any]) -> tuple[datetime, str] | None:
    """The (time, id) the page starts after; None for the first page (no cursor)."""
    if cursor is None:
        return None
    position = decode_cursor(cursor, query)
    try:
        after = (datetime.fromisoformat(position["t"]), str(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise _invalid_cursor(cursor) from None
    if after[0].tzinfo is None:
        raise _invalid_cursor(cursor)
    return after


def page_of(
    rows: list[T], limit: int, query: dict[str, Any], position: Callable[[T], tuple[datetime, Any]]
) -> Page[T]:
    """The first ``limit`` of ``rows``, read with ``limit + 1`` so that one more row tells whether a
    next page exists; its cursor names the ``position`` (time, id) of the page's last row."""
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    moment, last_id = position(rows[-1])
    return Page(rows, encode_cursor(query, {"t": moment.isoformat(), "id": last_id}))

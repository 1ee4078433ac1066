"""Query timestamps as the spec accepts them (D3), and opaque list cursors bound to their query (D13)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from instamsg.domain.errors import InvalidCursor, InvalidTimeRange, InvalidTimestamp

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_SPACED = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?$")
MILLISECONDS_THRESHOLD = 10**11


def parse_timestamp(value: str, name: str = "timestamp") -> datetime:
    """Epoch seconds (integer or decimal), epoch milliseconds (any number > 10^11),
    `YYYY-MM-DD HH:MM:SS`, or ISO 8601 (no zone means UTC). Anything else: `invalid_timestamp`."""
    text = value.strip()
    problem = InvalidTimestamp(
        f"{name} must be epoch seconds, epoch milliseconds, 'YYYY-MM-DD HH:MM:SS' or ISO 8601; "
        f"got {value!r}.",
        details={"parameter": name, "value": value},
    )
    if _NUMBER.match(text):
        number = float(text)
        if number > MILLISECONDS_THRESHOLD:
            number /= 1000
        if not math.isfinite(number):
            raise problem
        try:
            return datetime.fromtimestamp(number, UTC)
        except (OverflowError, OSError, ValueError):
            raise problem from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise problem from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise problem from None


def parse_time_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """Both bounds inclusive; `start > end` is `invalid_time_range`."""
    start_at = parse_timestamp(start, "start") if start is not None else None
    end_at = parse_timestamp(end, "end") if end is not None else None
    if start_at is not None and end_at is not None and start_at > end_at:
        raise InvalidTimeRange("start must not be after end.", details={"start": start, "end": end})
    return start_at, end_at


def _fingerprint(query: dict[str, Any]) -> str:
    canonical = json.dumps(query, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(query: dict[str, Any], position: dict[str, Any]) -> str:
    """An opaque token naming where the next page starts, bound to the query that produced it."""
    payload = json.dumps({"q": _fingerprint(query), "p": position}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: dict[str, Any]) -> dict[str, Any]:
    problem = InvalidCursor(
        "The cursor is malformed or was produced by a different query; repeat the same filters "
        "or start again without a cursor.",
        details={"cursor": cursor[:100]},
    )
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, ValueError, UnicodeError):
        raise problem from None
    if not isinstance(decoded, dict) or decoded.get("q") != _fingerprint(query):
        raise problem
    position = decoded.get("p")
    if not isinstance(position, dict):
        raise problem
    return position

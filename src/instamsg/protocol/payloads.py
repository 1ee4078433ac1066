"""Pure readers and writers for InstaMsg device payloads (spec §5.3, §5.7, §7-§11).

Nothing here does I/O or imports the rest of the project. Readers never raise: device payloads are
parsed leniently and a failure falls back to a raw form. Writers produce the byte-exact forms the
official C, Java and Python libraries read, and raise ``ValueError`` for input they cannot carry.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "LITERAL_EVAL_LIMIT",
    "MAX_SERVER_MESSAGE_ID",
    "PEM_FIELD_LIMIT",
    "ConfigReport",
    "Envelope",
    "LogLevel",
    "MessageIdCounter",
    "SmsNotSendable",
    "build_send_envelope",
    "certificate_push_payload",
    "config_push_payload",
    "file_command_payload",
    "hexify_mac",
    "logging_command_payload",
    "masked_sms_text",
    "normalise_device_report",
    "parse_config_report",
    "parse_envelope",
    "parse_lenient",
    "parse_log_line",
    "provisioning_rc6_payload",
    "provisioning_sms_text",
    "push_form",
    "safe_for_c_reader",
]

# §11.2: larger inputs skip ast.literal_eval, whose parser cost grows with the input.
LITERAL_EVAL_LIMIT = 64 * 1024
# §7.3 / Q11: server-built ids are decimal with at most 5 digits; the counter cycles 1-65535.
MAX_SERVER_MESSAGE_ID = 65535
# §5.3: C copies each certificate field into a 2000-byte buffer.
PEM_FIELD_LIMIT = 1900
# §9.2: the level token must lie within this many leading characters.
LOG_LEVEL_WINDOW = 64

LogLevel = Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------


def _decode(payload: bytes | bytearray | memoryview | str) -> str:
    """Text of a payload; bytes that are not UTF-8 are replaced, never rejected."""
    if isinstance(payload, str):
        return payload
    return bytes(payload).decode("utf-8", errors="replace")


def _encode(text: str) -> bytes:
    """UTF-8 bytes; a lone surrogate becomes its ``\\udXXX`` text, which is also a valid JSON escape."""
    return text.encode("utf-8", errors="backslashreplace")


def _json_string(text: str) -> str:
    """A JSON string literal, non-ASCII left as UTF-8 because C copies bytes and cannot decode ``\\u``."""
    return json.dumps(text, ensure_ascii=False)


def safe_for_c_reader(text: str) -> bool:
    """True when ``text`` survives C's and Java's naive JSON readers (Q10): nothing needs escaping."""
    return _json_string(text)[1:-1] == text


def _has_control_character(text: str) -> bool:
    return any(ord(character) < 0x20 or 0x7F <= ord(character) <= 0x9F for character in text)


def _require_plain_value(name: str, text: str) -> None:
    """§7.3: values the server sends are double-quoted strings without ``"``, ``\\`` or controls."""
    if '"' in text or "\\" in text or _has_control_character(text):
        raise ValueError(f"{name} must not contain '\"', '\\' or control characters: {text!r}")


def _trimmed(text: str) -> str:
    """Text without a leading BOM (json.loads refuses it) or surrounding whitespace and NULs (C pads)."""
    return text.lstrip("\ufeff").strip(" \t\r\n\f\v\x00")


def _clean_text(text: str) -> str:
    """Replace lone surrogates (from ``\\ud800`` escapes) so the text can always be stored as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A UTF-16 round trip joins escaped surrogate pairs and turns lone halves into U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _nonfinite_text(number: float) -> str:
    # JSON has no NaN or infinity, and JSON columns (PostgreSQL jsonb) refuse them.
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def _key_text(key: object) -> str:
    if isinstance(key, str):
        return _clean_text(key)
    if key is None or isinstance(key, bool | int):
        return json.dumps(key)
    if isinstance(key, float):
        return json.dumps(key) if math.isfinite(key) else _nonfinite_text(key)
    return _clean_text(str(key))


def _jsonable(value: object) -> Any:
    """A JSON-serialisable copy of a parsed value (literal_eval can yield tuples, sets, bytes…)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _nonfinite_text(value)
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, bytes):
        return _clean_text(value.decode("utf-8", errors="replace"))
    if isinstance(value, dict):
        return {_key_text(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, set | frozenset):
        return [_jsonable(item) for item in sorted(value, key=repr)]
    return _clean_text(str(value))


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------------
# §11.2 Lenient parsing
# --------------------------------------------------------------------------------------------------

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?")
_BARE_WORDS: dict[str, Any] = {
    "true": True,
    "True": True,
    "false": False,
    "False": False,
    "null": None,
    "None": None,
}
# Python refuses int() on more digits than this (sys.int_info.default_max_str_digits).
_MAX_INTEGER_DIGITS = 4300


def _integer_or_none(text: str) -> int | None:
    """The integer an ASCII decimal text spells, or None (never raises on huge digit runs)."""
    if not _INTEGER.fullmatch(text) or len(text) > _MAX_INTEGER_DIGITS:
        return None
    return int(text)


def _bare_value(text: str) -> Any:
    """Typed value of an unquoted scanner token: numbers, true/false/null (either spelling), else text."""
    if text in _BARE_WORDS:
        return _BARE_WORDS[text]
    integer = _integer_or_none(text)
    if integer is not None:
        return integer
    if _DECIMAL.fullmatch(text):
        number = float(text)
        if math.isfinite(number):
            return number
    return text


# One flat pair, matched at a fixed position (never searched). A quoted key closes at the first
# matching quote followed by ":", a quoted value at the first followed by "," or the end: C and
# Python print values unescaped, so an earlier quote is content. Each alternation branch is
# decided by one character and lookaheads only cross whitespace, so a failed match costs linear
# time and aborts the scan: no catastrophic backtracking on hostile input.
_PAIR = re.compile(
    r"""
    [\s,]*
    (?: '((?:[^']|'(?!\s*:))*)'
      | "((?:[^"]|"(?!\s*:))*)"
      | ([^\s'"{}\[\]():,]+) )
    \s*:\s*
    (?: '((?:[^']|'(?!\s*(?:,|\Z)))*)'(?=\s*(?:,|\Z))
      | "((?:[^"]|"(?!\s*(?:,|\Z)))*)"(?=\s*(?:,|\Z))
      | ([^,]*) )
    [\s,]*
    """,
    re.VERBOSE,
)


def _scan_flat(text: str) -> dict[str, Any] | None:
    """§11.2 step 3: flat ``key: value`` pairs separated by commas, quotes optional, braces optional.

    Every segment must be a pair, otherwise the scan fails (plain prose stays raw). An unquoted key
    is one word (no whitespace, quotes or brackets). Quoted values stay strings; unquoted values
    become numbers, booleans or null when they spell one, else their trimmed text.
    """
    if ":" not in text:  # no pair is possible; skip the scan of big colon-free payloads
        return None
    body = _clean_text(text.strip())
    if body.startswith("{"):
        body = body[1:]
    if body.endswith("}"):
        body = body[:-1]
    length = len(body)
    result: dict[str, Any] = {}
    position = 0
    while position < length:
        pair = _PAIR.match(body, position)
        if pair is None:
            return None
        single_key, double_key, plain_key, single_value, double_value, plain_value = pair.groups()
        key = single_key if single_key is not None else double_key if double_key is not None else plain_key
        if single_value is not None:
            result[key] = single_value
        elif double_value is not None:
            result[key] = double_value
        else:
            result[key] = _bare_value(plain_value.strip())
        position = pair.end()
    return result or None


def _parse_object(payload: bytes | bytearray | memoryview | str) -> dict[str, Any] | None:
    """The object a payload holds by the §11.2 steps, or None when no step yields one."""
    text = _trimmed(_decode(payload))
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict):
            converted: dict[str, Any] = _jsonable(parsed)
            return converted
    except (ValueError, RecursionError, MemoryError):
        pass
    if len(_encode(text)) <= LITERAL_EVAL_LIMIT:
        try:
            evaluated = ast.literal_eval(text)
            if isinstance(evaluated, dict):
                converted = _jsonable(evaluated)
                return converted
        # Besides ValueError, SyntaxError, RecursionError, MemoryError and TypeError (the spec's
        # list), a warnings-as-errors filter can turn a compiler warning into another exception.
        except Exception:
            pass
    try:
        return _scan_flat(text)
    except (RecursionError, MemoryError):
        return None


def parse_lenient(payload: bytes | str) -> dict[str, Any]:
    """§11.2: the object in a device payload (JSON, Python repr or flat pseudo-JSON), else ``{"raw": text}``.

    Never raises. The result is always JSON-serialisable: tuples and sets become lists, NaN and the
    infinities become the strings ``"NaN"``/``"Infinity"``/``"-Infinity"``, lone surrogates U+FFFD.
    """
    try:
        parsed = _parse_object(payload)
    except Exception:
        parsed = None
    if parsed is not None:
        return parsed
    try:
        return {"raw": _clean_text(_decode(payload))}
    except Exception:
        return {"raw": ""}


# --------------------------------------------------------------------------------------------------
# §11.3 Normalisation
# --------------------------------------------------------------------------------------------------

_MAC_SEPARATORS = re.compile(r"[\s:.\-]")
_SIGNAL_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,9}\s*")


def hexify_mac(text: str) -> str:
    """Lowercase MAC text without separators (``:``, ``-``, ``.`` and whitespace), for filtering."""
    return _MAC_SEPARATORS.sub("", text).lower()


def normalise_device_report(data: dict[str, Any]) -> dict[str, Any]:
    """§11.3: a normalised copy of an info, metadata, session or network report (the input is untouched).

    - ``antina_status`` (C) is renamed ``antenna_status`` and ``method`` (C session) is renamed
      ``network_interface``, unless the target key is already present: then both keys stay.
    - ``signal_strength`` given as an integer string (``"-71"``) becomes an int.
    - ``mac_id_normalised`` is added from ``mac_id``, else ``mac_address`` (see :func:`hexify_mac`);
      the original key and text stay.
    """
    result = dict(data)
    for old_key, new_key in (("antina_status", "antenna_status"), ("method", "network_interface")):
        if old_key in result and new_key not in result:
            result[new_key] = result.pop(old_key)
    signal = result.get("signal_strength")
    if isinstance(signal, str) and _SIGNAL_INTEGER.fullmatch(signal):
        result["signal_strength"] = int(signal)
    for mac_key in ("mac_id", "mac_address"):
        mac = result.get(mac_key)
        if isinstance(mac, str):
            result["mac_id_normalised"] = hexify_mac(mac)
            break
    return result


# --------------------------------------------------------------------------------------------------
# §7 Envelopes
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """The fields of a p2p or reply envelope; any field that cannot be found is None (§7.5)."""

    message_id: str | None = None
    response_id: str | None = None
    reply_to: str | None = None
    status: str | int | None = None
    body: str | None = None


# JS sends camelCase keys in file commands (Q19); they are read as a fallback.
_ENVELOPE_ALIASES = {
    "message_id": ("message_id", "messageId"),
    "response_id": ("response_id", "responseId"),
    "reply_to": ("reply_to", "replyTo"),
    "status": ("status",),
    "body": ("body",),
}


def _field_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return _compact_json(value)


def _status_value(value: Any) -> str | int | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _compact_json(value)


def _envelope_from_object(data: dict[str, Any]) -> Envelope:
    def lookup(name: str) -> Any:
        for key in _ENVELOPE_ALIASES[name]:
            if key in data:
                return data[key]
        return None

    return Envelope(
        message_id=_field_text(lookup("message_id")),
        response_id=_field_text(lookup("response_id")),
        reply_to=_field_text(lookup("reply_to")),
        status=_status_value(lookup("status")),
        body=_field_text(lookup("body")),
    )


def _key_pattern(key: str) -> re.Pattern[str]:
    # Negated classes and a literal key keep this linear: no nested or overlapping quantifiers.
    return re.compile(
        r"""(["'])""" + re.escape(key) + r"""\1\s*:\s*(?:"([^"]*)"|'([^']*)'|(-?[0-9]+(?:\.[0-9]+)?))"""
    )


_KEY_PATTERNS = {alias: _key_pattern(alias) for aliases in _ENVELOPE_ALIASES.values() for alias in aliases}
_BODY_KEY = re.compile(r"""(["'])body\1\s*:\s*""")
_BODY_END = {
    '"': (re.compile(r""""\s*,\s*["']status["']"""), re.compile(r'"\s*}')),
    "'": (re.compile(r"""'\s*,\s*["']status["']"""), re.compile(r"'\s*}")),
    "{": (re.compile(r"""}\s*,\s*["']status["']"""), re.compile(r"}\s*}")),
}


def _last_match(pattern: re.Pattern[str], text: str, start: int) -> re.Match[str] | None:
    last = None
    for match in pattern.finditer(text, start):
        last = match
    return last


def _scanned_field(text: str, name: str, last: bool) -> tuple[str, bool] | None:
    """``(value text, was quoted)`` of the first (or last) ``name`` key in ``text``."""
    for alias in _ENVELOPE_ALIASES[name]:
        if alias not in text:  # a substring test is much cheaper than a regex scan of a big payload
            continue
        pattern = _KEY_PATTERNS[alias]
        match = _last_match(pattern, text, 0) if last else pattern.search(text)
        if match is not None:
            _, double_quoted, single_quoted, number = match.groups()
            if number is not None:
                return number, False
            return (double_quoted if double_quoted is not None else single_quoted), True
    return None


def _scan_envelope(text: str) -> Envelope:
    """§7.5 steps 2-4 for payloads that are not JSON."""
    body: str | None = None
    before, after = text, text
    body_key = _BODY_KEY.search(text)
    if body_key is not None:
        before = text[: body_key.start()]
        after = text[body_key.start() :]
        opening_position = body_key.end()
        opening = text[opening_position : opening_position + 1]
        if opening in _BODY_END:
            status_end, object_end = _BODY_END[opening]
            # A quoted body starts after its quote; an object body (Python fail, Q21) keeps its braces.
            content_start = opening_position + 1 if opening != "{" else opening_position
            end = _last_match(status_end, text, content_start) or _last_match(object_end, text, content_start)
            if end is not None:
                content_end = end.start() if opening != "{" else end.start() + 1
                body = text[content_start:content_end]
                after = text[content_end:]

    # Ids precede the body in every library's printf, and status follows it. Each field is looked for
    # on its usual side first, then on the other, never inside the body: envelope-looking text in an
    # unescaped body must not be read as fields.
    def outside_body(name: str, usual: str, other: str, last: bool) -> tuple[str, bool] | None:
        found = _scanned_field(usual, name, last)
        if found is None and other is not usual:
            found = _scanned_field(other, name, last)
        return found

    status: str | int | None = None
    found_status = outside_body("status", after, before, last=True)
    if found_status is not None:
        status_text, quoted = found_status
        integer = None if quoted else _integer_or_none(status_text)
        status = status_text if integer is None else integer
    identifiers: dict[str, str | None] = {}
    for name in ("message_id", "response_id", "reply_to"):
        found = outside_body(name, before, after, last=False)
        identifiers[name] = None if found is None else found[0]
    return Envelope(
        message_id=identifiers["message_id"],
        response_id=identifiers["response_id"],
        reply_to=identifiers["reply_to"],
        status=status,
        body=body,
    )


def parse_envelope(payload: bytes | str) -> Envelope:
    """§7.5: read an envelope leniently (JSON first, then a key scanner). Never raises.

    JSON numbers in id fields become their decimal text; a non-string JSON ``body`` becomes compact
    JSON text; a scanned body is taken verbatim (it was never escaped). Unquoted numeric ``status``
    values are ints, quoted ones stay strings.
    """
    try:
        text = _trimmed(_decode(payload))
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError, MemoryError):
            parsed = None
        if isinstance(parsed, dict):
            return _envelope_from_object(parsed)
        return _scan_envelope(text)
    except Exception:
        return Envelope()


def _message_id_text(message_id: int | str) -> str:
    """§7.3/Q11: C copies ids into 6-byte buffers, so a server id is at most 5 decimal digits."""
    if isinstance(message_id, bool):
        raise ValueError("message_id must be an integer or a decimal string, not a bool")
    if isinstance(message_id, int):
        if not 1 <= message_id <= MAX_SERVER_MESSAGE_ID:
            raise ValueError(f"message_id must be 1-{MAX_SERVER_MESSAGE_ID}, got {message_id}")
        return str(message_id)
    if not re.fullmatch(r"[0-9]{1,5}", message_id):
        raise ValueError(f"message_id must be 1 to 5 decimal digits, got {message_id!r}")
    return message_id


def build_send_envelope(message_id: int | str, reply_to: str, body: str) -> bytes:
    """§2.5.5/§7.1: ``{"message_id": "<id>", "reply_to": "<uuid>", "body": "<JSON-escaped body>"}``.

    ``reply_to`` must fit C's 50-byte buffer (at most 49 characters) and carry no ``"``, ``\\`` or
    controls. The body is escaped so Python reads it exactly; C and Java misread escapes (Q10, see
    :func:`safe_for_c_reader`). The size is not limited here: the caller's payload limit applies.
    """
    identifier = _message_id_text(message_id)
    _require_plain_value("reply_to", reply_to)
    if not reply_to or len(reply_to) > 49:
        raise ValueError(f"reply_to must be 1-49 characters, got {len(reply_to)}")
    text = f'{{"message_id": "{identifier}", "reply_to": "{reply_to}", "body": {_json_string(body)}}}'
    return _encode(text)


class MessageIdCounter:
    """Server-originated envelope ids for one client: 1, 2, … 65535, then 1 again (§7.3, Q11).

    Keep one instance per client. Not thread-safe; the broker uses it from its event loop.
    """

    __slots__ = ("_last",)

    def __init__(self, start: int = 1) -> None:
        if isinstance(start, bool) or not 1 <= start <= MAX_SERVER_MESSAGE_ID:
            raise ValueError(f"start must be 1-{MAX_SERVER_MESSAGE_ID}")
        self._last = start - 1

    def next_id(self) -> int:
        """The next id, wrapping from 65535 to 1 (0 is never produced)."""
        self._last = self._last % MAX_SERVER_MESSAGE_ID + 1
        return self._last


# --------------------------------------------------------------------------------------------------
# §8 Configuration
# --------------------------------------------------------------------------------------------------


def _typed_text(value: Any) -> tuple[str, str]:
    """``(type, val)`` of a config value per §8.3; TypeError for values JSON cannot carry."""
    if isinstance(value, bool):
        return "1", "1" if value else "0"
    if isinstance(value, int):
        return "1", str(value)
    if isinstance(value, float):
        return "0", json.dumps(value)
    if isinstance(value, str):
        return "0", value
    if value is None:
        # Devices have no null; an empty value is what they store for "nothing", whereas "null"
        # would be taken literally (e.g. as an NTP host name).
        return "0", ""
    if isinstance(value, dict | list | tuple):
        return "0", _compact_json(value)
    raise TypeError(f"config value of type {type(value).__name__} cannot be pushed")


def config_push_payload(key: str, value: Any, desc: str = "") -> tuple[bytes, bool]:
    """§8.3: ``{"key": "<key>", "type": "1", "val": "<val>", "desc": "<desc>"}`` and a warning flag.

    The flag is True when the key, value or description needed JSON escaping (``"``, ``\\`` or
    control characters), which C and Java misread (Q10); the caller logs a WARN and pushes anyway.
    """
    if not key:
        raise ValueError("config key must not be empty")
    type_text, value_text = _typed_text(value)
    needs_warning = not all(safe_for_c_reader(part) for part in (key, value_text, desc))
    text = (
        f'{{"key": {_json_string(key)}, "type": "{type_text}", '
        f'"val": {_json_string(value_text)}, "desc": {_json_string(desc)}}}'
    )
    return _encode(text), needs_warning


def push_form(value: Any) -> str:
    """The string a push would carry for ``value`` (§8.4 ``pending``): True → "1", 120 → "120"."""
    try:
        return _typed_text(value)[1]
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True, slots=True)
class ConfigReport:
    """A device config report (§8.2).

    ``form`` is ``per_key`` (C/Java, one key), ``whole_object`` (Python/Telit) or ``unparsed``
    (nothing object-like: no values). ``types`` and ``descriptions`` are filled by the per-key form.
    """

    form: Literal["per_key", "whole_object", "unparsed"]
    values: dict[str, Any] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)


_PER_KEY_FIELDS = frozenset({"key", "type", "val", "desc", "instamsg_version"})


def parse_config_report(payload: bytes | str) -> ConfigReport:
    """§8.2: read a per-key report (``key``/``type``/``val``/``desc``) or a whole-object report.

    Per key: ``val`` becomes an int when ``type`` is "1" and it is an integer, else a string. A
    payload whose only keys are among key/type/val/desc/instamsg_version, with a string ``key`` and a
    ``val``, is per-key; any other object is whole-object (``instamsg_version`` dropped). Never raises.
    """
    try:
        data = _parse_object(payload)
    except Exception:
        data = None
    if data is None:
        return ConfigReport(form="unparsed")
    key = data.get("key")
    if isinstance(key, str) and key and "val" in data and set(data) <= _PER_KEY_FIELDS:
        raw_value = data["val"]
        value_text = raw_value if isinstance(raw_value, str) else push_form(raw_value)
        type_text = push_form(data["type"]) if "type" in data else None
        reported: str | int = value_text
        if type_text == "1":
            integer = _integer_or_none(value_text.strip())
            if integer is not None:
                reported = integer
        return ConfigReport(
            form="per_key",
            values={key: reported},
            types={key: type_text} if type_text is not None else {},
            descriptions={key: push_form(data["desc"])} if "desc" in data else {},
        )
    return ConfigReport(
        form="whole_object",
        values={name: item for name, item in data.items() if name != "instamsg_version"},
    )


# --------------------------------------------------------------------------------------------------
# §9 Remote logging
# --------------------------------------------------------------------------------------------------


def logging_command_payload(watcher_id: str, enabled: bool) -> bytes:
    """§9.1: ``{"client_id": "<watcher id>", "logging": "1"}`` (or ``"0"``); the flag is a string (Q12)."""
    if not watcher_id:
        raise ValueError("watcher_id must not be empty")
    _require_plain_value("watcher_id", watcher_id)
    flag = "1" if enabled else "0"
    return _encode(f'{{"client_id": "{watcher_id}", "logging": "{flag}"}}')


_LOG_TOKEN = re.compile(r"[A-Za-z0-9_]+")
_LOG_LEVELS: dict[str, LogLevel] = {
    "DEBUG": "DEBUG",
    "INFO": "INFO",
    "WARN": "WARN",
    "WARNING": "WARN",
    "ERROR": "ERROR",
    "FATAL": "FATAL",
    "CRITICAL": "FATAL",
}


def parse_log_line(payload: bytes | str) -> tuple[LogLevel, str]:
    """§9.2: ``(level, message)`` of one device log line. Never raises.

    The message is the whole line with trailing CR/LF removed (the level word stays in it). The level
    is the first word within the first 64 characters naming a level; a word cut by the 64-character
    boundary does not count. Words are runs of letters, digits and ``_``; anything else separates.
    """
    try:
        line = _clean_text(_decode(payload)).rstrip("\r\n")
    except Exception:
        return "INFO", ""
    window = line[:LOG_LEVEL_WINDOW]
    for token in _LOG_TOKEN.finditer(window):
        if token.end() == LOG_LEVEL_WINDOW and _LOG_TOKEN.match(line, LOG_LEVEL_WINDOW):
            break  # the word continues past the window: "ERRORS" must not read as "ERROR"
        level = _LOG_LEVELS.get(token.group().upper())
        if level is not None:
            return level, line
    return "INFO", line


# --------------------------------------------------------------------------------------------------
# §5.7 SMS provisioning
# --------------------------------------------------------------------------------------------------


class SmsNotSendable(ValueError):
    """A provisioning SMS value contains whitespace, ``"`` or ``,`` (§5.7); the SMS must not be sent."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name


# SMS key → provisioning_params key, in the order of the §5.7 example. sg_mode has no REST field in
# §2.5.3; an optional gsm_mode is read and defaults to "".
_SMS_FIELDS = (
    ("sg_apn", "gsm_apn"),
    ("sg_user", "gsm_username"),
    ("sg_pass", "gsm_password"),
    ("sg_pin", "gsm_sim_pin"),
    ("prov_pin", "provisioning_key"),
    ("sg_mode", "gsm_mode"),
)
_SMS_MASKED = frozenset({"sg_pass", "prov_pin"})
_SMS_MASK = "********"


def _sms_values(params: dict[str, Any], now_epoch: int) -> list[tuple[str, str]]:
    if isinstance(now_epoch, bool) or not isinstance(now_epoch, int) or now_epoch < 0:
        raise SmsNotSendable("time", f"now_epoch must be a non-negative integer, got {now_epoch!r}")
    values = [("time", str(now_epoch))]
    for sms_key, params_key in _SMS_FIELDS:
        value = params.get(params_key)
        if value is None:
            text = ""
        elif isinstance(value, str):
            text = value
        elif isinstance(value, int) and not isinstance(value, bool):
            text = str(value)  # a PIN may arrive as a JSON number
        else:
            raise SmsNotSendable(sms_key, f"{params_key} must be text, got {type(value).__name__}")
        values.append((sms_key, text))
    return values


def _sms_text(values: list[tuple[str, str]]) -> str:
    # "(" and ")" stand in for the braces, which cost two GSM-7 characters each (§5.7).
    return "(" + ",".join(f'"{key}":"{value}"' for key, value in values) + ")"


def provisioning_sms_text(params: dict[str, Any], now_epoch: int) -> str:
    """§5.7: the provisioning SMS body, e.g. ``("time":"1700000000","sg_apn":"internet",…,"sg_mode":"")``.

    ``params`` is the client's ``provisioning_params`` (``gsm_apn``, ``gsm_username``, ``gsm_password``,
    ``gsm_sim_pin``, ``provisioning_key``, optional ``gsm_mode``); missing or null values are "".
    Raises :class:`SmsNotSendable` when a value contains whitespace, ``"`` or ``,``.
    """
    values = _sms_values(params, now_epoch)
    for key, value in values:
        if any(character.isspace() or character in '",' for character in value):
            raise SmsNotSendable(key, f"SMS value {key} contains whitespace, '\"' or ','")
    return _sms_text(values)


def masked_sms_text(params: dict[str, Any], now_epoch: int) -> str:
    """The SMS text for the client log (S12); non-empty ``prov_pin`` and ``sg_pass`` show as ``********``.

    It does not check the values, so it can also describe an SMS that was refused.
    """
    try:
        values = _sms_values(params, now_epoch)
    except SmsNotSendable:
        values = [("time", str(now_epoch))] + [
            (sms_key, str(params.get(params_key) or "")) for sms_key, params_key in _SMS_FIELDS
        ]
    return _sms_text([(key, _SMS_MASK if key in _SMS_MASKED and value else value) for key, value in values])


# --------------------------------------------------------------------------------------------------
# §10.1 File commands, §5.3 / §12.3 certificates
# --------------------------------------------------------------------------------------------------

_FILE_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
# §7.3: everything the server sends a C device stays under 4000 bytes (its JSON buffer is 5000).
_C_PAYLOAD_LIMIT = 4000


def _check_filename(filename: str) -> None:
    if not filename or filename in (".", ".."):
        raise ValueError(f"invalid filename {filename!r}")
    if any(character in filename for character in '"/\\') or _has_control_character(filename):
        raise ValueError(f"filename must not contain '\"', '/', '\\' or control characters: {filename!r}")


def file_command_payload(
    message_id: int | str,
    reply_to: str,
    method: str,
    filename: str | None = None,
    url: str | None = None,
) -> bytes:
    """§10.1: ``{"message_id": "<id>", "reply_to": "<topic>", "method": "<M>", "filename": …, "url": …}``.

    Keys in that order; ``filename`` and ``url`` are left out when None. The method decides which are
    required (GET: optional filename, no url; POST/PUT: both; DELETE: filename). ValueError otherwise,
    or for a filename with ``"``, ``/``, ``\\`` or controls, or a payload of 4000 bytes or more.
    """
    identifier = _message_id_text(message_id)
    if method not in _FILE_METHODS:
        raise ValueError(f"method must be one of {sorted(_FILE_METHODS)}, got {method!r}")
    needs_filename = method in ("POST", "PUT", "DELETE")
    if needs_filename and filename is None:
        raise ValueError(f"{method} needs a filename")
    if (method in ("POST", "PUT")) != (url is not None):
        raise ValueError("url is required for POST and PUT and not allowed otherwise")
    if not reply_to:
        raise ValueError("reply_to must not be empty")
    _require_plain_value("reply_to", reply_to)
    parts = [f'"message_id": "{identifier}"', f'"reply_to": "{reply_to}"', f'"method": "{method}"']
    if filename is not None:
        _check_filename(filename)
        parts.append(f'"filename": "{filename}"')
    if url is not None:
        if not url:
            raise ValueError("url must not be empty")
        _require_plain_value("url", url)
        parts.append(f'"url": "{url}"')
    encoded = _encode("{" + ", ".join(parts) + "}")
    if len(encoded) >= _C_PAYLOAD_LIMIT:
        raise ValueError(f"file command is {len(encoded)} bytes; C devices need under {_C_PAYLOAD_LIMIT}")
    return encoded


_CERTIFICATE_HEADER = "-----BEGIN CERTIFICATE-----"
# PKCS#8 only: Java loads the key with an RSA KeyFactory and a PKCS8EncodedKeySpec (§5.3).
_PRIVATE_KEY_HEADER = "-----BEGIN PRIVATE KEY-----"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _pem_field(name: str, pem: str, header: str) -> str:
    """PEM text as it appears in the JSON: newlines as the two-character ``\\n`` escape (§5.3)."""
    text = pem.replace("\r\n", "\n")
    if not text.lstrip().startswith(header):
        raise ValueError(f"{name} must be a PEM starting with {header}")
    if '"' in text or "\\" in text or _has_control_character(text.replace("\n", "")):
        raise ValueError(f"{name} must not contain '\"', '\\' or control characters other than newlines")
    escaped = text.replace("\n", "\\n")
    if len(escaped) >= PEM_FIELD_LIMIT:
        raise ValueError(f"{name} is {len(escaped)} characters in JSON; C needs under {PEM_FIELD_LIMIT}")
    return escaped


def _certificate_members(certificate_pem: str, key_pem: str) -> str:
    # The literal true is followed by a comma: C would read "true}" as the last, unquoted value.
    certificate = _pem_field("certificate", certificate_pem, _CERTIFICATE_HEADER)
    key = _pem_field("key", key_pem, _PRIVATE_KEY_HEADER)
    return f'"secure_ssl_certificate": true, "certificate": "{certificate}", "key": "{key}"'


def certificate_push_payload(certificate_pem: str, key_pem: str) -> bytes:
    """§12.3 ``updateCert``: ``{"secure_ssl_certificate": true, "certificate": "<PEM>", "key": "<PEM>"}``."""
    return _encode("{" + _certificate_members(certificate_pem, key_pem) + "}")


def provisioning_rc6_payload(client_id: str, auth_token: str, certificate_pem: str, key_pem: str) -> bytes:
    """§5.3 PROVACK rc 6 payload, byte-exact:

    ``{"client_id": "<UUID>", "auth_token": "<token>", "secure_ssl_certificate": true,
    "certificate": "<PEM>", "key": "<PEM>"}``. ValueError for a non-canonical UUID, an empty or
    unsafe token, a PEM that is not a certificate / PKCS#8 key, or a PEM field of 1900+ characters.
    """
    if not _CANONICAL_UUID.fullmatch(client_id):
        raise ValueError(f"client_id must be a canonical lowercase UUID, got {client_id!r}")
    if not auth_token:
        raise ValueError("auth_token must not be empty")
    _require_plain_value("auth_token", auth_token)
    members = _certificate_members(certificate_pem, key_pem)
    return _encode(f'{{"client_id": "{client_id}", "auth_token": "{auth_token}", {members}}}')

"""Everything the resource commands print: rich tables for people, ``--json`` for scripts, errors.

Errors are one line on stderr, ``error: <what happened and what to do>``, and an exit code:
0 ok, 2 usage error, 3 API error, 4 connection error (the values of ``cli/main.py``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from enum import IntEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output is not squeezed into 80 columns: tables keep their natural width there.
UNBOUNDED_WIDTH = 4096


def _stdout() -> Console:
    """A console on the current stdout (looked up per call, so redirections are honoured)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else UNBOUNDED_WIDTH)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else UNBOUNDED_WIDTH)


class ExitCode(IntEnum):
    """The CLI's exit codes: scripts tell success, usage, API and connection errors apart."""

    OK = 0
    USAGE = 2
    API_ERROR = 3
    CONNECTION_ERROR = 4


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Print one error line on stderr and return the Exit to raise."""
    line = Text.assemble(("error:", "red"), " ", " ".join(message.split()))
    _stderr().print(line, soft_wrap=True)
    return typer.Exit(int(code))


def print_json(data: Any) -> None:
    """The server's JSON, one document on one line."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def text(value: Any) -> str:
    """A JSON value as a table cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(text(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key}={text(item)}" for key, item in value.items() if item is not None)
    return str(value)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """One row per record, the given fields as columns."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        if column == "id" or column.endswith("_id"):
            # Ids are what people copy into the next command: never shorten them.
            table.add_column(column, no_wrap=True, min_width=36)
        else:
            table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*(Text(text(row.get(column))) for column in columns))
        count += 1
    if count == 0:
        _stdout().print(f"{title}: none")
        return
    _stdout().print(table)


def print_record(title: str, record: Mapping[str, Any]) -> None:
    """One record as a two-column table of field and value."""
    table = Table("field", "value", title=title, title_justify="left", show_header=False)
    for field, value in record.items():
        table.add_row(field, Text(text(value)))
    _stdout().print(table)


def print_line(message: str) -> None:
    """A plain line (confirmations, tokens), never wrapped or styled."""
    _stdout().print(Text(message), soft_wrap=True)

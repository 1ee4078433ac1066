"""Logging set-up: one line per event, `event key=value ...`, to standard error."""

from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    """`2026-01-01T00:00:00.000Z INFO instamsg.app ready http=8080 ...`: greppable and machine-readable."""

    converter = time.gmtime  # type: ignore[assignment]  # stdlib stub is narrower than the runtime

    def format(self, record: logging.LogRecord) -> str:
        timestamp = self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z"
        line = f"{timestamp} {record.levelname} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log duplicates ours and logs query strings, which may carry tokens.
    logging.getLogger("uvicorn.access").disabled = True

"""Connection states of a Channel."""

from __future__ import annotations

from typing import Final

CONNECTING: Final = 0  # socket open, waiting for CONNECT
CONNECTED: Final = 1  # CONNACK 0 sent: the session is attached
CLOSED: Final = 2  # closing or closed: no packet is handled any more

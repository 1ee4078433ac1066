"""What the device protocol needs from storage, as Protocols (implemented in `instamsg.store`)."""

from __future__ import annotations

import logging
from typing import Final, Protocol

CREATOR_SERVER: Final = "InstaMsg"
CREATOR_CLIENT: Final = "client"

logger = logging.getLogger("instamsg.protocol.client_log")


class ClientLog(Protocol):
    """A client's log (spec §9.2, §9.3): appended synchronously, written in batches off the hot path."""

    def write(
        self, client_id: str, tenant_id: str, level: str, message: str, *, creator: str = CREATOR_SERVER
    ) -> None: ...


class ServerLogOnly:
    """Until a store-backed log is wired in: entries go to the server log only."""

    def write(
        self, client_id: str, tenant_id: str, level: str, message: str, *, creator: str = CREATOR_SERVER
    ) -> None:
        logger.info("client_log client=%s creator=%s level=%s %s", client_id, creator, level, message)

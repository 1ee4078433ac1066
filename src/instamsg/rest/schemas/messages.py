"""publishMessage body and the message representation (spec §2.4.3, §2.5.5)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Strict

from instamsg.rest.schemas.common import Flag, RequestModel, ResponseModel, Text, Timestamp


class MessagePublish(RequestModel):
    """Every field is optional here so that an unknown tenant or client is reported first (404);
    the service checks the rules (topic required, qos 1-3, id 1-65535 for qos 2 and 3)."""

    id: Annotated[int, Strict()] | None = Field(
        None, description="Caller's correlation id, 1-65535; required for qos 2 and 3, stored only."
    )
    type: Literal["pub", "p2p"] = Field(
        "pub", description="`pub` (default), or `p2p`: `topic` is then the UUID of a client of the tenant."
    )
    topic: Annotated[str, Strict()] | None = Field(
        None, description="Required. A topic name matching one of the client's pub_topics."
    )
    payload: Text = Field("", description="UTF-8 text; send binary content as base64 or hex.")
    qos: Annotated[int, Strict()] = Field(
        1, description="1 = at most once (MQTT QoS 0), 2 = at least once (QoS 1), 3 = exactly once (QoS 2)."
    )
    duplicate: Flag = Field(
        False, description="Stored, and sent as the DUP flag on deliveries at MQTT QoS 1 and 2 (never QoS 0)."
    )
    save: Flag = Field(True, description="Store the message in history (default); false only delivers it.")


class ReleaseOut(ResponseModel):
    released_at: str
    delivered_to: int


class MessageOut(ResponseModel):
    id: str
    tenant_id: str
    client_id: str = Field(description="The publisher's UUID.")
    type: Literal["pub", "p2p"]
    topic: str
    payload: str
    qos: int = Field(description="On the 1-3 scale of the product document.")
    client_message_id: int | None
    duplicate: bool
    saved: bool
    source: Literal["rest", "mqtt"]
    direction: Literal["sent", "received"]
    envelope: dict[str, Any] | None = Field(description="Only for p2p messages; null for pub.")
    delivered_to: int = Field(description="Connections the message was handed to when published.")
    created_at: Timestamp
    releases: list[ReleaseOut]


class MessagePage(ResponseModel):
    items: list[MessageOut]
    next_cursor: str | None = Field(description="Pass as `cursor` with the same filters for the next page.")

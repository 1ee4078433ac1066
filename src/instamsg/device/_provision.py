"""Provisioning (spec §5): trade a provisioning id and key for the client's UUID and auth token."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass

from instamsg.device._errors import (
    DeviceConnectionError,
    ProvisioningError,
    ProvisioningKeyRejectedError,
    ProvisioningNotAllowedError,
    ProvisioningUnavailableError,
    UnknownProvisioningIdError,
)
from instamsg.device._transport import Transport, open_stream
from instamsg.mqtt import MQTT_3_1, Connect, FrameDecoder, MqttError, Provack, encode

__all__ = ["ProvisionedCredentials", "provision"]

PROVISIONING_CLIENT_ID = "PROVISIONING"
UUID_LENGTH = 36

_FAILURES: dict[int, tuple[type[ProvisioningError], str]] = {
    1: (ProvisioningError, "the server does not accept this protocol"),
    2: (UnknownProvisioningIdError, "no client has this provisioning id"),
    3: (ProvisioningUnavailableError, "the server is unavailable; try again later"),
    4: (ProvisioningKeyRejectedError, "wrong provisioning key"),
    5: (
        ProvisioningNotAllowedError,
        "provisioning not allowed: client blocked, tenant inactive or already connected",
    ),
}


@dataclass(frozen=True, slots=True)
class ProvisionedCredentials:
    """What provisioning returns: the client's UUID and auth token, plus a certificate (rc 6)."""

    client_id: str
    auth_token: str
    certificate: str | None = None
    key: str | None = None


def parse_provack(packet: Provack) -> ProvisionedCredentials:
    """The credentials of a PROVACK, or the ProvisioningError of its return code."""
    if packet.return_code == 0:
        text = packet.payload.decode("ascii", errors="replace")
        if len(text) <= UUID_LENGTH + 1:
            raise ProvisioningError(0, "the server answered success without credentials")
        # Characters 0-35 are the UUID, 36 the separator, the rest the token (spec §5.3).
        return ProvisionedCredentials(client_id=text[:UUID_LENGTH], auth_token=text[UUID_LENGTH + 1 :])
    if packet.return_code == 6:
        try:
            data = json.loads(packet.payload)
            return ProvisionedCredentials(
                client_id=str(data["client_id"]),
                auth_token=str(data["auth_token"]),
                certificate=str(data["certificate"]),
                key=str(data["key"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ProvisioningError(6, "the server sent an unreadable certificate payload") from None
    error_class, message = _FAILURES.get(packet.return_code, (ProvisioningError, "provisioning refused"))
    return_code = packet.return_code
    raise error_class(return_code, message)


async def provision(
    host: str,
    port: int,
    provisioning_id: str,
    key: str = "",
    *,
    transport: Transport = "tcp",
    ssl_context: ssl.SSLContext | None = None,
    websocket_path: str = "/mqtt",
    timeout: float = 30.0,  # noqa: ASYNC109 - the PROVACK wait, as in the official libraries
) -> ProvisionedCredentials:
    """Provision with layout P (MQIsdp/3, ClientIdentifier ``PROVISIONING``) and read the PROVACK.

    Raises a ProvisioningError subclass for rc 1-5, DeviceConnectionError when the server is not
    reached or answers something else.
    """
    stream = await open_stream(
        host, port, transport, ssl_context=ssl_context, path=websocket_path, connect_timeout=timeout
    )
    connect = Connect(
        protocol_name="MQIsdp",
        protocol_level=MQTT_3_1,
        clean_start=True,
        keep_alive=60,
        client_id=PROVISIONING_CLIENT_ID,
        username=provisioning_id,
        # Like the Python library: no password flag at all for an empty key.
        password=key.encode() if key else None,
    )
    decoder = FrameDecoder(server_side=False, protocol_level=MQTT_3_1)
    try:
        await stream.write(encode(connect, MQTT_3_1))
        async with asyncio.timeout(timeout):
            while True:
                data = await stream.read()
                if not data:
                    raise DeviceConnectionError(f"{host}:{port} closed the connection without a PROVACK")
                try:
                    packets = decoder.feed(data)
                except MqttError as error:
                    raise DeviceConnectionError(f"invalid answer to provisioning: {error}") from None
                for packet in packets:
                    if isinstance(packet, Provack):
                        return parse_provack(packet)
                    raise DeviceConnectionError(
                        f"expected PROVACK, got {type(packet).__name__}: is this an InstaMsg server?"
                    )
    except TimeoutError:
        raise DeviceConnectionError(f"no PROVACK from {host}:{port} within {timeout} s") from None
    finally:
        await stream.close()

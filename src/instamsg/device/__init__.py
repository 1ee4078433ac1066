"""InstaMsg device SDK: an asyncio MQTT client for devices, built on ``instamsg.mqtt``.

    from instamsg.device import DeviceClient, provision

    credentials = await provision("localhost", 1883, "356938035643809", "KEY01a")
    async with DeviceClient("localhost", 1883, credentials.client_id, credentials.auth_token) as device:
        await device.subscribe("sub1", qos=1)
        async for message in device.messages():
            ...

MQTT QoS here is MQTT's own 0-2 (the REST API uses the product document's 1-3).
"""

from instamsg.device._client import DeviceClient, DeviceMessage, ServerLogHandler
from instamsg.device._errors import (
    BadCredentialsError,
    ConnectRefusedError,
    DeviceConnectionError,
    DeviceError,
    NotAuthorizedError,
    NotConnectedError,
    ProvisioningError,
    ProvisioningKeyRejectedError,
    ProvisioningNotAllowedError,
    ProvisioningUnavailableError,
    ReplyTimeoutError,
    ServerUnavailableError,
    UnknownProvisioningIdError,
    UnsupportedProtocolError,
)
from instamsg.device._provision import ProvisionedCredentials, parse_provack, provision
from instamsg.device._transport import Transport, client_ssl_context

__all__ = [
    "BadCredentialsError",
    "ConnectRefusedError",
    "DeviceClient",
    "DeviceConnectionError",
    "DeviceError",
    "DeviceMessage",
    "NotAuthorizedError",
    "NotConnectedError",
    "ProvisionedCredentials",
    "ProvisioningError",
    "ProvisioningKeyRejectedError",
    "ProvisioningNotAllowedError",
    "ProvisioningUnavailableError",
    "ReplyTimeoutError",
    "ServerLogHandler",
    "ServerUnavailableError",
    "Transport",
    "UnknownProvisioningIdError",
    "UnsupportedProtocolError",
    "client_ssl_context",
    "parse_provack",
    "provision",
]

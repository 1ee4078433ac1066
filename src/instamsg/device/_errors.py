"""Exceptions of the device SDK: one class per failure a device application can act on."""

from __future__ import annotations

__all__ = [
    "BadCredentialsError",
    "ConnectRefusedError",
    "DeviceConnectionError",
    "DeviceError",
    "NotAuthorizedError",
    "NotConnectedError",
    "ProvisioningError",
    "ProvisioningKeyRejectedError",
    "ProvisioningNotAllowedError",
    "ProvisioningUnavailableError",
    "ReplyTimeoutError",
    "ServerUnavailableError",
    "UnknownProvisioningIdError",
    "UnsupportedProtocolError",
    "refusal_for",
]


class DeviceError(Exception):
    """Base of every exception of ``instamsg.device``."""


class DeviceConnectionError(DeviceError):
    """The broker could not be reached, or the connection broke before the exchange completed."""


class NotConnectedError(DeviceError):
    """An operation needs a connection and there is none (closed, or reconnecting)."""


class ReplyTimeoutError(DeviceError, TimeoutError):
    """A p2p ``send`` got no reply within its timeout."""


class ConnectRefusedError(DeviceError):
    """The broker answered CONNECT with a refusal; ``code`` is the CONNACK return or reason code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} (CONNACK {code:#04x})")
        self.code = code


class UnsupportedProtocolError(ConnectRefusedError):
    """Code 1 / 0x84: the broker does not speak this protocol level."""


class ServerUnavailableError(ConnectRefusedError):
    """Code 3 / 0x88: the broker cannot serve now; retrying later may work."""


class BadCredentialsError(ConnectRefusedError):
    """Code 4 / 0x86: unknown client id or wrong auth token."""


class NotAuthorizedError(ConnectRefusedError):
    """Code 5 / 0x87: the client is blocked, its tenant inactive, or its certificate missing."""


_REFUSALS: dict[int, tuple[type[ConnectRefusedError], str]] = {
    1: (UnsupportedProtocolError, "the broker does not support this MQTT version"),
    0x84: (UnsupportedProtocolError, "the broker does not support this MQTT version"),
    3: (ServerUnavailableError, "the broker is unavailable"),
    0x88: (ServerUnavailableError, "the broker is unavailable"),
    4: (BadCredentialsError, "unknown client id or wrong auth token"),
    0x86: (BadCredentialsError, "unknown client id or wrong auth token"),
    5: (NotAuthorizedError, "not authorised: client blocked, tenant inactive or certificate missing"),
    0x87: (NotAuthorizedError, "not authorised: client blocked, tenant inactive or certificate missing"),
}


def refusal_for(code: int) -> ConnectRefusedError:
    """The exception for a refusing CONNACK code."""
    error_class, message = _REFUSALS.get(code, (ConnectRefusedError, "the broker refused the connection"))
    return error_class(code, message)


class ProvisioningError(DeviceError):
    """The broker refused provisioning; ``return_code`` is the PROVACK code (spec §5.4)."""

    def __init__(self, return_code: int, message: str) -> None:
        super().__init__(f"{message} (PROVACK rc {return_code})")
        self.return_code = return_code


class UnknownProvisioningIdError(ProvisioningError):
    """rc 2: no client has this provisioning id."""


class ProvisioningUnavailableError(ProvisioningError):
    """rc 3: the server's store is unavailable; retry later."""


class ProvisioningKeyRejectedError(ProvisioningError):
    """rc 4: the provisioning key does not match."""


class ProvisioningNotAllowedError(ProvisioningError):
    """rc 5: client blocked, tenant inactive, or keyless provisioning no longer allowed."""

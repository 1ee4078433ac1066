"""Exceptions of the REST SDK: one class per API error code a caller can act on.

Hierarchy::

    InstaMsgError
    ├── ConnectionFailedError               refused connection, DNS failure, timeout, broken transfer
    ├── UnexpectedResponseError             a 2xx answer that is not the JSON the operation returns
    └── ApiError(status, code, message, details)   the server's error body (spec §2.6)
        ├── BadRequestError                 400
        │   ├── InvalidJsonError                invalid_json
        │   ├── InvalidRequestError             invalid_request
        │   ├── UnknownFieldError               unknown_field
        │   ├── ValidationFailedError           validation_failed
        │   ├── InvalidParameterError           invalid_parameter
        │   ├── InvalidTimestampError           invalid_timestamp
        │   ├── InvalidTimeRangeError           invalid_time_range
        │   ├── InvalidCursorError              invalid_cursor
        │   ├── MissingFileFieldError           missing_file_field
        │   ├── InvalidQosError                 invalid_qos
        │   ├── InvalidTopicError               invalid_topic
        │   ├── InvalidTopicFilterError         invalid_topic_filter
        │   └── UnsupportedGrantTypeError       unsupported_grant_type
        ├── AuthenticationError             401
        │   ├── InvalidClientError              invalid_client (wrong client key or secret)
        │   └── InvalidTokenError               invalid_token (details.reason: expired, invalidated, unknown)
        ├── PermissionDeniedError           403
        │   ├── AuthTokenNotRetrievableError    auth_token_not_retrievable
        │   ├── TopicNotAllowedError            topic_not_allowed
        │   └── ReservedTopicError              reserved_topic
        ├── NotFoundError                   404 not_found
        │   ├── TenantNotFoundError             tenant_not_found
        │   ├── ClientNotFoundError             client_not_found
        │   ├── MessageNotFoundError            message_not_found
        │   └── StoredFileNotFoundError         file_not_found
        ├── MethodNotAllowedError           405 method_not_allowed
        ├── ConflictError                   409
        │   ├── TenantClientQuotaExceededError  tenant_client_quota_exceeded
        │   ├── ProvisioningIdTakenError        provisioning_id_taken
        │   └── SecureCertNotEnabledError       secure_cert_not_enabled
        ├── PayloadTooLargeError            413 payload_too_large
        │   └── FileTooLargeError               file_too_large
        ├── UnsupportedMediaTypeError       415 unsupported_media_type
        ├── UnprocessableError              422
        │   ├── UnknownPeerError                unknown_peer
        │   └── ConfigNotObjectError            config_not_object
        ├── TooManyRequestsError            429
        │   └── TenantMessageQuotaExceededError tenant_message_quota_exceeded
        └── ServerError                     5xx
            ├── InternalServerError             internal_error
            └── ServiceUnavailableError         service_unavailable

A code this SDK does not know yet becomes the class of its HTTP status (for instance a new 404 code is a
``NotFoundError``), or a plain ``ApiError`` for a status not listed; ``error.code`` always holds the
server's code.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

import httpx

__all__ = [
    "ApiError",
    "AuthTokenNotRetrievableError",
    "AuthenticationError",
    "BadRequestError",
    "ClientNotFoundError",
    "ConfigNotObjectError",
    "ConflictError",
    "ConnectionFailedError",
    "FileTooLargeError",
    "InstaMsgError",
    "InternalServerError",
    "InvalidClientError",
    "InvalidCursorError",
    "InvalidJsonError",
    "InvalidParameterError",
    "InvalidQosError",
    "InvalidRequestError",
    "InvalidTimeRangeError",
    "InvalidTimestampError",
    "InvalidTokenError",
    "InvalidTopicError",
    "InvalidTopicFilterError",
    "MessageNotFoundError",
    "MethodNotAllowedError",
    "MissingFileFieldError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ProvisioningIdTakenError",
    "ReservedTopicError",
    "SecureCertNotEnabledError",
    "ServerError",
    "ServiceUnavailableError",
    "StoredFileNotFoundError",
    "TenantClientQuotaExceededError",
    "TenantMessageQuotaExceededError",
    "TenantNotFoundError",
    "TooManyRequestsError",
    "TopicNotAllowedError",
    "UnexpectedResponseError",
    "UnknownFieldError",
    "UnknownPeerError",
    "UnprocessableError",
    "UnsupportedGrantTypeError",
    "UnsupportedMediaTypeError",
    "ValidationFailedError",
]


class InstaMsgError(Exception):
    """Base of every exception the SDK raises."""


class ConnectionFailedError(InstaMsgError):
    """The server could not be reached or the exchange broke off: refused, DNS, timeout, reset."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.message = message
        self.url = url


class UnexpectedResponseError(InstaMsgError):
    """A success status whose body is not what the operation returns (probably not an InstaMsg server)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ApiError(InstaMsgError):
    """The server answered with its error body ``{"error": {"code", "message", "details"}}``."""

    code: str = "http_error"

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class BadRequestError(ApiError):
    """400: malformed JSON, a bad parameter or field."""


class InvalidJsonError(BadRequestError):
    code = "invalid_json"


class InvalidRequestError(BadRequestError):
    code = "invalid_request"


class UnknownFieldError(BadRequestError):
    code = "unknown_field"


class ValidationFailedError(BadRequestError):
    code = "validation_failed"


class InvalidParameterError(BadRequestError):
    code = "invalid_parameter"


class InvalidTimestampError(BadRequestError):
    code = "invalid_timestamp"


class InvalidTimeRangeError(BadRequestError):
    code = "invalid_time_range"


class InvalidCursorError(BadRequestError):
    """A cursor that is malformed or was produced by a query with other filters."""

    code = "invalid_cursor"


class MissingFileFieldError(BadRequestError):
    """An upload without a ``file`` (or ``uploadedfile``) multipart field."""

    code = "missing_file_field"


class InvalidQosError(BadRequestError):
    """A REST ``qos`` outside the product document's 1-3 scale."""

    code = "invalid_qos"


class InvalidTopicError(BadRequestError):
    code = "invalid_topic"


class InvalidTopicFilterError(BadRequestError):
    code = "invalid_topic_filter"


class UnsupportedGrantTypeError(BadRequestError):
    code = "unsupported_grant_type"


class AuthenticationError(ApiError):
    """401: bad or missing credentials."""


class InvalidClientError(AuthenticationError):
    """The app's client key or secret is wrong."""

    code = "invalid_client"


class InvalidTokenError(AuthenticationError):
    """The access token is unknown, expired or invalidated, even after one renewal."""

    code = "invalid_token"


class PermissionDeniedError(ApiError):
    """403: authenticated but not allowed."""


class AuthTokenNotRetrievableError(PermissionDeniedError):
    """A device client's auth token is shown only at creation and reset (spec S5)."""

    code = "auth_token_not_retrievable"


class TopicNotAllowedError(PermissionDeniedError):
    """The topic matches none of the publishing client's ``pub_topics``."""

    code = "topic_not_allowed"


class ReservedTopicError(PermissionDeniedError):
    """Topics under ``instamsg/`` are device commands: use their own endpoints."""

    code = "reserved_topic"


class NotFoundError(ApiError):
    """404: unknown resource, or one that belongs to another app."""

    code = "not_found"


class TenantNotFoundError(NotFoundError):
    code = "tenant_not_found"


class ClientNotFoundError(NotFoundError):
    code = "client_not_found"


class MessageNotFoundError(NotFoundError):
    """Unknown message id, or a message published with ``save=False``."""

    code = "message_not_found"


class StoredFileNotFoundError(NotFoundError):
    """No file of that name is stored for the client (named so as not to shadow the builtin)."""

    code = "file_not_found"


class MethodNotAllowedError(ApiError):
    code = "method_not_allowed"


class ConflictError(ApiError):
    """409: the request conflicts with the current state."""


class TenantClientQuotaExceededError(ConflictError):
    """The tenant already holds ``max_clients`` clients."""

    code = "tenant_client_quota_exceeded"


class ProvisioningIdTakenError(ConflictError):
    """Another client already uses this provisioning id (unique server-wide)."""

    code = "provisioning_id_taken"


class SecureCertNotEnabledError(ConflictError):
    code = "secure_cert_not_enabled"


class PayloadTooLargeError(ApiError):
    code = "payload_too_large"


class FileTooLargeError(PayloadTooLargeError):
    code = "file_too_large"


class UnsupportedMediaTypeError(ApiError):
    code = "unsupported_media_type"


class UnprocessableError(ApiError):
    """422: well-formed but semantically invalid."""


class UnknownPeerError(UnprocessableError):
    """A p2p ``topic`` that is not the UUID of a client of the same tenant."""

    code = "unknown_peer"


class ConfigNotObjectError(UnprocessableError):
    """updateClientConfig with a body that is not a JSON object."""

    code = "config_not_object"


class TooManyRequestsError(ApiError):
    """429: the tenant's message budget is spent."""


class TenantMessageQuotaExceededError(TooManyRequestsError):
    code = "tenant_message_quota_exceeded"


class ServerError(ApiError):
    """5xx: the server failed or a dependency of it is down."""


class InternalServerError(ServerError):
    code = "internal_error"


class ServiceUnavailableError(ServerError):
    code = "service_unavailable"


_BY_CODE: Final[dict[str, type[ApiError]]] = {
    error_class.code: error_class
    for error_class in (
        InvalidJsonError,
        InvalidRequestError,
        UnknownFieldError,
        ValidationFailedError,
        InvalidParameterError,
        InvalidTimestampError,
        InvalidTimeRangeError,
        InvalidCursorError,
        MissingFileFieldError,
        InvalidQosError,
        InvalidTopicError,
        InvalidTopicFilterError,
        UnsupportedGrantTypeError,
        InvalidClientError,
        InvalidTokenError,
        AuthTokenNotRetrievableError,
        TopicNotAllowedError,
        ReservedTopicError,
        NotFoundError,
        TenantNotFoundError,
        ClientNotFoundError,
        MessageNotFoundError,
        StoredFileNotFoundError,
        MethodNotAllowedError,
        TenantClientQuotaExceededError,
        ProvisioningIdTakenError,
        SecureCertNotEnabledError,
        PayloadTooLargeError,
        FileTooLargeError,
        UnsupportedMediaTypeError,
        UnknownPeerError,
        ConfigNotObjectError,
        TenantMessageQuotaExceededError,
        InternalServerError,
        ServiceUnavailableError,
    )
}

_BY_STATUS: Final[dict[int, type[ApiError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: UnprocessableError,
    429: TooManyRequestsError,
}


def error_class_for(status: int, code: str) -> type[ApiError]:
    """The most specific class for a code, else the class of the status, else ``ApiError``."""
    known = _BY_CODE.get(code)
    if known is not None:
        return known
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, ApiError)


def error_from_response(response: httpx.Response) -> ApiError:
    """Build the exception for an error response; bodies that are not the API's shape still map."""
    status = response.status_code
    code = "http_error"
    message = f"HTTP {status} {response.reason_phrase}".strip()
    details: dict[str, Any] = {}
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("code"), str):
            code = error["code"]
        if isinstance(error.get("message"), str) and error["message"]:
            message = error["message"]
        if isinstance(error.get("details"), dict):
            details = error["details"]
    return error_class_for(status, code)(status, code, message, details)


def is_invalid_token(response: httpx.Response) -> bool:
    """A 401 that an access-token renewal may cure (not a wrong client key or secret)."""
    if response.status_code != 401:
        return False
    try:
        body = response.json()
    except ValueError:
        challenge: str = response.headers.get("www-authenticate", "")
        return challenge.lower().startswith("bearer")
    error = body.get("error") if isinstance(body, dict) else None
    return isinstance(error, dict) and error.get("code") == "invalid_token"


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error and the exceptions it was raised from (httpcore and anyio wrap the socket's own)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _describe(error: httpx.TransportError) -> str:
    """A few words on why the exchange failed."""
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    for cause in _causes(error):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "unknown host name"
    text = " ".join(str(error).split())
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "unknown host name"
    return text or type(error).__name__


@contextmanager
def map_exceptions(url: str) -> Iterator[None]:
    """Turn httpx transport failures into ``ConnectionFailedError`` naming the server."""
    try:
        yield
    except httpx.TransportError as error:
        reason = _describe(error)
        raise ConnectionFailedError(f"cannot reach {url}: {reason}", url=url) from error

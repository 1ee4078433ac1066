"""Domain errors: one class per failure a caller can act on.

Hierarchy::

    DomainError(code, message, details)
    ├── ValidationFailed            a field breaks a rule (400)
    │   ├── InvalidTopicFilter
    │   ├── InvalidTopic
    │   ├── InvalidQos
    │   ├── InvalidParameter
    │   ├── UnknownField
    │   ├── InvalidTimestamp
    │   ├── InvalidTimeRange
    │   └── InvalidCursor
    ├── Unauthenticated             bad or missing credentials (401)
    │   ├── InvalidClientCredentials
    │   └── InvalidAccessToken
    ├── Forbidden                   authenticated but not allowed (403)
    ├── NotFound                    unknown resource, or another app's (404)
    ├── Conflict                    conflicts with the current state (409)
    ├── PayloadTooLarge             a payload above the configured limit (413)
    ├── Unprocessable               well-formed but semantically invalid (422)
    ├── QuotaExceeded               tenant message budget spent (429)
    └── ServiceUnavailable          a dependency is down (503)

Each carries a stable snake_case ``code``; the REST layer maps the class to an HTTP status in one place.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A failure with a stable code, a human sentence and structured details."""

    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details or {}


class ValidationFailed(DomainError):
    code = "validation_failed"


class InvalidRequest(ValidationFailed):
    code = "invalid_request"


class UnknownField(ValidationFailed):
    code = "unknown_field"


class InvalidParameter(ValidationFailed):
    code = "invalid_parameter"


class InvalidTopicFilter(ValidationFailed):
    code = "invalid_topic_filter"


class InvalidTopic(ValidationFailed):
    code = "invalid_topic"


class InvalidQos(ValidationFailed):
    code = "invalid_qos"


class InvalidTimestamp(ValidationFailed):
    code = "invalid_timestamp"


class InvalidTimeRange(ValidationFailed):
    code = "invalid_time_range"


class InvalidCursor(ValidationFailed):
    code = "invalid_cursor"


class UnsupportedGrantType(ValidationFailed):
    code = "unsupported_grant_type"


class Unauthenticated(DomainError):
    code = "invalid_token"


class InvalidClientCredentials(Unauthenticated):
    code = "invalid_client"


class InvalidAccessToken(Unauthenticated):
    code = "invalid_token"


class Forbidden(DomainError):
    code = "forbidden"


class AuthTokenNotRetrievable(Forbidden):
    code = "auth_token_not_retrievable"


class TopicNotAllowed(Forbidden):
    code = "topic_not_allowed"


class ReservedTopic(Forbidden):
    code = "reserved_topic"


class NotFound(DomainError):
    code = "not_found"


class TenantNotFound(NotFound):
    code = "tenant_not_found"

    def __init__(self, tenant_id: str):
        super().__init__(f"No tenant with id {tenant_id!r}.", details={"tenant_id": tenant_id})


class ClientNotFound(NotFound):
    code = "client_not_found"

    def __init__(self, client_id: str):
        super().__init__(f"No client with id {client_id!r} in this tenant.", details={"client_id": client_id})


class AppNotFound(NotFound):
    code = "app_not_found"


class MessageNotFound(NotFound):
    code = "message_not_found"

    def __init__(self, message_id: str):
        super().__init__(
            f"No stored message with id {message_id!r} for this client.", details={"message_id": message_id}
        )


class Conflict(DomainError):
    code = "conflict"


class TenantClientQuotaExceeded(Conflict):
    code = "tenant_client_quota_exceeded"


class ProvisioningIdTaken(Conflict):
    code = "provisioning_id_taken"


class SecureCertNotEnabled(Conflict):
    code = "secure_cert_not_enabled"


class PayloadTooLarge(DomainError):
    code = "payload_too_large"


class Unprocessable(DomainError):
    """Well-formed but semantically invalid (422)."""

    code = "unprocessable"


class UnknownPeer(Unprocessable):
    code = "unknown_peer"


class QuotaExceeded(DomainError):
    code = "tenant_message_quota_exceeded"


class ServiceUnavailable(DomainError):
    code = "service_unavailable"

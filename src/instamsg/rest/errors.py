"""The one JSON error shape of the REST API (spec D12), and the mapping of every failure onto it."""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from instamsg.domain import errors
from instamsg.rest.responses import JSONResponse

logger = logging.getLogger(__name__)

_STATUS_BY_CLASS: Final[tuple[tuple[type[errors.DomainError], int], ...]] = (
    (errors.ValidationFailed, 400),
    (errors.Unauthenticated, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.PayloadTooLarge, 413),
    (errors.Unprocessable, 422),
    (errors.QuotaExceeded, 429),
    (errors.ServiceUnavailable, 503),
)

# The product document's camelCase names, used by the RapidAPI wrapper (spec §2.1).
CAMEL_CASE_ALIASES: Final = {
    "maxClients": "max_clients",
    "maxMessages": "max_messages",
    "subTopics": "sub_topics",
    "pubTopics": "pub_topics",
    "secureCertEnabled": "secure_cert_enabled",
    "tenantId": "tenant_id",
    "clientId": "client_id",
    "accessToken": "access_token",
    "provisioningId": "provisioning_params.provisioning_id",
    "provisioningKey": "provisioning_params.provisioning_key",
    "gsmMsisdn": "provisioning_params.gsm_msisdn",
    "gsmApn": "provisioning_params.gsm_apn",
    "gsmUsername": "provisioning_params.gsm_username",
    "gsmPassword": "provisioning_params.gsm_password",
    "gsmSimPin": "provisioning_params.gsm_sim_pin",
    "gsmSendSms": "provisioning_params.gsm_send_sms",
    "gsmIsdCode": "provisioning_params.gsm_isd_code",
    "macId": "mac_id",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def status_for(error: errors.DomainError) -> int:
    for error_class, status in _STATUS_BY_CLASS:
        if isinstance(error, error_class):
            return status
    return 500


def domain_error_response(error: errors.DomainError) -> JSONResponse:
    status = status_for(error)
    headers: dict[str, str] = {}
    if isinstance(error, errors.InvalidClientCredentials):
        headers["WWW-Authenticate"] = 'Basic realm="instamsg"'
    elif isinstance(error, errors.Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if error.details else "Bearer"
    return error_response(status, error.code, error.message, error.details, headers)


def _field_path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path


def validation_error_response(error: RequestValidationError) -> JSONResponse:
    """Translate FastAPI/pydantic validation errors into our codes; the first error decides."""
    problems = list(error.errors())
    first = problems[0] if problems else {"type": "value_error", "loc": (), "msg": "invalid request"}
    kind = first.get("type", "")
    location = tuple(first.get("loc", ()))
    source = location[0] if location else "body"
    field = _field_path(location[1:])
    if kind == "json_invalid":
        return error_response(400, "invalid_json", "The request body is not valid JSON.", {})
    if source in ("query", "path", "header"):
        message = f"Query parameter {field!r} is invalid: {first.get('msg', 'invalid value')}."
        return error_response(400, "invalid_parameter", message, {"field": field})
    if kind == "extra_forbidden":
        name = str(location[-1])
        details: dict[str, Any] = {"field": field}
        suggestion = CAMEL_CASE_ALIASES.get(name)
        message = f"Unknown field {field!r}."
        if suggestion:
            details["did_you_mean"] = suggestion
            message += f" Did you mean {suggestion!r}? Field names are snake_case."
        return error_response(400, "unknown_field", message, details)
    if kind == "missing" and not field:
        return error_response(400, "invalid_request", "A JSON object body is required.", {})
    if kind == "missing":
        return error_response(400, "validation_failed", f"{field} is required.", {"field": field})
    if not field:
        return error_response(400, "invalid_request", "The request body must be a JSON object.", {})
    if field == "qos":
        # Any qos other than the integers 1-3 is invalid_qos (spec §2.5.5), whatever its JSON type.
        message = "qos must be 1 (at most once), 2 (at least once) or 3 (exactly once)."
        return error_response(400, "invalid_qos", message, {"field": "qos", "accepted": [1, 2, 3]})
    reason = str(first.get("msg", "invalid value"))
    if reason.startswith("Value error, "):
        reason = reason.removeprefix("Value error, ")
    return error_response(400, "validation_failed", f"{field}: {reason}.", {"field": field})


def install_error_handlers(app: FastAPI) -> None:
    async def on_domain_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, errors.DomainError)
        return domain_error_response(error)

    async def on_validation_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return validation_error_response(error)

    async def on_http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 404:
            return error_response(404, "not_found", "No such resource.", {"path": request.url.path})
        if error.status_code == 405:
            return error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on this path.",
                {"method": request.method},
                headers=dict(error.headers or {}),
            )
        if error.status_code == 400:
            # FastAPI's "There was an error parsing the body", e.g. JSON nested too deeply to decode.
            return error_response(400, "invalid_json", "The request body could not be parsed as JSON.", {})
        return error_response(error.status_code, "http_error", str(error.detail), {})

    async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
        # Never leak internals: log with the traceback, answer with a sentence.
        logger.exception("request_failed method=%s path=%s", request.method, request.url.path)
        return error_response(500, "internal_error", "The server failed to handle this request.", {})

    app.add_exception_handler(errors.DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)

"""OAuth2 client-credentials endpoints (spec §2.2)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response

from instamsg.domain.errors import InvalidRequest, UnsupportedGrantType
from instamsg.rest.dependencies import BasicCredentials, ServicesDep
from instamsg.rest.schemas.common import ErrorBody
from instamsg.rest.schemas.oauth import InvalidatedOut, TokenOut

router = APIRouter(prefix="/oauth2", tags=["oauth2"])

_ERRORS: dict[int | str, dict[str, object]] = {400: {"model": ErrorBody}, 401: {"model": ErrorBody}}


async def _form_fields(request: Request) -> dict[str, str]:
    """Query parameters, overridden by a urlencoded form body when one is sent."""
    fields = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        body = (await request.body()).decode("utf-8", errors="replace")
        for name, values in parse_qs(body).items():
            fields[name] = values[-1]
    return fields


@router.post(
    "/token",
    response_model=TokenOut,
    responses=_ERRORS,
    summary="getAccessToken",
    description="Client-credentials grant: HTTP Basic with the app's client key and secret, "
    "`grant_type=client_credentials` in the query string or a form body.",
)
async def get_access_token(
    request: Request, response: Response, services: ServicesDep, credentials: BasicCredentials
) -> TokenOut:
    client_key, client_secret = credentials
    fields = await _form_fields(request)
    # Authenticate first so that a wrong secret is never told apart by its grant_type answer.
    await services.apps.authenticate_app(client_key, client_secret)
    grant_type = fields.get("grant_type")
    if not grant_type:  # RFC 6749 §3.1: a parameter sent without a value is treated as omitted.
        raise InvalidRequest("grant_type is required; use grant_type=client_credentials.")
    if grant_type != "client_credentials":
        raise UnsupportedGrantType(
            f"grant_type {grant_type!r} is not supported; use client_credentials.",
            details={"grant_type": grant_type},
        )
    issued = await services.apps.issue_token(client_key, client_secret)
    response.headers["Cache-Control"] = "no-store"
    return TokenOut(access_token=issued.access_token, expires_in=issued.expires_in)


@router.post(
    "/invalidate_token",
    response_model=InvalidatedOut,
    responses=_ERRORS,
    summary="invalidateAccessToken",
    description="Revokes an access token of the authenticated app. Unknown or already invalid tokens "
    "are also answered 200 (RFC 7009).",
)
async def invalidate_access_token(
    request: Request, services: ServicesDep, credentials: BasicCredentials
) -> InvalidatedOut:
    client_key, client_secret = credentials
    fields = await _form_fields(request)
    token = fields.get("access_token") or fields.get("token")
    if token is None:
        await services.apps.authenticate_app(client_key, client_secret)
        raise InvalidRequest("access_token is required: the token to invalidate.")
    await services.apps.invalidate_token(client_key, client_secret, token)
    return InvalidatedOut()

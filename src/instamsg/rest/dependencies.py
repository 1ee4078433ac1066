"""FastAPI dependencies: the services container and the authenticated app."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPBasic, HTTPBearer

from instamsg.domain.errors import InvalidAccessToken, InvalidClientCredentials
from instamsg.services.activity import ActivityService
from instamsg.services.apps import AppService
from instamsg.services.certificates import CertificateService
from instamsg.services.clients import ClientService
from instamsg.services.commands import CommandService
from instamsg.services.configs import ConfigService
from instamsg.services.files import FileService
from instamsg.services.messages import MessageService
from instamsg.services.telemetry import TelemetryService
from instamsg.services.tenants import TenantService


@dataclass(frozen=True, slots=True)
class Services:
    apps: AppService
    tenants: TenantService
    clients: ClientService
    messages: MessageService
    # Device data (getClientInfo, network logs, config); None where a caller builds Services without them.
    telemetry: TelemetryService | None = None
    configs: ConfigService | None = None
    activity: ActivityService | None = None  # sessions, logs, metrics, remote logging
    certificates: CertificateService | None = None  # reset_certificate (needs the server CA)
    commands: CommandService | None = None  # reboot, update_firmware, control_action (needs a broker)
    files: FileService | None = None  # getFiles, downloadFile, deleteFile, uploadFile (spec §10.5)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


class _DocumentedBearer(HTTPBearer):
    """Declares the scheme in the OpenAPI document (the "Authorize" button of /docs); checks are ours."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _DocumentedBasic(HTTPBasic):
    """Declares the scheme in the OpenAPI document; FastAPI's own check would answer in its own shape."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


bearer_scheme = _DocumentedBearer(
    scheme_name="accessToken", description="An access token from POST /oauth2/token."
)
basic_scheme = _DocumentedBasic(
    scheme_name="appCredentials", description="The app's client key and client secret."
)


async def get_current_app_id(
    request: Request,
    services: ServicesDep,
    _documented: Annotated[None, Depends(bearer_scheme)],
) -> str:
    """The app behind the Bearer token (spec §2.1); 401 invalid_token otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidAccessToken("An access token is required: send Authorization: Bearer <access_token>.")
    return await services.apps.verify_token(token.strip())


CurrentAppId = Annotated[str, Depends(get_current_app_id)]


def basic_credentials(
    request: Request, _documented: Annotated[None, Depends(basic_scheme)]
) -> tuple[str, str]:
    """The client key and secret of an HTTP Basic header; 401 invalid_client otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise InvalidClientCredentials("Send the client key and secret with HTTP Basic authentication.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientCredentials("The HTTP Basic credentials are not valid base64.") from None
    client_key, separator, client_secret = decoded.partition(":")
    if not separator:
        raise InvalidClientCredentials("The HTTP Basic credentials must be <client_key>:<client_secret>.")
    return client_key, client_secret


def api_prefix(request: Request) -> str:
    """`/api/v1` or its alias `/api/beta`, whichever the request used, for Location headers."""
    return "/api/beta" if request.url.path.startswith("/api/beta") else "/api/v1"


TenantIdPath = Annotated[str, Path(alias="tenantId", description="Tenant ID.")]
ClientIdPath = Annotated[str, Path(alias="clientId", description="Client ID (a UUID).")]


BasicCredentials = Annotated[tuple[str, str], Depends(basic_credentials)]

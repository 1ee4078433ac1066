"""create_app: the REST API v1 (and its /api/beta alias) as one FastAPI application."""

from __future__ import annotations

import re

from fastapi import FastAPI

from instamsg import __version__
from instamsg.rest.dependencies import Services
from instamsg.rest.errors import install_error_handlers
from instamsg.rest.middleware import BodyGuard
from instamsg.rest.responses import JSONResponse
from instamsg.rest.routers import activity, clients, commands, device, files, health, messages, oauth, tenants

# uploadFile streams its multipart body and applies the file size limit itself (spec §10.5).
FILE_UPLOAD_PATH = re.compile(r"^/api/(?:v1|beta)/tenants/[^/]+/clients/[^/]+/files/[^/]+$")

DESCRIPTION = """\
The InstaMsg control plane. Get an access token with `POST /oauth2/token` (HTTP Basic with your app's
client key and secret, `grant_type=client_credentials`), then send `Authorization: Bearer <token>`.
Every `/api/v1` path also answers under `/api/beta`. Errors are JSON:
`{"error": {"code", "message", "details"}}`.
"""


def create_app(
    services: Services, *, max_body_bytes: int = 1_048_576, ca_certificate_pem: bytes = b""
) -> FastAPI:
    app = FastAPI(
        title="InstaMsg REST API",
        version=__version__,
        description=DESCRIPTION,
        default_response_class=JSONResponse,
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
    )
    app.state.services = services
    app.state.ca_certificate_pem = ca_certificate_pem
    install_error_handlers(app)
    app.include_router(oauth.router)
    app.include_router(health.router)
    app.include_router(files.download_router)
    for prefix, documented in (("/api/v1", True), ("/api/beta", False)):
        # The beta alias shares handlers; it stays out of the schema so operation ids remain unique.
        app.include_router(tenants.router, prefix=prefix, include_in_schema=documented)
        app.include_router(clients.router, prefix=prefix, include_in_schema=documented)
        app.include_router(messages.router, prefix=prefix, include_in_schema=documented)
        app.include_router(files.router, prefix=prefix, include_in_schema=documented)
        app.include_router(commands.router, prefix=prefix, include_in_schema=documented)
        app.include_router(activity.router, prefix=prefix, include_in_schema=documented)
        app.include_router(device.router, prefix=prefix, include_in_schema=documented)
    app.add_middleware(
        BodyGuard, max_body_bytes=max_body_bytes, json_prefixes=("/api/",), streamed_paths=FILE_UPLOAD_PATH
    )
    return app

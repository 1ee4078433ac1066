"""Liveness and the server CA certificate."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["server"])


@router.get("/health", summary="Liveness probe")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ca.pem",
    summary="The server CA certificate",
    description="Standard MQTT clients verify the TLS listeners with it (spec C5).",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
async def ca_certificate(request: Request) -> Response:
    pem: bytes = request.app.state.ca_certificate_pem
    return Response(pem, media_type="application/x-pem-file")

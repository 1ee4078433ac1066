"""JSON responses with the charset the spec names (spec §2.1)."""

from __future__ import annotations

import fastapi.responses


class JSONResponse(fastapi.responses.JSONResponse):
    media_type = "application/json; charset=utf-8"

"""OAuth2 response bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class InvalidatedOut(BaseModel):
    invalidated: bool = True

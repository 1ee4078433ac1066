"""Shared pydantic building blocks: the strict base model, lenient flags, safe text and timestamps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, Strict

MAX_DATABASE_INTEGER = 2**63 - 1


def parse_flag(value: Any) -> Any:
    """Booleans as the product document sends them: true/false, 1/0, "true"/"false", "1"/"0"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("1", "0", "true", "false"):
        return value.strip().lower() in ("1", "true")
    raise ValueError('must be true or false (1/0, "true"/"false" are accepted)')


def storable_text(value: str) -> str:
    """Text every backend can store: no NUL, no lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


def format_timestamp(value: datetime) -> str:
    """ISO 8601 UTC with milliseconds and Z (spec §2.1)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


Flag = Annotated[bool, BeforeValidator(parse_flag)]
Text = Annotated[str, Strict(), AfterValidator(storable_text)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_DATABASE_INTEGER)]
Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]


class RequestModel(BaseModel):
    """Request bodies: unknown fields are an error (spec §2.1), nothing is coerced silently."""

    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(BaseModel):
    code: str = Field(examples=["validation_failed"])
    message: str
    details: dict[str, Any]


class ErrorBody(BaseModel):
    """Every error response (spec D12)."""

    error: ErrorDetail

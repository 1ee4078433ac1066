"""Tenant request and response bodies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator

from instamsg.rest.schemas.common import Count, Flag, RequestModel, ResponseModel, Text, Timestamp

Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=4096)]


class TenantCreate(RequestModel):
    name: Name = Field(examples=["Company 1"])
    description: Description = ""
    max_clients: Count = Field(description="How many clients the tenant may hold; 0 allows none.")
    max_messages: Count = Field(description="Cumulative message budget of the tenant's clients.")
    active: Flag = True


class TenantUpdate(RequestModel):
    name: Name | None = None
    description: Description | None = None
    max_clients: Count | None = None
    max_messages: Count | None = None
    active: Flag | None = None

    @field_validator("name", "max_clients", "max_messages", "active")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Only given values reach here; null is not "unchanged", it is a mistake worth saying.
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class TenantOut(ResponseModel):
    id: str
    name: str
    description: str
    max_clients: int
    max_messages: int
    messages_used: int
    clients_count: int
    active: bool
    created_at: Timestamp
    updated_at: Timestamp

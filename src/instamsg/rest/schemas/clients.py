"""Client request and response bodies."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, Strict, field_validator

from instamsg.rest.schemas.common import Flag, RequestModel, ResponseModel, Text, Timestamp

Name = Annotated[Text, Field(min_length=1, max_length=255)]
Description = Annotated[Text, Field(max_length=4096)]
ShortText = Annotated[Text, Field(max_length=255)]
# Entries are checked by the domain, so NUL and broken text get 400 invalid_topic_filter (spec §2.5.2).
TopicList = Annotated[list[Annotated[str, Strict()]], Field(max_length=1000)]
ClientTypeName = Literal["device", "user"]


class ProvisioningParams(RequestModel):
    provisioning_id: ShortText | None = Field(None, examples=["356938035643809"])
    provisioning_key: ShortText | None = Field(
        None, description="Alphanumeric, longer than 5 and shorter than 13 characters; case-sensitive."
    )
    gsm_msisdn: ShortText | None = None
    gsm_apn: ShortText | None = None
    gsm_username: ShortText | None = None
    gsm_password: ShortText | None = None
    gsm_sim_pin: ShortText | None = None
    gsm_send_sms: ShortText | Flag | None = Field(None, description='"1" sends the provisioning SMS.')
    gsm_isd_code: ShortText | None = Field(None, examples=["+91"])


class ClientCreate(RequestModel):
    type: ClientTypeName
    name: Name = Field(examples=["pump-7"])
    description: Description | None = None
    sub_topics: TopicList | None = Field(None, examples=[["sub1", "sub2"]])
    pub_topics: TopicList | None = Field(None, examples=[["pub1", "pub2"]])
    secure_cert_enabled: Flag = False
    provisioning_params: ProvisioningParams | None = None


class ClientUpdate(RequestModel):
    type: ClientTypeName | None = None
    name: Name | None = None
    description: Description | None = None
    sub_topics: TopicList | None = None
    pub_topics: TopicList | None = None
    secure_cert_enabled: Flag | None = None
    provisioning_params: ProvisioningParams | None = None
    blocked: Flag | None = None

    @field_validator("type", "name", "secure_cert_enabled", "blocked")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep its value")
        return value


class ProvisioningParamsOut(ResponseModel):
    provisioning_id: str | None
    provisioning_key: str | None = Field(description='Write-only: "********" when set.')
    gsm_msisdn: str | None
    gsm_apn: str | None
    gsm_username: str | None
    gsm_password: str | None = Field(description='Write-only: "********" when set.')
    gsm_sim_pin: str | None = Field(description='Write-only: "********" when set.')
    gsm_send_sms: str | None
    gsm_isd_code: str | None


class ClientOut(ResponseModel):
    id: str
    tenant_id: str
    type: ClientTypeName
    name: str
    description: str
    sub_topics: list[str]
    pub_topics: list[str]
    secure_cert_enabled: bool
    blocked: bool
    state: Literal["online", "offline", "blocked", "provisioned", "unprovisioned"]
    provisioning_params: ProvisioningParamsOut | None
    profile: Literal["legacy-a", "legacy-b", "standard"] | None
    last_connect_at: Timestamp | None
    last_disconnect_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class ClientCreated(ClientOut):
    auth_token: str = Field(description="Shown once; devices connect with it (password = auth token).")


class AuthTokenOut(ResponseModel):
    auth_token: str

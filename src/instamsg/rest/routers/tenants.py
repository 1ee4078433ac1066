"""Tenants: createTenant, getTenants, getSingleTenant, updateTenant, deleteTenant."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status

from instamsg.domain.tenants import Tenant
from instamsg.rest.dependencies import CurrentAppId, ServicesDep, TenantIdPath, api_prefix
from instamsg.rest.schemas.common import ErrorBody, Flag
from instamsg.rest.schemas.tenants import TenantCreate, TenantOut, TenantUpdate

router = APIRouter(tags=["tenants"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 404, 409, 413, 415)
}


def tenant_out(tenant: Tenant) -> TenantOut:
    return TenantOut.model_validate(tenant)


@router.post(
    "/tenants",
    status_code=status.HTTP_201_CREATED,
    response_model=TenantOut,
    responses={**_ERRORS, 201: {"headers": {"Location": {"description": "Path of the new tenant."}}}},
    summary="createTenant",
)
async def create_tenant(
    body: TenantCreate, request: Request, response: Response, app_id: CurrentAppId, services: ServicesDep
) -> TenantOut:
    tenant = await services.tenants.create_tenant(app_id, **body.model_dump())
    response.headers["Location"] = f"{api_prefix(request)}/tenants/{tenant.id}"
    return tenant_out(tenant)


@router.get("/tenants", response_model=list[TenantOut], responses=_ERRORS, summary="getTenants")
async def get_tenants(
    app_id: CurrentAppId,
    services: ServicesDep,
    active: Flag | None = Query(
        None, description="1 lists active tenants, 0 inactive ones; omitted lists both."
    ),
    sort_by: Literal["name", "created_at", "updated_at"] = "created_at",
    sort_order: Literal["asc", "desc"] = "asc",
) -> list[TenantOut]:
    tenants = await services.tenants.list_tenants(
        app_id, active=active, sort_by=sort_by, descending=sort_order == "desc"
    )
    return [tenant_out(tenant) for tenant in tenants]


@router.get("/tenants/{tenantId}", response_model=TenantOut, responses=_ERRORS, summary="getSingleTenant")
async def get_single_tenant(
    tenant_id: TenantIdPath, app_id: CurrentAppId, services: ServicesDep
) -> TenantOut:
    return tenant_out(await services.tenants.get_tenant(app_id, tenant_id))


@router.put("/tenants/{tenantId}", response_model=TenantOut, responses=_ERRORS, summary="updateTenant")
async def update_tenant(
    tenant_id: TenantIdPath,
    body: TenantUpdate,
    app_id: CurrentAppId,
    services: ServicesDep,
) -> TenantOut:
    changes = {
        name: value for name, value in body.model_dump(exclude_unset=True).items() if value is not None
    }
    if "description" in body.model_fields_set and body.description is None:
        changes["description"] = ""
    return tenant_out(await services.tenants.update_tenant(app_id, tenant_id, changes))


@router.delete(
    "/tenants/{tenantId}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_ERRORS,
    summary="deleteTenant",
    description="Deletes the tenant, its clients and everything stored for them, and disconnects them.",
)
async def delete_tenant(tenant_id: TenantIdPath, app_id: CurrentAppId, services: ServicesDep) -> Response:
    await services.tenants.delete_tenant(app_id, tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

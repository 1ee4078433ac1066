"""``instamsg tenants``: list, create, get, update and delete the app's tenants."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from instamsg.api import SortBy, SortOrder, Tenant
from instamsg.cli.commands._common import JsonOption, ProfileOption, api_client
from instamsg.cli.output import ExitCode, fail, print_json, print_line, print_record, print_table

app = typer.Typer(
    help="Tenants: isolated topic namespaces with client and message quotas.", no_args_is_help=True
)

TenantId = Annotated[str, typer.Argument(help="Tenant id.", show_default=False)]
LIST_COLUMNS = ("id", "name", "active", "clients", "messages")


def _row(tenant: Tenant) -> dict[str, Any]:
    data = tenant.to_json()
    data["clients"] = f"{tenant.clients_count}/{tenant.max_clients}"
    data["messages"] = f"{tenant.messages_used}/{tenant.max_messages}"
    return data


def _show(tenant: Tenant, json_output: bool, title: str) -> None:
    if json_output:
        print_json(tenant.to_json())
    else:
        print_record(title, tenant.to_json())


@app.command("list")
def list_tenants(
    active: Annotated[
        bool | None,
        typer.Option("--active/--inactive", help="Only active or only inactive tenants [default: both]."),
    ] = None,
    sort_by: Annotated[SortBy, typer.Option("--sort-by", help="Order by this field.")] = "created_at",
    sort_order: Annotated[SortOrder, typer.Option("--sort-order", help="asc or desc.")] = "asc",
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the app's tenants (getTenants)."""
    with api_client(profile) as api:
        tenants = api.get_tenants(active=active, sort_by=sort_by, sort_order=sort_order)
    if json_output:
        print_json([tenant.to_json() for tenant in tenants])
    else:
        print_table("Tenants", LIST_COLUMNS, [_row(tenant) for tenant in tenants])


@app.command("create")
def create_tenant(
    name: Annotated[str, typer.Option("--name", help="Tenant name, e.g. 'Company 1'.", show_default=False)],
    max_clients: Annotated[
        int, typer.Option("--max-clients", help="How many clients it may hold; 0 allows none.")
    ],
    max_messages: Annotated[
        int, typer.Option("--max-messages", help="Message budget of its clients (cumulative).")
    ],
    description: Annotated[str, typer.Option("--description", help="A short description.")] = "",
    active: Annotated[bool, typer.Option("--active/--inactive", help="Create it active.")] = True,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a tenant (createTenant)."""
    with api_client(profile) as api:
        tenant = api.create_tenant(name, max_clients, max_messages, description=description, active=active)
    _show(tenant, json_output, f"Created tenant {tenant.name}")


@app.command("get")
def get_tenant(tenant_id: TenantId, profile: ProfileOption = None, json_output: JsonOption = False) -> None:
    """Show one tenant (getSingleTenant)."""
    with api_client(profile) as api:
        tenant = api.get_single_tenant(tenant_id)
    _show(tenant, json_output, f"Tenant {tenant.name}")


@app.command("update")
def update_tenant(
    tenant_id: TenantId,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="New description.")] = None,
    max_clients: Annotated[int | None, typer.Option("--max-clients", help="New client limit.")] = None,
    max_messages: Annotated[int | None, typer.Option("--max-messages", help="New message budget.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Activate or deactivate.")
    ] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change a tenant's fields (updateTenant); options left out keep their value."""
    if all(value is None for value in (name, description, max_clients, max_messages, active)):
        raise fail(
            "nothing to update: give --name, --description, --max-clients, --max-messages, "
            "--active or --inactive",
            ExitCode.USAGE,
        )
    with api_client(profile) as api:
        tenant = api.update_tenant(
            tenant_id,
            name=name,
            description=description,
            max_clients=max_clients,
            max_messages=max_messages,
            active=active,
        )
    _show(tenant, json_output, f"Updated tenant {tenant.name}")


@app.command("delete")
def delete_tenant(tenant_id: TenantId, profile: ProfileOption = None) -> None:
    """Delete a tenant with its clients and their data (deleteTenant)."""
    with api_client(profile) as api:
        api.delete_tenant(tenant_id)
    print_line(f"Deleted tenant {tenant_id}")

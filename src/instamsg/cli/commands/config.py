"""``instamsg config``: a device's desired and reported configuration (spec §8)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from instamsg.api import ConfigState
from instamsg.cli.commands._common import ClientArgument, JsonOption, ProfileOption, TenantOption, api_client
from instamsg.cli.output import ExitCode, fail, print_json, print_line, print_table

app = typer.Typer(
    help="Configuration: desired values pushed to a device and the values it reports.", no_args_is_help=True
)


def _value(text: str) -> Any:
    """``KEY=VALUE``'s value: JSON when it parses (120, true, null, "x"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _show(state: ConfigState, json_output: bool) -> None:
    if json_output:
        print_json(state.to_json())
        return
    keys = sorted(set(state.config) | set(state.desired.values) | set(state.reported.values))
    rows = [
        {
            "key": key,
            "effective": json.dumps(state.config.get(key)),
            "desired": json.dumps(state.desired.values[key]) if key in state.desired.values else "",
            "reported": json.dumps(state.reported.values[key]) if key in state.reported.values else "",
            "pending": key in state.pending,
        }
        for key in keys
    ]
    print_table("Configuration", ("key", "effective", "desired", "reported", "pending"), rows)
    print_line(f"version {state.version}")


@app.command("get")
def get_config(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the effective, desired and reported configuration (getClientConfig)."""
    with api_client(profile) as api:
        state = api.get_client_config(tenant_id, client_id)
    _show(state, json_output)


@app.command("set")
def set_config(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    values: Annotated[
        list[str],
        typer.Argument(
            help="KEY=VALUE pairs; VALUE is JSON when it parses (120, true), else text; KEY=null removes.",
            show_default=False,
        ),
    ],
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Merge values into the desired configuration and push the changed keys (updateClientConfig)."""
    changes: dict[str, Any] = {}
    for pair in values:
        key, separator, text = pair.partition("=")
        if not separator or not key:
            raise fail(f"{pair!r} is not KEY=VALUE", ExitCode.USAGE)
        changes[key] = _value(text)
    with api_client(profile) as api:
        state = api.update_client_config(tenant_id, client_id, changes)
    _show(state, json_output)


@app.command("delete")
def delete_config(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Clear the desired configuration; nothing is pushed (deleteClientConfig)."""
    with api_client(profile) as api:
        state = api.delete_client_config(tenant_id, client_id)
    _show(state, json_output)

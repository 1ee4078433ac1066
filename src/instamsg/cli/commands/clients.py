"""``instamsg clients``: list, create, get, update and delete clients; read and reset auth tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal

import typer

from instamsg.api import (
    AuthTokenNotRetrievableError,
    ClientRecord,
    ClientType,
    ProvisioningParams,
    SecureCertNotEnabledError,
    SortBy,
    SortOrder,
    TenantClientQuotaExceededError,
)
from instamsg.cli.commands._common import (
    CursorOption,
    EndOption,
    JsonOption,
    LimitOption,
    ProfileOption,
    SortOrderOption,
    StartOption,
    TenantOption,
    api_client,
    print_page,
)
from instamsg.cli.output import ExitCode, fail, print_json, print_line, print_record, print_table

app = typer.Typer(
    help="Clients: devices and user applications of a tenant, and their auth tokens.", no_args_is_help=True
)

StateFilter = Literal["all", "online", "offline", "blocked", "provisioned", "unprovisioned"]
ClientId = Annotated[str, typer.Argument(help="Client id (UUID).", show_default=False)]
LIST_COLUMNS = ("id", "type", "name", "state", "blocked")
ALL_TENANTS_COLUMNS = ("tenant_id", *LIST_COLUMNS)

Description = Annotated[str | None, typer.Option("--description", help="A short description.")]
SubTopics = Annotated[
    list[str] | None,
    typer.Option("--sub-topic", help="Topic filter it may subscribe to (repeatable; replaces the list)."),
]
PubTopics = Annotated[
    list[str] | None,
    typer.Option("--pub-topic", help="Topic it may publish to, or a peer UUID for p2p (repeatable)."),
]
ProvisioningId = Annotated[
    str | None, typer.Option("--provisioning-id", help="IMEI, MAC or serial number; unique server-wide.")
]
ProvisioningKey = Annotated[
    str | None, typer.Option("--provisioning-key", help="6 to 12 letters and digits, case-sensitive.")
]
GsmMsisdn = Annotated[str | None, typer.Option("--gsm-msisdn", help="SIM phone number, no country code.")]
GsmApn = Annotated[str | None, typer.Option("--gsm-apn", help="Access point name of the mobile network.")]
GsmUsername = Annotated[str | None, typer.Option("--gsm-username", help="APN user name.")]
GsmPassword = Annotated[str | None, typer.Option("--gsm-password", help="APN password (write-only).")]
GsmSimPin = Annotated[str | None, typer.Option("--gsm-sim-pin", help="SIM PIN (write-only).")]
GsmSendSms = Annotated[
    bool | None, typer.Option("--gsm-send-sms/--no-gsm-send-sms", help="Send the provisioning SMS.")
]
GsmIsdCode = Annotated[str | None, typer.Option("--gsm-isd-code", help="Country code, e.g. +91.")]


def _provisioning(
    provisioning_id: str | None,
    provisioning_key: str | None,
    gsm_msisdn: str | None,
    gsm_apn: str | None,
    gsm_username: str | None,
    gsm_password: str | None,
    gsm_sim_pin: str | None,
    gsm_send_sms: bool | None,
    gsm_isd_code: str | None,
) -> ProvisioningParams | None:
    """The provisioning options as ProvisioningParams, or None when none is given."""
    params = ProvisioningParams(
        provisioning_id=provisioning_id,
        provisioning_key=provisioning_key,
        gsm_msisdn=gsm_msisdn,
        gsm_apn=gsm_apn,
        gsm_username=gsm_username,
        gsm_password=gsm_password,
        gsm_sim_pin=gsm_sim_pin,
        gsm_send_sms=None if gsm_send_sms is None else ("1" if gsm_send_sms else "0"),
        gsm_isd_code=gsm_isd_code,
    )
    return params if params.to_request() else None


def _show(client: ClientRecord, json_output: bool, title: str) -> None:
    data = client.to_json()
    if json_output:
        print_json(data)
    else:
        print_record(title, data)


@app.command("list")
def list_clients(
    tenant_id: Annotated[
        str | None, typer.Option("--tenant", help="Tenant id [default: every tenant of the app].")
    ] = None,
    client_type: Annotated[ClientType | None, typer.Option("--type", help="device or user.")] = None,
    secure: Annotated[
        bool | None,
        typer.Option("--secure/--not-secure", help="Only clients with or without secure_cert_enabled."),
    ] = None,
    state: Annotated[StateFilter, typer.Option("--state", help="Only clients in this state.")] = "all",
    sort_by: Annotated[SortBy, typer.Option("--sort-by", help="Order by this field.")] = "created_at",
    sort_order: Annotated[SortOrder, typer.Option("--sort-order", help="asc or desc.")] = "asc",
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the clients of a tenant, or of all the app's tenants (getClients)."""
    with api_client(profile) as api:
        clients = api.get_clients(
            tenant_id, type=client_type, secure=secure, state=state, sort_by=sort_by, sort_order=sort_order
        )
    if json_output:
        print_json([client.to_json() for client in clients])
        return
    columns = LIST_COLUMNS if tenant_id else ALL_TENANTS_COLUMNS
    print_table("Clients", columns, [client.to_json() for client in clients])


@app.command("create")
def create_client(
    tenant_id: TenantOption,
    client_type: Annotated[ClientType, typer.Option("--type", help="device or user.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Client name, e.g. pump-7.", show_default=False)],
    description: Description = None,
    sub_topics: SubTopics = None,
    pub_topics: PubTopics = None,
    secure_cert_enabled: Annotated[
        bool, typer.Option("--secure-cert/--no-secure-cert", help="Require a client certificate on TLS.")
    ] = False,
    provisioning_id: ProvisioningId = None,
    provisioning_key: ProvisioningKey = None,
    gsm_msisdn: GsmMsisdn = None,
    gsm_apn: GsmApn = None,
    gsm_username: GsmUsername = None,
    gsm_password: GsmPassword = None,
    gsm_sim_pin: GsmSimPin = None,
    gsm_send_sms: GsmSendSms = None,
    gsm_isd_code: GsmIsdCode = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Create a client (createClient) and print it with its auth token."""
    provisioning = _provisioning(
        provisioning_id,
        provisioning_key,
        gsm_msisdn,
        gsm_apn,
        gsm_username,
        gsm_password,
        gsm_sim_pin,
        gsm_send_sms,
        gsm_isd_code,
    )
    with api_client(profile) as api:
        try:
            created = api.create_client(
                tenant_id,
                client_type,
                name,
                description=description,
                sub_topics=sub_topics,
                pub_topics=pub_topics,
                secure_cert_enabled=secure_cert_enabled,
                provisioning_params=provisioning,
            )
        except TenantClientQuotaExceededError as error:
            limit = error.details.get("max_clients", "its")
            raise fail(
                f"tenant {tenant_id} already holds its maximum of {limit} clients: raise it with "
                f"`instamsg tenants update {tenant_id} --max-clients N`",
                ExitCode.API_ERROR,
            ) from None
    if json_output:
        print_json(created.to_json())
        return
    print_record(f"Created {created.type} client {created.name}", created.to_json())
    if created.type == "device":
        print_line("Store the auth token now: a device's token is not shown again (only reset).")


@app.command("get")
def get_client(
    client_id: ClientId,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one client (getSingleClient)."""
    with api_client(profile) as api:
        client = api.get_single_client(tenant_id, client_id)
    _show(client, json_output, f"Client {client.name}")


@app.command("update")
def update_client(
    client_id: ClientId,
    tenant_id: TenantOption,
    client_type: Annotated[ClientType | None, typer.Option("--type", help="device or user.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="New name.")] = None,
    description: Description = None,
    sub_topics: SubTopics = None,
    pub_topics: PubTopics = None,
    secure_cert_enabled: Annotated[
        bool | None, typer.Option("--secure-cert/--no-secure-cert", help="Require a client certificate.")
    ] = None,
    blocked: Annotated[
        bool | None, typer.Option("--block/--unblock", help="Block (disconnect and refuse) or unblock.")
    ] = None,
    provisioning_id: ProvisioningId = None,
    provisioning_key: ProvisioningKey = None,
    gsm_msisdn: GsmMsisdn = None,
    gsm_apn: GsmApn = None,
    gsm_username: GsmUsername = None,
    gsm_password: GsmPassword = None,
    gsm_sim_pin: GsmSimPin = None,
    gsm_send_sms: GsmSendSms = None,
    gsm_isd_code: GsmIsdCode = None,
    remove_provisioning: Annotated[
        bool, typer.Option("--remove-provisioning", help="Remove the provisioning parameters.")
    ] = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Change a client (updateClient); options left out keep their value.

    Provisioning options replace the stored parameters as a whole (write-only ones left out are kept).
    """
    provisioning = _provisioning(
        provisioning_id,
        provisioning_key,
        gsm_msisdn,
        gsm_apn,
        gsm_username,
        gsm_password,
        gsm_sim_pin,
        gsm_send_sms,
        gsm_isd_code,
    )
    if provisioning is not None and remove_provisioning:
        raise fail("give provisioning options or --remove-provisioning, not both", ExitCode.USAGE)
    changes = (client_type, name, description, sub_topics, pub_topics, secure_cert_enabled, blocked)
    if provisioning is None and not remove_provisioning and all(value is None for value in changes):
        raise fail(
            "nothing to update: give --name, --description, --type, --sub-topic, --pub-topic, "
            "--secure-cert, --block/--unblock or provisioning options",
            ExitCode.USAGE,
        )
    with api_client(profile) as api:
        client = api.update_client(
            tenant_id,
            client_id,
            type=client_type,
            name=name,
            description=description,
            sub_topics=sub_topics,
            pub_topics=pub_topics,
            secure_cert_enabled=secure_cert_enabled,
            provisioning_params=provisioning,
            remove_provisioning_params=remove_provisioning,
            blocked=blocked,
        )
    _show(client, json_output, f"Updated client {client.name}")


@app.command("delete")
def delete_client(client_id: ClientId, tenant_id: TenantOption, profile: ProfileOption = None) -> None:
    """Delete a client and its data, disconnecting it (deleteClient)."""
    with api_client(profile) as api:
        api.delete_client(tenant_id, client_id)
    print_line(f"Deleted client {client_id}")


def _print_token(token: str, json_output: bool) -> None:
    if json_output:
        print_json({"auth_token": token})
    else:
        print_line(token)


@app.command("token")
def client_token(
    client_id: ClientId,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Print a user client's auth token (getClientAuthToken); device tokens are shown only once."""
    with api_client(profile) as api:
        try:
            token = api.get_client_auth_token(tenant_id, client_id)
        except AuthTokenNotRetrievableError:
            raise fail(
                f"client {client_id} is a device: its auth token is shown only when it is created or reset; "
                f"run `instamsg clients reset-token {client_id} --tenant {tenant_id}` to issue a new one",
                ExitCode.API_ERROR,
            ) from None
    _print_token(token, json_output)


@app.command("reset-token")
def reset_client_token(
    client_id: ClientId,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a new auth token; the old one stops working at once (updateClientAuthToken)."""
    with api_client(profile) as api:
        token = api.update_client_auth_token(tenant_id, client_id)
    _print_token(token, json_output)


@app.command("reset-cert")
def reset_client_certificate(
    client_id: ClientId,
    tenant_id: TenantOption,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", help="Write <client id>.crt and <client id>.key (mode 0600) here."),
    ] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Issue a new client certificate and key, revoking the old one (updateClientCertificate)."""
    with api_client(profile) as api:
        try:
            certificate = api.update_client_certificate(tenant_id, client_id)
        except SecureCertNotEnabledError:
            raise fail(
                f"client {client_id} does not use certificates: enable them with "
                f"`instamsg clients update {client_id} --tenant {tenant_id} --secure-cert` first",
                ExitCode.API_ERROR,
            ) from None
    if output_dir is not None:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / f"{client_id}.crt").write_text(certificate.certificate)
            key_path = output_dir / f"{client_id}.key"
            key_path.touch(mode=0o600)
            key_path.write_text(certificate.key)
        except OSError as error:
            raise fail(f"cannot write the certificate: {error}", ExitCode.USAGE) from None
    if json_output:
        print_json(certificate.to_json())
    elif output_dir is not None:
        print_line(f"Wrote {client_id}.crt and {client_id}.key to {output_dir}")
    else:
        print_line(certificate.certificate.rstrip("\n"))
        print_line(certificate.key.rstrip("\n"))


@app.command("info")
def client_info(
    client_id: ClientId,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show what the device reported: metadata, latest session and network (getClientInfo)."""
    with api_client(profile) as api:
        info = api.get_client_info(tenant_id, client_id)
    if json_output:
        print_json(info.to_json())
    else:
        print_record(f"Client {client_id}", info.to_json())


@app.command("sessions")
def client_sessions(
    client_id: ClientId,
    tenant_id: TenantOption,
    start: StartOption = None,
    end: EndOption = None,
    sort_by: Annotated[
        Literal["connect_time", "disconnect_time"] | None,
        typer.Option("--sort-by", help="Order by this time."),
    ] = None,
    sort_order: SortOrderOption = None,
    limit: LimitOption = 100,
    cursor: CursorOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the client's connections, newest first (getClientSessions)."""
    with api_client(profile) as api:
        page = api.get_client_sessions(
            tenant_id,
            client_id,
            start=start,
            end=end,
            sort_by=sort_by,
            sort_order=sort_order,
            limit=limit,
            cursor=cursor,
        )
    columns = (
        "connect_time",
        "disconnect_time",
        "transport",
        "protocol",
        "remote_address",
        "disconnect_reason",
    )
    print_page("Sessions", columns, [item.to_json() for item in page], page.next_cursor, json_output)


@app.command("network-logs")
def client_network_logs(
    client_id: ClientId,
    tenant_id: TenantOption,
    start: StartOption = None,
    end: EndOption = None,
    mac_id: Annotated[str | None, typer.Option("--mac-id", help="Only this MAC address.")] = None,
    imei: Annotated[str | None, typer.Option("--imei", help="Only this IMEI.")] = None,
    msisdn: Annotated[str | None, typer.Option("--msisdn", help="Only this phone number.")] = None,
    iccid: Annotated[str | None, typer.Option("--iccid", help="Only this SIM card id.")] = None,
    sort_order: SortOrderOption = None,
    limit: LimitOption = 100,
    cursor: CursorOption = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the device's network reports, newest first (getClientNetworkLogs)."""
    with api_client(profile) as api:
        page = api.get_client_network_logs(
            tenant_id,
            client_id,
            start=start,
            end=end,
            mac_id=mac_id,
            imei=imei,
            msisdn=msisdn,
            iccid=iccid,
            sort_order=sort_order,
            limit=limit,
            cursor=cursor,
        )
    columns = ("time", "network_interface", "signal_strength", "antenna_status", "mac_id", "imei")
    print_page("Network logs", columns, [item.to_json() for item in page], page.next_cursor, json_output)


SPARK = " ▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """A one-line chart: one block per bucket, scaled to the largest value."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[1] * len(values)
    return "".join(SPARK[1 + round(value * (len(SPARK) - 2) / top)] for value in values)


@app.command("metrics")
def client_metrics(
    client_id: ClientId,
    tenant_id: TenantOption,
    interval: Annotated[
        Literal["day", "month"], typer.Option("--interval", help="day: 24 hourly buckets; month: 30 daily.")
    ] = "day",
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show the client's traffic counters with a small chart per counter (getClientMetrics)."""
    with api_client(profile) as api:
        metrics = api.get_client_metrics(tenant_id, client_id, interval)
    if json_output:
        print_json(metrics.to_json())
        return
    rows = [
        {
            "counter": name,
            "total": total,
            "chart": sparkline([bucket.counters.get(name, 0) for bucket in metrics.buckets]),
        }
        for name, total in metrics.totals.items()
    ]
    span = f"{metrics.start:%Y-%m-%d %H:%M} to {metrics.end:%Y-%m-%d %H:%M} UTC"
    print_table(f"Metrics, last {interval} ({span})", ("counter", "total", "chart"), rows)


@app.command("logs")
def client_logs(
    client_id: ClientId,
    tenant_id: TenantOption,
    start: StartOption = None,
    end: EndOption = None,
    level: Annotated[
        Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"] | None,
        typer.Option("--level", help="Only this level."),
    ] = None,
    creator: Annotated[
        Literal["InstaMsg", "client"] | None,
        typer.Option("--creator", help="client (device log lines) or InstaMsg (server events)."),
    ] = None,
    limit: LimitOption = 100,
    cursor: CursorOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries (Ctrl-C stops).")
    ] = False,
    poll_seconds: Annotated[
        float, typer.Option("--poll", min=0.1, help="Seconds between polls with --follow.")
    ] = 2.0,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the client's log entries (getClientLogs); --follow prints new ones as they arrive."""
    with api_client(profile) as api:
        page = api.get_client_logs(
            tenant_id,
            client_id,
            start=start,
            end=end,
            level=level,
            creator=creator,
            limit=limit,
            cursor=cursor,
        )
        if not follow:
            columns = ("time", "level", "creator", "message")
            print_page("Logs", columns, [item.to_json() for item in page], page.next_cursor, json_output)
            return
        # Oldest first, then poll for entries newer than the last one printed.
        seen: set[tuple[str, str]] = set()
        last = None
        try:
            entries = list(reversed(page.items))
            while True:
                for entry in entries:
                    key = (entry.to_json().get("time", ""), entry.message)
                    if key in seen:
                        continue
                    seen.add(key)
                    last = entry.time
                    if json_output:
                        print_json(entry.to_json())
                    else:
                        stamp = f"{entry.time:%Y-%m-%d %H:%M:%S}"
                        print_line(f"{stamp} {entry.level:<5} {entry.creator:<8} {entry.message}")
                time.sleep(poll_seconds)
                entries = list(
                    api.iter_client_logs(
                        tenant_id, client_id, start=last, level=level, creator=creator, sort_order="asc"
                    )
                )
        except KeyboardInterrupt:
            return


@app.command("logging")
def client_logging(
    client_id: ClientId,
    tenant_id: TenantOption,
    state: Annotated[
        Literal["on", "off"], typer.Argument(help="on: the device sends its log lines; off: stop.")
    ],
    duration: Annotated[
        int | None, typer.Option("--duration", min=1, help="Seconds before it turns off by itself.")
    ] = None,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Turn remote logging of a device on or off; read the lines with `instamsg clients logs`."""
    with api_client(profile) as api:
        result = api.set_server_logging(tenant_id, client_id, state == "on", duration_seconds=duration)
    if json_output:
        print_json(result.to_json())
    elif result.enabled:
        until = f" until {result.until:%Y-%m-%d %H:%M:%S} UTC" if result.until else ""
        print_line(f"Remote logging of {client_id} is on{until}")
    else:
        print_line(f"Remote logging of {client_id} is off")


@app.command("reboot")
def client_reboot(
    client_id: ClientId,
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Send the reboot command to a device."""
    with api_client(profile) as api:
        result = api.reboot_client(tenant_id, client_id)
    if json_output:
        print_json(result.to_json())
    else:
        print_line("Reboot sent" if result.sent else "The device is offline: nothing was sent")


def _print_command_result(sent: bool, what: str, json_output: bool, data: dict[str, object]) -> None:
    if json_output:
        print_json(data)
    else:
        print_line(f"{what} sent" if sent else "The device is offline: nothing was sent")


@app.command("update-firmware")
def client_update_firmware(
    client_id: ClientId,
    tenant_id: TenantOption,
    payload: Annotated[str, typer.Argument(help="What the device expects, e.g. a firmware URL.")],
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Publish a firmware update command (payload as given) to a device."""
    with api_client(profile) as api:
        result = api.update_firmware(tenant_id, client_id, payload)
    _print_command_result(result.sent, "Firmware update", json_output, result.to_json())


@app.command("control-action")
def client_control_action(
    client_id: ClientId,
    tenant_id: TenantOption,
    payload: Annotated[str, typer.Argument(help="Text, or a JSON object sent as an object.")],
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Publish a control action to a device."""
    action: str | dict[str, object] = payload
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        action = parsed
    with api_client(profile) as api:
        result = api.control_action(tenant_id, client_id, action)
    _print_command_result(result.sent, "Control action", json_output, result.to_json())

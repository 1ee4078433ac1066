"""``instamsg messages``: publish through the REST API, list the history, get and release messages."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from instamsg.api import Message, MessageType, TenantMessageQuotaExceededError
from instamsg.cli.commands._common import (
    AllPagesOption,
    ClientArgument,
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
from instamsg.cli.output import ExitCode, fail, print_json, print_record

app = typer.Typer(
    help="Messages: publish on behalf of a client (REST QoS 1-3), read its history, release again.",
    no_args_is_help=True,
)

LIST_COLUMNS = ("id", "created_at", "type", "direction", "topic", "qos", "payload")
MessageIdArgument = Annotated[str, typer.Argument(help="Message id (UUID).", show_default=False)]


def _show(message: Message, json_output: bool, title: str) -> None:
    if json_output:
        print_json(message.to_json())
    else:
        print_record(title, message.to_json())


@app.command("publish")
def publish(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    topic: Annotated[
        str, typer.Option("--topic", help="Topic (one of the client's pub topics), or a peer UUID for p2p.")
    ],
    payload: Annotated[str, typer.Option("--payload", help="UTF-8 text.")] = "",
    qos: Annotated[
        int,
        typer.Option(
            "--qos",
            min=1,
            max=3,
            help="REST scale: 1 at most once, 2 at least once, 3 exactly once (MQTT QoS 0, 1, 2).",
        ),
    ] = 1,
    message_type: Annotated[
        MessageType, typer.Option("--type", help="pub, or p2p to a peer client.")
    ] = "pub",
    correlation_id: Annotated[
        int | None,
        typer.Option("--id", min=1, max=65535, help="Correlation id 1-65535; required for --qos 2 and 3."),
    ] = None,
    duplicate: Annotated[bool, typer.Option("--duplicate", help="Mark the message as a duplicate.")] = False,
    save: Annotated[bool, typer.Option("--save/--no-save", help="Store it in the history.")] = True,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Publish a message on behalf of a client (publishMessage)."""
    if qos > 1 and correlation_id is None:
        raise fail(f"--qos {qos} needs --id (a correlation id 1-65535)", ExitCode.USAGE)
    with api_client(profile) as api:
        try:
            message = api.publish_message(
                tenant_id,
                client_id,
                topic,
                payload,
                qos=qos,  # type: ignore[arg-type]  # range checked by typer
                type=message_type,
                id=correlation_id,
                duplicate=duplicate,
                save=save,
            )
        except TenantMessageQuotaExceededError:
            raise fail(
                f"tenant {tenant_id} has used its message budget: raise it with "
                f"`instamsg tenants update {tenant_id} --max-messages N`",
                ExitCode.API_ERROR,
            ) from None
    _show(message, json_output, f"Published message {message.id} to {message.delivered_to} connection(s)")


@app.command("list")
def list_messages(
    client_id: ClientArgument,
    tenant_id: TenantOption,
    start: StartOption = None,
    end: EndOption = None,
    message_type: Annotated[
        Literal["pub", "p2p"] | None, typer.Option("--type", help="Only pub or only p2p messages.")
    ] = None,
    sort_order: SortOrderOption = None,
    limit: LimitOption = 100,
    cursor: CursorOption = None,
    every_page: AllPagesOption = False,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the messages a client exchanged, newest first (getMessages)."""
    with api_client(profile) as api:
        if every_page:
            items = list(
                api.iter_messages(
                    tenant_id,
                    client_id,
                    start=start,
                    end=end,
                    type=message_type,
                    sort_order=sort_order,
                    page_size=limit,
                )
            )
            next_cursor = None
        else:
            page = api.get_messages(
                tenant_id,
                client_id,
                start=start,
                end=end,
                type=message_type,
                sort_order=sort_order,
                limit=limit,
                cursor=cursor,
            )
            items, next_cursor = list(page.items), page.next_cursor
    print_page("Messages", LIST_COLUMNS, [item.to_json() for item in items], next_cursor, json_output)


@app.command("get")
def get_message(
    message_id: MessageIdArgument,
    client_id: Annotated[str, typer.Option("--client", help="Client id (UUID).", show_default=False)],
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Show one stored message."""
    with api_client(profile) as api:
        message = api.get_message(tenant_id, client_id, message_id)
    _show(message, json_output, f"Message {message.id}")


@app.command("release")
def release_message(
    message_id: MessageIdArgument,
    client_id: Annotated[str, typer.Option("--client", help="Client id (UUID).", show_default=False)],
    tenant_id: TenantOption,
    profile: ProfileOption = None,
    json_output: JsonOption = False,
) -> None:
    """Deliver a stored message again, as first published (releaseMessage; charged to the budget)."""
    with api_client(profile) as api:
        message = api.release_message(tenant_id, client_id, message_id)
    _show(message, json_output, f"Released message {message.id}")

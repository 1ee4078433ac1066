"""The `instamsg` command: `serve`, `apps`, `db` (and more resource commands as they land)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from instamsg import __version__
from instamsg.cli.commands import clients, config, device_tools, files, login, messages, tenants
from instamsg.cli.output import ExitCode, fail
from instamsg.domain.errors import DomainError
from instamsg.settings import Settings

app = typer.Typer(
    name="instamsg",
    help="InstaMsg: real-time messaging and connectivity platform for the Internet of Things.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
apps_app = typer.Typer(help="API apps: the client key and secret that REST callers authenticate with.")
db_app = typer.Typer(help="Database schema.")
app.add_typer(apps_app, name="apps")
app.add_typer(db_app, name="db")
app.add_typer(tenants.app, name="tenants")
app.add_typer(clients.app, name="clients")
app.add_typer(config.app, name="config")
app.add_typer(files.app, name="files")
app.add_typer(messages.app, name="messages")
app.command("pub")(device_tools.pub)
app.command("sub")(device_tools.sub)
app.command("provision")(device_tools.provision)
app.command("login")(login.login)

stdout = Console()
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="INSTAMSG_DATA_DIR", help="Data directory [default: ./instamsg-data]."),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="INSTAMSG_DATABASE_URL",
        help="sqlite:// or postgresql:// URL [default: SQLite in the data dir].",
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def build_settings(**given: Any) -> Settings:
    """Settings from the options the user gave; unset ones fall back to INSTAMSG_* and defaults."""
    try:
        return Settings(**{name: value for name, value in given.items() if value is not None})
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise fail(
            f"--{field.replace('_', '-')} (INSTAMSG_{field.upper()}): {reason}", ExitCode.USAGE
        ) from None


def run_with_store(settings: Settings, action: Callable[[Any], Awaitable[T]]) -> T:
    """Run `action(store)` on the settings' database, migrated first, and close it."""
    from instamsg.store.store import Store

    async def main() -> T:
        store = Store.from_url(settings.resolved_database_url())
        try:
            await store.upgrade()
            return await action(store)
        finally:
            await store.close()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(main())
    except DomainError as error:
        raise fail(error.message, ExitCode.API_ERROR) from None
    except (OSError, DBAPIError) as error:
        raise fail(f"cannot use the database: {_one_line(error)}", ExitCode.CONNECTION_ERROR) from None


def _one_line(error: BaseException) -> str:
    """The driver's own sentence, without SQLAlchemy's statement dump and background links."""
    original = getattr(error, "orig", None) or error
    return " ".join(str(original).split())


def version_callback(value: bool) -> None:
    if value:
        stdout.print(__version__)
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """InstaMsg command line."""


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    host: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_HOST", help="Bind address [default: 0.0.0.0].")
    ] = None,
    http_port: Annotated[
        str | None,
        typer.Option(
            envvar="INSTAMSG_HTTP_PORT", help="REST API port; 0 = free port, off = disabled [8080]."
        ),
    ] = None,
    mqtt_port: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_MQTT_PORT", help="MQTT over TCP [1883].")
    ] = None,
    mqtts_port: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_MQTTS_PORT", help="MQTT over TLS [8883].")
    ] = None,
    ws_port: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_WS_PORT", help="MQTT over WebSocket [8083].")
    ] = None,
    wss_port: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_WSS_PORT", help="MQTT over secure WebSocket [8084].")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(envvar="INSTAMSG_PUBLIC_URL", help="Base URL of the HTTP service for download URLs."),
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(envvar="INSTAMSG_TLS_CERT", help="PEM server certificate.")
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(envvar="INSTAMSG_TLS_KEY", help="PEM key of --tls-cert.")
    ] = None,
    tls_hostname: Annotated[
        list[str] | None, typer.Option(help="Extra name for the generated server certificate (repeatable).")
    ] = None,
    log_level: Annotated[
        str | None, typer.Option(envvar="INSTAMSG_LOG_LEVEL", help="DEBUG, INFO, WARNING, ERROR.")
    ] = None,
) -> None:
    """Run the whole platform: MQTT broker (TCP, TLS, WebSocket) and REST API, until SIGTERM/SIGINT."""
    from instamsg.app import run
    from instamsg.observability import configure_logging

    settings = build_settings(
        data_dir=data_dir,
        database_url=database_url,
        host=host,
        http_port=http_port,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        ws_port=ws_port,
        wss_port=wss_port,
        public_url=public_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_hostname=tls_hostname or None,
        log_level=log_level,
    )
    configure_logging(settings.log_level)
    try:
        run(settings)
    except (OSError, DBAPIError) as error:
        raise fail(f"cannot start: {_one_line(error)}", ExitCode.CONNECTION_ERROR) from None


@apps_app.command("create")
def apps_create(
    name: Annotated[str, typer.Option("--name", help="A name for the app, e.g. the application using it.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    json_output: JsonOutput = False,
) -> None:
    """Create an API app and print its client key and secret. The secret is shown only this once."""
    from instamsg.services.apps import AppService

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    created = run_with_store(settings, lambda store: AppService(store).create_app(name))
    result = {
        "id": created.app.id,
        "name": created.app.name,
        "client_key": created.app.client_key,
        "client_secret": created.client_secret,
        "created_at": created.app.created_at.isoformat(),
    }
    if json_output:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    stdout.print(f"Created app [bold]{created.app.name}[/bold]")
    stdout.print(f"  client_key:    {created.app.client_key}", highlight=False)
    stdout.print(f"  client_secret: {created.client_secret}", highlight=False)
    stdout.print("Store the secret now: it is kept hashed and cannot be shown again.")


@apps_app.command("list")
def apps_list(
    data_dir: DataDir = None, database_url: DatabaseUrl = None, json_output: JsonOutput = False
) -> None:
    """List API apps (their secrets are never shown)."""
    from instamsg.services.apps import AppService

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    found = run_with_store(settings, lambda store: AppService(store).list_apps())
    rows = [
        {
            "id": row.id,
            "name": row.name,
            "client_key": row.client_key,
            "created_at": row.created_at.isoformat(),
        }
        for row in found
    ]
    if json_output:
        sys.stdout.write(json.dumps(rows) + "\n")
        return
    table = Table("name", "client_key", "created_at", title="API apps")
    for row in rows:
        table.add_row(row["name"], row["client_key"], row["created_at"])
    stdout.print(table)


@apps_app.command("delete")
def apps_delete(
    client_key: Annotated[str, typer.Argument(help="The client key of the app to delete.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Delete an API app, its access tokens, and its tenants with their clients."""
    from instamsg.services.apps import AppService

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    run_with_store(settings, lambda store: AppService(store).delete_app(client_key))
    stdout.print(f"Deleted app {client_key}", highlight=False)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Apply pending schema migrations (serve does this on start too)."""
    from instamsg.store.database import current_revision

    settings = build_settings(data_dir=data_dir, database_url=database_url)
    revision = run_with_store(settings, lambda store: current_revision(store.engine))
    stdout.print(f"Database schema at revision {revision}", highlight=False)


def main() -> None:
    app()

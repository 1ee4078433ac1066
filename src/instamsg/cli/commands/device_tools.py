"""Device tools: ``instamsg pub`` / ``instamsg sub`` as a client (MQTT QoS 0-2) and ``instamsg provision``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar
from urllib.parse import urlsplit

import typer

from instamsg.cli.output import ExitCode, fail, print_json, print_line
from instamsg.device import (
    ConnectRefusedError,
    DeviceClient,
    DeviceConnectionError,
    DeviceError,
    ProvisioningError,
    Transport,
    client_ssl_context,
)
from instamsg.device import (
    provision as provision_device,
)

T = TypeVar("T")

_SCHEMES: dict[str, tuple[Transport, int]] = {
    "mqtt": ("tcp", 1883),
    "tcp": ("tcp", 1883),
    "mqtts": ("tls", 8883),
    "ssl": ("tls", 8883),
    "tls": ("tls", 8883),
    "ws": ("ws", 8083),
    "wss": ("wss", 8084),
}

BrokerOption = Annotated[
    str,
    typer.Option(
        "--broker",
        envvar="INSTAMSG_BROKER",
        help="mqtt://host:port, mqtts://, ws:// or wss:// (INSTAMSG_BROKER).",
    ),
]
ClientIdOption = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        envvar="INSTAMSG_DEVICE_ID",
        help="The client's UUID (INSTAMSG_DEVICE_ID).",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="INSTAMSG_DEVICE_TOKEN",
        help="The client's auth token (INSTAMSG_DEVICE_TOKEN).",
        show_default=False,
    ),
]
InsecureOption = Annotated[
    bool, typer.Option("--insecure", help="Do not verify the server certificate (mqtts, wss).")
]
CaFileOption = Annotated[
    str | None, typer.Option("--ca-file", help="CA certificate to verify the server (e.g. from GET /ca.pem).")
]
QosOption = Annotated[
    int, typer.Option("--qos", min=0, max=2, help="MQTT QoS 0, 1 or 2 (not the REST 1-3 scale).")
]


@dataclass(frozen=True)
class Broker:
    host: str
    port: int
    transport: Transport
    path: str


def parse_broker(url: str) -> Broker:
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    known = _SCHEMES.get(parts.scheme.lower())
    if known is None or not parts.hostname:
        raise fail(f"--broker {url!r}: use mqtt://host:port, mqtts://, ws:// or wss://", ExitCode.USAGE)
    transport, default_port = known
    try:
        port = parts.port or default_port
    except ValueError:
        raise fail(f"--broker {url!r}: invalid port", ExitCode.USAGE) from None
    return Broker(parts.hostname, port, transport, parts.path or "/mqtt")


def _run(action: Awaitable[T], broker: str) -> T:
    """Run the coroutine; device errors become one line and an exit code."""
    try:
        return asyncio.run(action)  # type: ignore[arg-type]
    except ConnectRefusedError as error:
        raise fail(f"the broker refused the client: {error}", ExitCode.API_ERROR) from None
    except ProvisioningError as error:
        raise fail(f"provisioning failed: {error}", ExitCode.API_ERROR) from None
    except DeviceConnectionError as error:
        if "CERTIFICATE_VERIFY_FAILED" in str(error):
            hint = "give the platform's CA with --ca-file (GET /ca.pem), or --insecure"
        else:
            hint = f"is the server running? Check --broker ({broker})"
        raise fail(f"{error}: {hint}", ExitCode.CONNECTION_ERROR) from None
    except DeviceError as error:
        raise fail(str(error), ExitCode.API_ERROR) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _client(
    broker: Broker, client_id: str | None, token: str | None, insecure: bool, ca_file: str | None
) -> DeviceClient:
    if not client_id or not token:
        raise fail(
            "give the client's credentials: --client-id and --token (or INSTAMSG_DEVICE_ID and "
            "INSTAMSG_DEVICE_TOKEN); `instamsg clients create` prints them",
            ExitCode.USAGE,
        )
    context = None
    if broker.transport in ("tls", "wss"):
        context = client_ssl_context(verify=not insecure, ca_file=ca_file)
    return DeviceClient(
        broker.host,
        broker.port,
        client_id,
        token,
        transport=broker.transport,
        ssl_context=context,
        websocket_path=broker.path,
        reconnect=False,
    )


def pub(
    topic: Annotated[str, typer.Argument(help="Topic, or a peer client's UUID for p2p.", show_default=False)],
    message: Annotated[str, typer.Argument(help="Payload (UTF-8 text).", show_default=False)],
    qos: QosOption = 0,
    retain: Annotated[bool, typer.Option("--retain", help="Ask the broker to retain the message.")] = False,
    broker: BrokerOption = "mqtt://localhost:1883",
    client_id: ClientIdOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
    ca_file: CaFileOption = None,
) -> None:
    """Publish one message over MQTT as a client (device or user)."""
    client = _client(parse_broker(broker), client_id, token, insecure, ca_file)

    async def main() -> None:
        async with client:
            await client.publish(topic, message, qos=qos, retain=retain)

    _run(main(), broker)
    print_line(f"Published to {topic}")


def sub(
    topics: Annotated[list[str], typer.Argument(help="Topic filters to subscribe to.", show_default=False)],
    qos: QosOption = 0,
    count: Annotated[
        int | None, typer.Option("--count", "-n", min=1, help="Exit after this many messages.")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout", min=0.1, help="Give up (exit code 3) when no message came for this many seconds."
        ),
    ] = None,
    broker: BrokerOption = "mqtt://localhost:1883",
    client_id: ClientIdOption = None,
    token: TokenOption = None,
    insecure: InsecureOption = False,
    ca_file: CaFileOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per message.")] = False,
) -> None:
    """Subscribe over MQTT as a client and print each message as `topic payload` (Ctrl-C stops)."""
    client = _client(parse_broker(broker), client_id, token, insecure, ca_file)

    async def main() -> int:
        received = 0
        async with client:
            for topic_filter in topics:
                granted = await client.subscribe(topic_filter, qos)
                if granted >= 0x80:
                    raise DeviceError(
                        f"the broker refused the subscription to {topic_filter!r}: not in sub_topics"
                    )
            # On stderr so that stdout holds messages only; scripts wait for this line.
            print(f"Subscribed to {', '.join(topics)}", file=sys.stderr, flush=True)
            iterator = client.messages().__aiter__()
            while count is None or received < count:
                try:
                    item = await asyncio.wait_for(iterator.__anext__(), timeout)
                except TimeoutError:
                    return 1
                except StopAsyncIteration:
                    break
                received += 1
                if json_output:
                    print_json(
                        {"topic": item.topic, "payload": item.text, "qos": item.qos, "retain": item.retain}
                    )
                else:
                    print_line(f"{item.topic} {item.text}")
        return 0

    code = _run(main(), broker)
    if code:
        raise fail(f"no message within {timeout} s", ExitCode.API_ERROR)


def provision(
    provisioning_id: Annotated[
        str, typer.Argument(help="The provisioning id (IMEI, MAC, serial).", show_default=False)
    ],
    key: Annotated[
        str, typer.Option("--key", envvar="INSTAMSG_PROVISIONING_KEY", help="The provisioning key.")
    ] = "",
    broker: BrokerOption = "mqtt://localhost:1883",
    insecure: InsecureOption = False,
    ca_file: CaFileOption = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for the answer.")
    ] = 30.0,
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir", help="Write <client id>.crt and .key (mode 0600) here, for secure clients."
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Provision a device: trade its provisioning id and key for its client id and auth token."""
    target = parse_broker(broker)
    context = None
    if target.transport in ("tls", "wss"):
        context = client_ssl_context(verify=not insecure, ca_file=ca_file)
    credentials = _run(
        provision_device(
            target.host,
            target.port,
            provisioning_id,
            key,
            transport=target.transport,
            ssl_context=context,
            websocket_path=target.path,
            timeout=timeout,
        ),
        broker,
    )
    result = {"client_id": credentials.client_id, "auth_token": credentials.auth_token}
    if credentials.certificate is not None:
        result |= {"certificate": credentials.certificate, "key": credentials.key or ""}
        if output_dir is not None:
            _write_certificate(
                output_dir, credentials.client_id, credentials.certificate, credentials.key or ""
            )
    if json_output:
        print_json(result)
        return
    print_line(f"client_id:  {credentials.client_id}")
    print_line(f"auth_token: {credentials.auth_token}")
    if credentials.certificate is not None and output_dir is not None:
        print_line(f"certificate and key: {output_dir / credentials.client_id}.crt and .key")
    elif credentials.certificate is not None:
        print_line(credentials.certificate.rstrip("\n"))
        print_line((credentials.key or "").rstrip("\n"))


def _write_certificate(directory: Path, client_id: str, certificate: str, key: str) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{client_id}.crt").write_text(certificate)
        key_path = directory / f"{client_id}.key"
        key_path.touch(mode=0o600)
        key_path.write_text(key)
    except OSError as error:
        raise fail(f"cannot write the certificate: {error}", ExitCode.USAGE) from None

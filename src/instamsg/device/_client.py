"""DeviceClient: an asyncio MQTT 3.1.1 (or 5.0) client speaking the InstaMsg device protocol.

It connects as a standard client (username = client UUID, password = auth token), so it subscribes to
its own inbox and ``instamsg/clients/<UUID>/#`` itself (spec C7), and renews those subscriptions and
the application's after every reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from instamsg import __version__
from instamsg.device._errors import (
    ConnectRefusedError,
    DeviceConnectionError,
    DeviceError,
    NotConnectedError,
    ReplyTimeoutError,
    ServerUnavailableError,
    refusal_for,
)
from instamsg.device._transport import Stream, Transport, open_stream
from instamsg.mqtt import (
    MQTT_3_1_1,
    MQTT_5,
    Connack,
    Connect,
    Disconnect,
    FrameDecoder,
    MqttError,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    encode,
)

__all__ = ["DeviceClient", "DeviceMessage"]

logger = logging.getLogger("instamsg.device")

API_VERSION = "1.0"
CONFIG_VERSION = "1.0"
# Python 1.1.2 turns remote logging off by itself after 30 minutes (spec §9.1).
LOGGING_AUTO_OFF_SECONDS = 1800.0
LOG_FORMAT = "[%(asctime)s] %(levelname)s in %(module)s:%(lineno)d: %(message)s"

ConfigHandler = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A message received by the device.

    For p2p messages on the inbox, ``message_id``/``reply_to``/``body`` come from the envelope; answer
    with ``DeviceClient.reply`` or ``fail``. For other topics they are None and ``payload`` is raw.
    """

    topic: str
    payload: bytes
    qos: int
    retain: bool = False
    message_id: str | None = None
    reply_to: str | None = None
    body: Any = None
    status: int | None = None
    envelope: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The payload as text (invalid UTF-8 replaced)."""
        return self.payload.decode("utf-8", errors="replace")

    @property
    def is_p2p(self) -> bool:
        return self.reply_to is not None


class _Acks:
    """Futures of packets waiting for their acknowledgement, keyed by packet id."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[Packet]] = {}

    def expect(self, packet_id: int) -> asyncio.Future[Packet]:
        future: asyncio.Future[Packet] = asyncio.get_running_loop().create_future()
        self.waiting[packet_id] = future
        return future

    def resolve(self, packet_id: int, packet: Packet) -> None:
        future = self.waiting.pop(packet_id, None)
        if future is not None and not future.done():
            future.set_result(packet)

    def fail_all(self, error: BaseException) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(error)
        self.waiting.clear()


class DeviceClient:
    """Asyncio device client of InstaMsg.

    ::

        async with DeviceClient("localhost", 1883, client_id, auth_token) as device:
            await device.subscribe("sub1", qos=1)
            async for message in device.messages():
                print(message.topic, message.text)
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        auth_token: str,
        *,
        transport: Transport = "tcp",
        ssl_context: ssl.SSLContext | None = None,
        websocket_path: str = "/mqtt",
        protocol_level: int = MQTT_3_1_1,
        keep_alive: int = 60,
        mqtt_client_identifier: str | None = None,
        reconnect: bool = True,
        reconnect_delay: float = 1.0,
        reconnect_max_delay: float = 60.0,
        connect_timeout: float = 10.0,
        reply_timeout: float = 10.0,
        http_url: str | None = None,
        subscribe_own_topics: bool = True,
    ) -> None:
        if protocol_level not in (MQTT_3_1_1, MQTT_5):
            raise ValueError("protocol_level must be 4 (MQTT 3.1.1) or 5 (MQTT 5.0)")
        self.host = host
        self.port = port
        self.client_id = client_id.lower()
        self.auth_token = auth_token
        self.transport: Transport = transport
        self.ssl_context = ssl_context
        self.websocket_path = websocket_path
        self.protocol_level = protocol_level
        self.keep_alive = keep_alive
        # The broker keys nothing on the MQTT ClientIdentifier (spec §4.4); the UUID is a fine default.
        self.mqtt_client_identifier = (
            self.client_id if mqtt_client_identifier is None else mqtt_client_identifier
        )
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.connect_timeout = connect_timeout
        self.reply_timeout = reply_timeout
        self.http_url = http_url
        self.subscribe_own_topics = subscribe_own_topics
        self.logging_auto_off_seconds = LOGGING_AUTO_OFF_SECONDS

        self._stream: Stream | None = None
        self._write_lock = asyncio.Lock()
        self._acks = _Acks()
        self._next_packet_id = 0
        self._next_message_id = 0
        self._incoming_qos2: set[int] = set()
        self._subscriptions: dict[str, int] = {}
        self._queue: asyncio.Queue[DeviceMessage | BaseException] = asyncio.Queue()
        self._replies: dict[str, asyncio.Future[DeviceMessage]] = {}
        self._config_handlers: list[ConfigHandler] = []
        self._connected = asyncio.Event()
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._log_handler: ServerLogHandler | None = None
        self._logging_off_timer: asyncio.TimerHandle | None = None
        self.connections = 0  # successful CONNACKs so far (reconnects included)

    # Topics of this client (spec §6.1)

    def topic(self, name: str) -> str:
        """``instamsg/clients/<UUID>/<name>``."""
        return f"instamsg/clients/{self.client_id}/{name}"

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    # Connection

    async def __aenter__(self) -> DeviceClient:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exception_type: type[BaseException] | None,
        exception: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect once (errors are raised), then keep the connection up in the background."""
        if self._closing:
            # Reused after close(): forget the end-of-stream marker that close() queued.
            self._queue = asyncio.Queue()
        self._closing = False
        reader = await self._open()
        self._supervisor = asyncio.create_task(
            self._supervise(reader), name=f"instamsg-device-{self.client_id}"
        )

    async def close(self) -> None:
        """Disconnect cleanly and stop reconnecting."""
        self._closing = True
        if self._stream is not None and self.is_connected:
            with contextlib.suppress(DeviceError):
                await self._write(Disconnect())
        await self._drop_connection()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for task in list(self._tasks):
            task.cancel()
        if self._logging_off_timer is not None:
            self._logging_off_timer.cancel()
        self._queue.put_nowait(NotConnectedError("the client is closed"))

    async def _open(self) -> asyncio.Task[None]:
        """Open the stream, CONNECT, wait for CONNACK, start reading, (re)subscribe."""
        stream = await open_stream(
            self.host,
            self.port,
            self.transport,
            ssl_context=self.ssl_context,
            path=self.websocket_path,
            connect_timeout=self.connect_timeout,
        )
        decoder = FrameDecoder(server_side=False, protocol_level=self.protocol_level)
        connect = Connect(
            protocol_name="MQTT",
            protocol_level=self.protocol_level,
            clean_start=True,
            keep_alive=self.keep_alive,
            client_id=self.mqtt_client_identifier,
            username=self.client_id,
            password=self.auth_token.encode(),
        )
        try:
            await stream.write(encode(connect, self.protocol_level))
            connack, early = await asyncio.wait_for(self._read_connack(stream, decoder), self.connect_timeout)
        except TimeoutError:
            await stream.close()
            raise DeviceConnectionError(f"no CONNACK from {self.host}:{self.port}") from None
        except BaseException:
            await stream.close()
            raise
        if connack.reason_code != 0:
            await stream.close()
            raise refusal_for(connack.reason_code)
        self._stream = stream
        self._incoming_qos2.clear()
        self._connected.set()
        self.connections += 1
        reader = asyncio.create_task(self._read_loop(stream, decoder, early))
        filters = dict(self._subscriptions)
        if self.subscribe_own_topics:
            # A standard client gets nothing implicitly (spec C7): inbox and own namespace explicitly.
            filters = {self.client_id: 1, self.topic("#"): 1, **filters}
        if filters:
            try:
                await self._subscribe_many(filters)
            except BaseException:
                reader.cancel()
                await self._drop_connection()
                raise
        return reader

    async def _read_connack(self, stream: Stream, decoder: FrameDecoder) -> tuple[Connack, list[Packet]]:
        """The CONNACK, and any packets that came in the same read after it."""
        while True:
            data = await stream.read()
            if not data:
                raise DeviceConnectionError(f"{self.host}:{self.port} closed the connection before CONNACK")
            try:
                packets = decoder.feed(data)
            except MqttError as error:
                raise DeviceConnectionError(f"invalid answer to CONNECT: {error}") from None
            if packets:
                first, *rest = packets
                if not isinstance(first, Connack):
                    raise DeviceConnectionError(f"expected CONNACK, got {type(first).__name__}")
                return first, rest

    async def _supervise(self, reader: asyncio.Task[None]) -> None:
        """Wait for the connection to end; reconnect with exponential backoff unless closing."""
        delay = self.reconnect_delay
        while True:
            # wait() never raises the reader's own outcome (ended, failed or cancelled).
            await asyncio.wait([reader])
            await self._drop_connection()
            if self._closing:
                return
            if not self.reconnect:
                self._queue.put_nowait(NotConnectedError("connection lost"))
                return
            while not self._closing:
                await asyncio.sleep(delay)
                try:
                    reader = await self._open()
                except (DeviceConnectionError, ServerUnavailableError) as error:
                    logger.info("reconnect to %s:%s failed: %s", self.host, self.port, error)
                    delay = min(delay * 2, self.reconnect_max_delay)
                    continue
                except ConnectRefusedError as error:
                    # Wrong token, blocked client: retrying cannot help; tell the reader of messages().
                    self._queue.put_nowait(error)
                    return
                delay = self.reconnect_delay
                break

    async def _drop_connection(self) -> None:
        self._connected.clear()
        stream, self._stream = self._stream, None
        self._acks.fail_all(NotConnectedError("connection lost"))
        if stream is not None:
            await stream.close()

    async def _read_loop(self, stream: Stream, decoder: FrameDecoder, early: list[Packet]) -> None:
        keep_alive = asyncio.create_task(self._keep_alive_loop())
        try:
            for packet in early:
                await self._handle(packet)
            while True:
                if self.keep_alive:
                    # Silence for 1.5 keep-alive periods means the connection is dead.
                    try:
                        data = await asyncio.wait_for(stream.read(), self.keep_alive * 1.5)
                    except TimeoutError:
                        return
                else:
                    data = await stream.read()
                if not data:
                    return
                try:
                    packets = decoder.feed(data)
                except MqttError as error:
                    logger.warning("closing the connection after an invalid packet: %s", error)
                    return
                for packet in packets:
                    await self._handle(packet)
        finally:
            keep_alive.cancel()

    async def _keep_alive_loop(self) -> None:
        if not self.keep_alive:
            return
        while True:
            await asyncio.sleep(self.keep_alive)
            with contextlib.suppress(DeviceError):
                await self._write(Pingreq())

    async def _write(self, packet: Packet) -> None:
        stream = self._stream
        if stream is None:
            raise NotConnectedError("not connected to the broker")
        data = encode(packet, self.protocol_level)
        async with self._write_lock:
            await stream.write(data)

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self._acks.waiting:
                return self._next_packet_id
        raise DeviceError("65535 packets are waiting for acknowledgement")

    async def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Publish):
            await self._on_publish(packet)
        elif isinstance(packet, Puback | Pubcomp | Suback | Unsuback):
            self._acks.resolve(packet.packet_id, packet)
        elif isinstance(packet, Pubrec):
            if packet.reason_code >= 0x80:
                self._acks.resolve(packet.packet_id, packet)
            else:
                await self._write(Pubrel(packet.packet_id))
        elif isinstance(packet, Pubrel):
            self._incoming_qos2.discard(packet.packet_id)
            await self._write(Pubcomp(packet.packet_id))
        elif isinstance(packet, Disconnect):
            logger.info("the broker disconnected the client (reason %#04x)", packet.reason_code)
        elif isinstance(packet, Pingresp):
            pass

    async def _on_publish(self, packet: Publish) -> None:
        packet_id = packet.packet_id
        if packet.qos == 1 and packet_id is not None:
            await self._write(Puback(packet_id))
        elif packet.qos == 2 and packet_id is not None:
            duplicate = packet_id in self._incoming_qos2
            self._incoming_qos2.add(packet_id)
            await self._write(Pubrec(packet_id))
            if duplicate:
                return
        self._dispatch(packet)

    # Publishing and subscribing (MQTT QoS 0-2)

    async def publish(
        self, topic: str, payload: bytes | str = b"", *, qos: int = 0, retain: bool = False
    ) -> None:
        """Publish; returns when the broker acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP)."""
        if qos not in (0, 1, 2):
            raise ValueError("MQTT QoS must be 0, 1 or 2")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        if qos == 0:
            await self._write(Publish(topic, data, qos=0, retain=retain))
            return
        packet_id = self._packet_id()
        acknowledged = self._acks.expect(packet_id)
        await self._write(Publish(topic, data, qos=qos, retain=retain, packet_id=packet_id))
        answer = await acknowledged
        reason = getattr(answer, "reason_code", 0)
        if reason >= 0x80:
            raise DeviceError(f"the broker refused the publish on {topic!r} (reason {reason:#04x})")

    async def _subscribe_many(self, filters: Mapping[str, int]) -> list[int]:
        packet_id = self._packet_id()
        acknowledged = self._acks.expect(packet_id)
        subscriptions = [
            (topic_filter, SubscriptionOptions(qos=qos)) for topic_filter, qos in filters.items()
        ]
        await self._write(Subscribe(packet_id, subscriptions))
        try:
            answer = await asyncio.wait_for(acknowledged, self.connect_timeout)
        except TimeoutError:
            raise DeviceConnectionError("no SUBACK from the broker") from None
        assert isinstance(answer, Suback)
        return list(answer.reason_codes)

    async def subscribe(self, topic_filter: str, qos: int = 0) -> int:
        """Subscribe (kept across reconnects); returns the granted QoS, or 0x80+ when refused."""
        if qos not in (0, 1, 2):
            raise ValueError("MQTT QoS must be 0, 1 or 2")
        codes = await self._subscribe_many({topic_filter: qos})
        granted = codes[0] if codes else qos
        if granted < 0x80:
            self._subscriptions[topic_filter] = qos
        return granted

    async def unsubscribe(self, topic_filter: str) -> None:
        self._subscriptions.pop(topic_filter, None)
        packet_id = self._packet_id()
        acknowledged = self._acks.expect(packet_id)
        await self._write(Unsubscribe(packet_id, [topic_filter]))
        try:
            await asyncio.wait_for(acknowledged, self.connect_timeout)
        except TimeoutError:
            raise DeviceConnectionError("no UNSUBACK from the broker") from None

    async def messages(self) -> AsyncIterator[DeviceMessage]:
        """Application and p2p messages as they arrive (replies to ``send`` and pushes excluded).

        Ends with the error when the client is closed or a reconnect is refused.
        """
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                if self._closing:
                    return
                raise item
            yield item

    # Routing of what arrives

    def _dispatch(self, packet: Publish) -> None:
        topic = packet.topic
        if topic.lower() == self.client_id:
            self._on_inbox(packet)
        elif topic == self.topic("config/serverToClient"):
            self._on_config(packet.payload)
        elif topic == self.topic("enableServerLogging"):
            self._on_logging_command(packet.payload)
        else:
            self._queue.put_nowait(DeviceMessage(topic, packet.payload, packet.qos, packet.retain))

    def _on_inbox(self, packet: Publish) -> None:
        try:
            envelope = json.loads(packet.payload)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or "reply_to" not in envelope:
            # Python's rule: a non-envelope on the inbox is an ordinary message.
            self._queue.put_nowait(DeviceMessage(packet.topic, packet.payload, packet.qos, packet.retain))
            return
        status = envelope.get("status")
        message = DeviceMessage(
            packet.topic,
            packet.payload,
            packet.qos,
            packet.retain,
            message_id=None if envelope.get("message_id") is None else str(envelope["message_id"]),
            reply_to=str(envelope["reply_to"]),
            body=envelope.get("body"),
            status=int(status) if isinstance(status, int | str) and str(status).isdigit() else None,
            envelope=envelope,
        )
        response_id = envelope.get("response_id")
        if response_id is not None:
            waiting = self._replies.pop(str(response_id), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
            return  # a late reply is dropped, as the official libraries do
        self._queue.put_nowait(message)

    # Peer to peer (spec §7)

    def _new_message_id(self) -> str:
        # A decimal of at most 5 digits: C and Java peers copy it into a 6-byte buffer (spec §7.3).
        self._next_message_id = self._next_message_id % 65535 + 1
        return str(self._next_message_id)

    async def send(
        self,
        peer_id: str,
        body: Any,
        timeout: float | None = None,  # noqa: ASYNC109 - the reply wait, as in the official libraries
        *,
        qos: int = 1,
    ) -> DeviceMessage:
        """Send ``body`` to a peer's inbox and wait for its reply (ReplyTimeoutError after ``timeout``)."""
        message_id = self._new_message_id()
        reply: asyncio.Future[DeviceMessage] = asyncio.get_running_loop().create_future()
        self._replies[message_id] = reply
        envelope = {"message_id": message_id, "reply_to": self.client_id, "body": body}
        try:
            await self.publish(peer_id.lower(), json.dumps(envelope), qos=qos)
            return await asyncio.wait_for(reply, self.reply_timeout if timeout is None else timeout)
        except TimeoutError:
            raise ReplyTimeoutError(f"no reply from {peer_id} to message {message_id}") from None
        finally:
            self._replies.pop(message_id, None)

    async def reply(self, message: DeviceMessage, body: Any, *, qos: int = 1) -> None:
        """Answer a p2p message (``status`` 1)."""
        await self._answer(message, body, 1, qos)

    async def fail(
        self, message: DeviceMessage, error_code: int, error_message: str, *, qos: int = 1
    ) -> None:
        """Answer a p2p message with a failure (``status`` 0)."""
        await self._answer(message, {"error_code": error_code, "error_msg": error_message}, 0, qos)

    async def _answer(self, message: DeviceMessage, body: Any, status: int, qos: int) -> None:
        if message.reply_to is None or message.message_id is None:
            raise ValueError("only p2p messages (with message_id and reply_to) can be answered")
        envelope = {
            "message_id": self._new_message_id(),
            "response_id": message.message_id,
            "reply_to": self.client_id,
            "body": body,
            "status": status,
        }
        await self.publish(message.reply_to, json.dumps(envelope), qos=qos)

    # Configuration (spec §8)

    def on_config(self, handler: ConfigHandler) -> None:
        """Call ``handler(dict)`` (sync or async) for each config push from the server."""
        self._config_handlers.append(handler)

    def _on_config(self, payload: bytes) -> None:
        try:
            config = json.loads(payload)
        except ValueError:
            logger.warning("ignoring a config push that is not JSON: %r", payload[:100])
            return
        if not isinstance(config, dict):
            return
        for handler in self._config_handlers:
            result = handler(config)
            if inspect.isawaitable(result):
                self._start(result)

    async def report_config(self, config: Mapping[str, Any]) -> None:
        """Report the whole configuration (Python form: one object at QoS 1, spec §8.1)."""
        await self.publish(
            self.topic("config/clientToServer"),
            json.dumps({**config, "instamsg_version": CONFIG_VERSION}),
            qos=1,
        )

    async def report_info(self, info: Mapping[str, Any]) -> None:
        """Report device metadata (model, firmware, ...) on ``.../info`` (spec §11)."""
        await self.publish(self.topic("info"), json.dumps(self._versioned(info)), qos=0)

    async def report_network_info(self, network: Mapping[str, Any]) -> None:
        """Report network details (signal_strength, imei, mac_id, ...) on ``.../network`` (spec §11)."""
        await self.publish(self.topic("network"), json.dumps(self._versioned(network)), qos=0)

    @staticmethod
    def _versioned(values: Mapping[str, Any]) -> dict[str, Any]:
        return {**values, "instamsg_version": __version__, "instamsg_api_version": API_VERSION}

    # Remote logging (spec §9)

    def log_handler(self, level: int = logging.DEBUG) -> ServerLogHandler:
        """A logging.Handler publishing records to ``.../logs`` while the server asks for them."""
        if self._log_handler is None:
            self._log_handler = ServerLogHandler(self, level)
        return self._log_handler

    @property
    def server_logging(self) -> bool:
        """Whether the server currently asks for log lines."""
        return self._log_handler is not None and self._log_handler.enabled

    def _on_logging_command(self, payload: bytes) -> None:
        try:
            command = json.loads(payload)
        except ValueError:
            return
        if not isinstance(command, dict):
            return
        handler = self.log_handler()
        # The string "1" only: the integer 1 disables, as in the official Python library.
        handler.enabled = command.get("logging") == "1"
        if self._logging_off_timer is not None:
            self._logging_off_timer.cancel()
            self._logging_off_timer = None
        if handler.enabled:
            self._logging_off_timer = asyncio.get_running_loop().call_later(
                self.logging_auto_off_seconds, setattr, handler, "enabled", False
            )

    def _publish_log_line(self, line: str) -> None:
        if self.is_connected:
            self._start(self.publish(self.topic("logs"), line, qos=0))

    def _start(self, awaitable: Awaitable[Any]) -> None:
        async def run() -> None:
            try:
                await awaitable
            except DeviceError as error:
                logger.debug("background publish failed: %s", error)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Files (spec §10.3)

    async def upload_file(
        self,
        source: str | os.PathLike[str] | bytes,
        filename: str | None = None,
        *,
        http_url: str | None = None,
    ) -> str:
        """Upload a file through the HTTP side channel; returns its download URL."""
        base = http_url or self.http_url
        if base is None:
            raise ValueError("give http_url (the platform's HTTP base URL) to upload files")
        if isinstance(source, bytes):
            if filename is None:
                raise ValueError("filename is required when uploading bytes")
            content = source
        else:
            content = await asyncio.to_thread(_read_file, source)
            filename = filename or os.path.basename(os.fspath(source))
        url = f"{base.rstrip('/')}/api/beta/clients/{self.client_id}/files"
        headers = {"Authorization": self.auth_token, "ClientId": self.client_id}
        try:
            async with httpx.AsyncClient(
                timeout=self.connect_timeout * 3, verify=self.ssl_context or True
            ) as http:
                response = await http.post(
                    url, headers=headers, files={"file": (filename, content, "application/octet-stream")}
                )
        except httpx.HTTPError as error:
            raise DeviceConnectionError(f"cannot upload to {base}: {error}") from None
        if response.status_code != 200:
            raise DeviceError(f"upload refused: HTTP {response.status_code} {response.text.strip()[:200]}")
        return response.text.strip()


def _read_file(path: str | os.PathLike[str]) -> bytes:
    with open(path, "rb") as stream:
        return stream.read()


class ServerLogHandler(logging.Handler):
    """Publishes formatted records on the client's ``logs`` topic while ``enabled``."""

    def __init__(self, client: DeviceClient, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.client = client
        self.enabled = False
        self.setFormatter(logging.Formatter(LOG_FORMAT))
        self._loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        # Our own records would publish about publishing, forever.
        if not self.enabled or record.name.startswith("instamsg.device"):
            return
        try:
            line = self.format(record)
        except Exception:  # a logging handler must never raise
            self.handleError(record)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self.client._publish_log_line(line)
        else:
            self._loop.call_soon_threadsafe(self.client._publish_log_line, line)

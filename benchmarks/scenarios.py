"""The scenarios: what each one measures, its sizes (full and quick), and how it runs on a target."""

from __future__ import annotations

import asyncio
import itertools
import resource
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from benchmarks import procstat
from benchmarks.generator import Credential, Endpoint, FlowResult, FlowRun, MqttConnection, open_connection
from benchmarks.targets import Needs, Target, TargetUnavailable

# Loopback source addresses for the big connection counts: one address has only ~28,000 ephemeral ports.
SOURCE_ADDRESSES = tuple(f"127.0.0.{host}" for host in range(2, 10))
SETTLE_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Scenario:
    """One row of the table. Counts are the full sizes; `quick` holds the smoke-run overrides."""

    name: str
    kind: str  # flow, connect, idle, routing, history, rest
    description: str
    topology: str = "-"
    qos: int = 0
    payload: int = 64
    publishers: int = 1
    subscribers: int = 1
    messages: int = 0  # per publisher
    # Deliveries in flight end to end across the whole scenario (split evenly over the publishers),
    # so 1→1, 1→100 and 100→1 queue the same amount in the broker and their latencies compare.
    window: int = 1000
    sample_every: int = 64
    transport: str = "tcp"
    connections: int = 0
    # Connections opened at once; at most the listen backlog (Mosquitto's is 100) so no SYN is dropped
    # and retried a second later.
    concurrency: int = 100
    subscriptions: int = 0
    database: str | None = None
    time_limit: float = 90.0
    quick: dict[str, Any] = field(default_factory=dict)

    def sized(self, quick: bool) -> Scenario:
        return replace(self, **self.quick) if quick else self

    @property
    def needs(self) -> Needs:
        return Needs(frozenset({self.transport}), self.database, rest=self.kind == "rest")

    @property
    def identities(self) -> int:
        """How many distinct client identities the scenario connects at once."""
        if self.kind in ("connect", "idle"):
            return self.connections if self.kind == "idle" else min(self.connections, 1000)
        routing_connections = -(-self.subscriptions // 1000) if self.kind == "routing" else 0
        return self.publishers + self.subscribers + routing_connections


def _flow(
    name: str, topology: str, publishers: int, subscribers: int, qos: int, messages: int, window: int = 1000
) -> Scenario:
    return Scenario(
        name=name,
        kind="flow",
        description=f"throughput {topology}, QoS {qos}, 64 B, windowed end to end",
        topology=topology,
        qos=qos,
        publishers=publishers,
        subscribers=subscribers,
        messages=messages,
        window=window,
        quick={"messages": max(20, messages // 100), "time_limit": 10.0},
    )


SCENARIOS: list[Scenario] = [
    Scenario(
        "pingpong-qos0",
        "flow",
        "latency with one message in flight, QoS 0",
        topology="1→1",
        messages=20_000,
        window=1,
        sample_every=1,
        quick={"messages": 500, "time_limit": 10.0},
    ),
    Scenario(
        "pingpong-qos1",
        "flow",
        "latency with one message in flight, QoS 1",
        topology="1→1",
        qos=1,
        messages=20_000,
        window=1,
        sample_every=1,
        quick={"messages": 500, "time_limit": 10.0},
    ),
    _flow("throughput-1to1-qos0", "1→1", 1, 1, 0, 1_000_000),
    _flow("throughput-1to1-qos1", "1→1", 1, 1, 1, 400_000),
    _flow("throughput-1to100-qos0", "1→100", 1, 100, 0, 20_000),
    _flow("throughput-1to100-qos1", "1→100", 1, 100, 1, 5_000),
    _flow("throughput-100to1-qos0", "100→1", 100, 1, 0, 10_000),
    # 200 in flight: with 1,000 queued behind its QoS 1 in-flight quota (20), Mosquitto 2.0.11 loses
    # and withholds messages (inflight-quota bugs fixed in 2.0.13); 200 keeps its queue short.
    _flow("throughput-100to1-qos1", "100→1", 100, 1, 1, 4_000, window=200),
    Scenario(
        "connect-rate",
        "connect",
        "CONNECT/CONNACK/DISCONNECT cycles per second, 100 concurrent",
        topology="N clients",
        connections=20_000,
        quick={"connections": 500, "time_limit": 10.0},
    ),
    Scenario(
        "idle-2000",
        "idle",
        "2,000 idle connections with one subscription each: RSS per connection",
        connections=2_000,
        quick={"connections": 200, "time_limit": 10.0},
    ),
    Scenario(
        "idle-50000",
        "idle",
        "50,000 idle connections with one subscription each: RSS per connection",
        connections=50_000,
        time_limit=240.0,
        quick={"connections": 1_000, "time_limit": 15.0},
    ),
    Scenario(
        "routing-10",
        "routing",
        "1→1 QoS 0 throughput with 10 other distinct subscriptions present",
        topology="1→1",
        messages=400_000,
        subscriptions=10,
        quick={"messages": 4_000, "time_limit": 10.0},
    ),
    Scenario(
        "routing-100000",
        "routing",
        "1→1 QoS 0 throughput with 100,000 other distinct subscriptions present",
        topology="1→1",
        messages=400_000,
        subscriptions=100_000,
        time_limit=180.0,
        quick={"messages": 4_000, "subscriptions": 5_000, "time_limit": 15.0},
    ),
    Scenario(
        "tls-1to1",
        "flow",
        "throughput 1→1 over TLS, QoS 0, 64 B",
        topology="1→1",
        transport="tls",
        messages=400_000,
        quick={"messages": 4_000, "time_limit": 10.0},
    ),
    Scenario(
        "websocket-1to1",
        "flow",
        "throughput 1→1 over WebSocket, QoS 0, 64 B",
        topology="1→1",
        transport="ws",
        messages=400_000,
        quick={"messages": 4_000, "time_limit": 10.0},
    ),
    Scenario(
        "history-sqlite",
        "history",
        "saved-message ingest: QoS 1 publishes acknowledged per second, history in SQLite"
        " (PUBACK does not wait for the history write)",
        topology="1→history",
        qos=1,
        messages=200_000,
        database="sqlite",
        quick={"messages": 2_000, "time_limit": 10.0},
    ),
    Scenario(
        "history-postgresql",
        "history",
        "saved-message ingest: QoS 1 publishes acknowledged per second, history in PostgreSQL"
        " (PUBACK does not wait for the history write)",
        topology="1→history",
        qos=1,
        messages=200_000,
        database="postgresql",
        quick={"messages": 2_000, "time_limit": 10.0},
    ),
    Scenario(
        "rest-publish",
        "rest",
        "REST publishMessage requests per second (raw HTTP/1.1 keep-alive, 16 connections)",
        topology="REST→1",
        connections=16,
        messages=20_000,
        quick={"messages": 300, "time_limit": 10.0},
    ),
]


@dataclass(slots=True)
class Measurement:
    """The figures one scenario produced on one target (the runner adds the common fields)."""

    figures: dict[str, Any]
    rss_bytes: int
    cpu: procstat.CpuWindow


def percentiles(samples_ns: list[int]) -> dict[str, float | int | None]:
    """p50/p90/p99 in microseconds (nearest rank)."""
    if not samples_ns:
        return {"p50_us": None, "p90_us": None, "p99_us": None, "samples": 0}
    ordered = sorted(samples_ns)
    last = len(ordered) - 1

    def rank(fraction: float) -> float:
        return round(ordered[min(last, int(fraction * len(ordered)))] / 1000, 1)

    return {"p50_us": rank(0.50), "p90_us": rank(0.90), "p99_us": rank(0.99), "samples": len(ordered)}


async def _connect_all(
    endpoint: Endpoint,
    credentials: list[Credential],
    concurrency: int,
    sources: tuple[str, ...] | None = None,
    deadline: float | None = None,
) -> list[MqttConnection]:
    """Open many connections, `concurrency` at a time, spreading them over source addresses."""
    limiter = asyncio.Semaphore(concurrency)
    cycle = itertools.cycle(sources) if sources else None

    async def one(credential: Credential, source: str | None) -> MqttConnection:
        async with limiter:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("scenario time limit reached while connecting")
            return await open_connection(endpoint, credential, source)

    return list(
        await asyncio.gather(*(one(credential, next(cycle) if cycle else None) for credential in credentials))
    )


def publisher_window(scenario: Scenario) -> int:
    """Messages one publisher may have in flight: the scenario's delivery window over all flows."""
    fanout = scenario.subscribers if scenario.publishers == 1 else 1
    return max(1, scenario.window // (scenario.publishers * fanout))


async def _flow_run(
    scenario: Scenario, broker_pid: int, endpoint: Endpoint, credentials: list[Credential], prefix: str
) -> tuple[FlowResult, procstat.CpuWindow]:
    """Connect publishers and subscribers, subscribe, then measure one windowed run."""
    connections = await _connect_all(endpoint, credentials, 50)
    publishers = connections[: scenario.publishers]
    subscribers = connections[scenario.publishers :]
    try:
        if scenario.publishers == 1:
            topics = [f"bench/{prefix}/0"]
            filters = topics
        else:
            # Fan-in: one topic per publisher, equal lengths so every frame has the same size.
            topics = [f"bench/{prefix}/{index:03d}" for index in range(scenario.publishers)]
            filters = [f"bench/{prefix}/+"]
        await asyncio.gather(*(subscriber.subscribe(filters, scenario.qos) for subscriber in subscribers))
        run = FlowRun(
            publishers,
            subscribers,
            topics,
            scenario.qos,
            scenario.payload,
            scenario.messages,
            publisher_window(scenario),
            scenario.sample_every,
            fanout=scenario.subscribers if scenario.publishers == 1 else 1,
        )
        cpu = procstat.CpuWindow(broker_pid)
        cpu.start()
        result = await run.run(scenario.time_limit)
        cpu.stop()
        return result, cpu
    finally:
        for connection in connections:
            connection.disconnect()


def _flow_figures(scenario: Scenario, result: FlowResult, cpu: procstat.CpuWindow) -> dict[str, Any]:
    duration = max(result.duration, 1e-9)
    figures: dict[str, Any] = {
        "messages": result.published,
        "expected_deliveries": result.expected_deliveries,
        "delivered": result.delivered,
        "loss": result.expected_deliveries - result.delivered,
        "sequence_gaps": result.gaps,
        "duplicates": result.duplicates,
        "duration_s": round(duration, 4),
        "rate": round(result.delivered / duration, 1),
        "rate_unit": "msg/s",
        "window_deliveries": scenario.window,
        "window_per_publisher": publisher_window(scenario),
        "latency": percentiles(result.latencies_ns),
        "completed": result.completed,
        "stalled": result.stalled,
    }
    if scenario.qos:
        figures["publisher_pubacks"] = result.pubacks
    return figures


async def run_flow(scenario: Scenario, target: Target) -> Measurement:
    endpoint = target.endpoint(scenario.transport)
    credentials = await target.credentials(scenario.publishers + scenario.subscribers)
    prefix = scenario.name.replace("-", "_")[:12]
    result, cpu = await _flow_run(scenario, target.pid, endpoint, credentials, prefix)
    return Measurement(_flow_figures(scenario, result, cpu), procstat.rss_bytes(target.pid), cpu)


async def run_routing(scenario: Scenario, target: Target) -> Measurement:
    """Install many distinct subscriptions on other connections, then measure 1→1 through them."""
    endpoint = target.endpoint("tcp")
    per_connection = 1000
    holders = max(1, -(-scenario.subscriptions // per_connection))
    credentials = await target.credentials(holders + 2)
    holder_credentials = credentials[2:]
    holders_open = await _connect_all(endpoint, holder_credentials, 20)
    try:
        remaining = scenario.subscriptions
        subscribing = []
        for index, holder in enumerate(holders_open):
            count = min(per_connection, remaining)
            remaining -= count
            filters = [f"route/{index}/{number}/state" for number in range(count)]
            subscribing.append(holder.subscribe(filters, 0))
        await asyncio.gather(*subscribing)
        # The flow uses the first two identities; the holders keep theirs.
        result, cpu = await _flow_run(scenario, target.pid, endpoint, credentials[:2], "route")
        figures = _flow_figures(scenario, result, cpu)
        figures["subscriptions_present"] = scenario.subscriptions
        return Measurement(figures, procstat.rss_bytes(target.pid), cpu)
    finally:
        for holder in holders_open:
            holder.disconnect()


async def run_connect(scenario: Scenario, target: Target) -> Measurement:
    """Full connection cycles: TCP connect, CONNECT, CONNACK, DISCONNECT, server close."""
    endpoint = target.endpoint("tcp")
    identities = await target.credentials(min(scenario.connections, 1000))
    queue = itertools.islice(itertools.cycle(identities), scenario.connections)
    failures = 0
    completed = 0
    deadline = time.monotonic() + scenario.time_limit

    async def worker() -> None:
        nonlocal failures, completed
        for credential in queue:
            if time.monotonic() > deadline:
                return
            try:
                connection = await open_connection(endpoint, credential)
            except (OSError, TimeoutError):
                failures += 1
                continue
            # The server closes after DISCONNECT, so the client's ephemeral ports never pile up in
            # TIME_WAIT (which slows the kernel's port search and would measure the generator).
            connection.disconnect(wait_for_server=True)
            try:
                async with asyncio.timeout(5):
                    await connection.closed
            except TimeoutError:
                failures += 1
                if connection.transport is not None:
                    connection.transport.abort()
                continue
            completed += 1

    cpu = procstat.CpuWindow(target.pid)
    cpu.start()
    started = time.perf_counter()
    # Identities are reused across workers only after 1,000 connects, so no session is taken over live.
    await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
    duration = time.perf_counter() - started
    cpu.stop()
    figures = {
        "messages": scenario.connections,
        "delivered": completed,
        "loss": scenario.connections - completed,
        "failures": failures,
        "duration_s": round(duration, 4),
        "rate": round(completed / duration, 1),
        "rate_unit": "connects/s",
        "concurrency": scenario.concurrency,
        "completed": completed == scenario.connections,
    }
    return Measurement(figures, procstat.rss_bytes(target.pid), cpu)


class ScenarioSkipped(Exception):
    """The machine cannot run the scenario as specified (the message says which limit)."""


# Descriptors the broker needs beyond one per connection (listeners, logs, database).
FILE_HEADROOM = 1000


async def run_idle(scenario: Scenario, target: Target) -> Measurement:
    """Hold N connections with one subscription each and divide the broker's RSS growth by N."""
    soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if scenario.connections + FILE_HEADROOM > soft_limit:
        # The broker inherits the runner's limit; both would run out of descriptors part-way.
        raise ScenarioSkipped(
            f"needs {scenario.connections + FILE_HEADROOM:,} file descriptors per process, the hard "
            f"limit here is {soft_limit:,} (raise `ulimit -Hn` or run where it can be raised)"
        )
    endpoint = target.endpoint("tcp")
    credentials = await target.credentials(scenario.connections)
    baseline = procstat.rss_bytes(target.pid)
    cpu = procstat.CpuWindow(target.pid)
    cpu.start()
    started = time.perf_counter()
    deadline = time.monotonic() + scenario.time_limit
    sources = SOURCE_ADDRESSES if scenario.connections > 20_000 else None
    connections: list[MqttConnection] = []
    try:
        connections = await _connect_all(endpoint, credentials, scenario.concurrency, sources, deadline)
        limiter = asyncio.Semaphore(scenario.concurrency)

        async def subscribe(index: int, connection: MqttConnection) -> None:
            async with limiter:
                await connection.subscribe([f"idle/{index}"], 0)

        await asyncio.gather(*(subscribe(index, connection) for index, connection in enumerate(connections)))
        duration = time.perf_counter() - started
        cpu.stop()
        await asyncio.sleep(SETTLE_SECONDS)
        alive = sum(1 for connection in connections if connection.transport is not None)
        rss = procstat.rss_bytes(target.pid)
        figures = {
            "messages": scenario.connections,
            "delivered": alive,
            "loss": scenario.connections - alive,
            "duration_s": round(duration, 4),
            "rate": round(alive / duration, 1),
            "rate_unit": "connects+subscribes/s",
            "rss_baseline_bytes": baseline,
            "rss_per_connection_bytes": round((rss - baseline) / max(1, alive)),
            "completed": alive == scenario.connections,
        }
        return Measurement(figures, rss, cpu)
    finally:
        for connection in connections:
            if connection.transport is not None:
                # Abort: a clean close of 50,000 sockets is not what this scenario measures.
                connection.transport.abort()
        # Let the loop release the aborted sockets before the next scenario opens its own.
        await asyncio.sleep(0.2)


async def run_history(scenario: Scenario, target: Target) -> Measurement:
    """QoS 1 publishes windowed by PUBACKs; every accepted message is saved to the history."""
    check_history = getattr(target, "check_history", None)
    if check_history is not None:
        await check_history()
    endpoint = target.endpoint("tcp")
    (credential,) = await target.credentials(1)
    publisher = await open_connection(endpoint, credential)
    try:
        run = FlowRun(
            [publisher],
            [],
            ["bench/history/0"],
            1,
            scenario.payload,
            scenario.messages,
            publisher_window(scenario),
            scenario.sample_every,
            fanout=1,
            acks_are_arrivals=True,
        )
        cpu = procstat.CpuWindow(target.pid)
        cpu.start()
        result = await run.run(scenario.time_limit)
        cpu.stop()
        figures = _flow_figures(scenario, result, cpu)
        figures["rate_unit"] = "acked msg/s"
        figures["database"] = scenario.database
        return Measurement(figures, procstat.rss_bytes(target.pid), cpu)
    finally:
        publisher.disconnect()


async def run_rest(scenario: Scenario, target: Target) -> Measurement:
    """publishMessage over raw HTTP/1.1 keep-alive connections, one request in flight on each."""
    request = await target.rest_publish_request("bench/rest/0", "x" * scenario.payload)
    head = (
        f"POST {request.path} HTTP/1.1\r\nHost: {request.host}:{request.port}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
        + f"Content-Length: {len(request.body)}\r\n\r\n"
    ).encode()
    message = head + request.body
    counter = itertools.count()
    statuses: dict[int, int] = {}
    latencies: list[int] = []
    deadline = time.monotonic() + scenario.time_limit

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(request.host, request.port)
        try:
            while next(counter) < scenario.messages and time.monotonic() < deadline:
                sent = time.perf_counter_ns()
                writer.write(message)
                status_line = await reader.readline()
                status = int(status_line.split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                latencies.append(time.perf_counter_ns() - sent)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    cpu = procstat.CpuWindow(target.pid)
    cpu.start()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(scenario.connections)))
    duration = time.perf_counter() - started
    cpu.stop()
    accepted = statuses.get(201, 0)
    if not accepted:
        answered = ", ".join(f"HTTP {status}: {count}" for status, count in sorted(statuses.items()))
        raise TargetUnavailable(f"publishMessage accepted no request ({answered or 'no answer'})")
    figures = {
        "messages": scenario.messages,
        "delivered": accepted,
        "loss": scenario.messages - accepted,
        "http_statuses": {str(status): count for status, count in sorted(statuses.items())},
        "duration_s": round(duration, 4),
        "rate": round(accepted / duration, 1),
        "rate_unit": "requests/s",
        "latency": percentiles(latencies),
        "completed": accepted == scenario.messages,
    }
    return Measurement(figures, procstat.rss_bytes(target.pid), cpu)


RUNNERS: dict[str, Callable[[Scenario, Target], Awaitable[Measurement]]] = {
    "flow": run_flow,
    "routing": run_routing,
    "connect": run_connect,
    "idle": run_idle,
    "history": run_history,
    "rest": run_rest,
}

__all__ = ["RUNNERS", "SCENARIOS", "Measurement", "Scenario", "ScenarioSkipped", "TargetUnavailable"]

"""Broker memory per idle MQTT connection: RSS growth and the Python allocations behind it.

    python -m benchmarks.memory_per_connection [--connections 2000] [--data-dir DIR] [--top 25]

The same load as the `idle-2000` benchmark: N TCP connections, each CONNECT plus one SUBSCRIBE to
`idle/<n>` at QoS 0. The server is the whole platform (`Platform`, as `instamsg serve` runs it, on
uvloop, with `gc.freeze()` after start) in a child process on a temporary data directory; this process
provisions nothing itself and only drives the MQTT connections, so the server's memory is not mixed with
the clients'.

Two runs of the child: the first measures RSS growth only (tracemalloc costs memory of its own), the
second traces allocations and reports the largest growth by source line, per connection. The tenant
and its clients are created once through REST in the data directory and reused by the second run (and
by later invocations given the same `--data-dir`).
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.generator import Credential, Endpoint, MqttConnection, open_connection

HOST = "127.0.0.1"
SETTLE_SECONDS = 1.0
CONCURRENCY = 64


def _rss_bytes() -> int:
    with open("/proc/self/status") as status_file:
        for line in status_file:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- the server side (child process) ------------------------------------------------------------------


async def _provision(platform: Any, data_dir: Path, count: int) -> list[dict[str, str]]:
    """The benchmark's clients (sub `idle/#`), created through REST once per data directory."""
    import httpx

    from instamsg.services.apps import AppService

    saved = data_dir / "memory-credentials.json"
    credentials: list[dict[str, str]] = json.loads(saved.read_text()) if saved.exists() else []
    if len(credentials) >= count:
        return credentials[:count]
    created = await AppService(platform.store).create_app(f"memory-{len(credentials)}")
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{platform.ports['http']}", timeout=60) as http:
        token = await http.post(
            "/oauth2/token?grant_type=client_credentials",
            auth=(created.app.client_key, created.client_secret),
        )
        token.raise_for_status()
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        tenant = await http.post(
            "/api/v1/tenants",
            json={"name": "memory", "max_clients": count + 10, "max_messages": 10**15},
        )
        tenant.raise_for_status()
        path = f"/api/v1/tenants/{tenant.json()['id']}/clients"
        limiter = asyncio.Semaphore(16)

        async def create(index: int) -> dict[str, str]:
            body = {"type": "device", "name": f"idle-{index}", "sub_topics": ["idle/#"], "pub_topics": []}
            async with limiter:
                reply = await http.post(path, json=body)
            reply.raise_for_status()
            client = reply.json()
            return {"id": client["id"], "token": client["auth_token"]}

        credentials = list(await asyncio.gather(*(create(index) for index in range(count))))
    saved.write_text(json.dumps(credentials))
    return credentials


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _native_memory() -> dict[str, int]:
    """Where memory outside Python's own allocator goes: malloc in use and free, SQLite's share."""
    figures: dict[str, int] = {}
    try:
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        figures["malloc_in_use"] = info.uordblks + info.hblkhd
        figures["malloc_free"] = info.fordblks
    except (OSError, AttributeError):
        pass
    try:
        import _sqlite3

        sqlite = ctypes.CDLL(_sqlite3.__file__)
        sqlite.sqlite3_memory_used.restype = ctypes.c_int64
        figures["sqlite_in_use"] = sqlite.sqlite3_memory_used()
    except (OSError, AttributeError, ImportError):
        pass
    return figures


def _measure(trace: bool) -> tuple[int, dict[str, int], tracemalloc.Snapshot | None]:
    gc.collect()
    rss = _rss_bytes()
    native = _native_memory()
    snapshot = tracemalloc.take_snapshot() if trace else None
    return rss, native, snapshot


async def _serve(
    data_dir: Path, count: int, trace: bool, top: int, frames: int, provision_only: bool
) -> None:
    from instamsg.app import Platform
    from instamsg.settings import Settings

    platform = Platform(
        Settings(
            data_dir=data_dir,
            host=HOST,
            http_port=0,
            mqtt_port=0,
            mqtts_port="off",
            ws_port="off",
            wss_port="off",
        )
    )
    ports = await platform.start()
    try:
        credentials = await _provision(platform, data_dir, count)
        if provision_only:
            # A separate run: the memory freed after provisioning would flatter the measured growth.
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        gc.collect()
        gc.freeze()  # as `instamsg serve` does after start
        if trace:
            tracemalloc.start(frames)
        _reply({"mqtt_port": ports["mqtt"], "credentials": credentials})
        before_rss, before_native, before = _measure(trace)
        await reader.readline()  # the clients are connected and subscribed
        after_rss, after_native, after = _measure(trace)
        result: dict[str, Any] = {
            "rss_before": before_rss,
            "rss_after": after_rss,
            "native_growth": {key: after_native[key] - before_native.get(key, 0) for key in after_native},
            "connections": len(platform.node.connections) if platform.node else 0,
        }
        if before is not None and after is not None:
            stats = after.compare_to(before, "traceback" if frames > 1 else "lineno")
            result["traced_growth"] = sum(stat.size_diff for stat in stats)
            result["top"] = [
                {
                    "where": " <- ".join(
                        f"{_short(frame.filename)}:{frame.lineno}" for frame in reversed(stat.traceback)
                    ),
                    "size": stat.size_diff,
                    "count": stat.count_diff,
                }
                for stat in stats[:top]
            ]
            tracemalloc.stop()
        _reply(result)
        await reader.readline()  # the clients are gone
    finally:
        await platform.stop()


def _short(filename: str) -> str:
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


# ---- the client side (this process) -------------------------------------------------------------------


async def _run_once(data_dir: Path, count: int, trace: bool, top: int, frames: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.memory_per_connection",
        "--serve",
        "--data-dir",
        str(data_dir),
        "--connections",
        str(count),
        "--top",
        str(top),
        "--frames",
        str(frames),
        *(["--tracemalloc"] if trace else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 24,
    )
    assert process.stdin is not None and process.stdout is not None
    connections: list[MqttConnection] = []
    try:
        line = await process.stdout.readline()
        if not line:
            raise RuntimeError("the server process exited before it was ready")
        ready = json.loads(line)
        endpoint = Endpoint(HOST, ready["mqtt_port"])
        limiter = asyncio.Semaphore(CONCURRENCY)

        async def connect(index: int, credential: dict[str, str]) -> MqttConnection:
            async with limiter:
                connection = await open_connection(
                    endpoint, Credential(credential["id"], credential["id"], credential["token"])
                )
                await connection.subscribe([f"idle/{index}"], 0)
                return connection

        started = time.perf_counter()
        connections = list(
            await asyncio.gather(*(connect(index, item) for index, item in enumerate(ready["credentials"])))
        )
        elapsed = time.perf_counter() - started
        await asyncio.sleep(SETTLE_SECONDS)
        process.stdin.write(b"measure\n")
        await process.stdin.drain()
        result: dict[str, Any] = json.loads(await process.stdout.readline())
        result["alive"] = sum(1 for connection in connections if connection.transport is not None)
        result["connect_seconds"] = elapsed
        return result
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()
        await asyncio.sleep(0.2)
        if process.returncode is None:
            process.stdin.write(b"stop\n")
            await process.stdin.drain()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _provision_once(data_dir: Path, count: int) -> None:
    saved = data_dir / "memory-credentials.json"
    if saved.exists() and len(json.loads(saved.read_text())) >= count:
        return
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.memory_per_connection",
        "--serve",
        "--provision",
        "--data-dir",
        str(data_dir),
        "--connections",
        str(count),
        stdin=asyncio.subprocess.DEVNULL,
    )
    if await process.wait() != 0:
        raise RuntimeError("provisioning the benchmark clients failed")


async def _main(data_dir: Path, count: int, top: int, trace: bool, frames: int) -> None:
    await _provision_once(data_dir, count)
    plain = await _run_once(data_dir, count, False, top, frames)
    alive = max(1, plain["alive"])
    growth = plain["rss_after"] - plain["rss_before"]
    print(
        f"connections: {plain['alive']:,} of {count:,} (server saw {plain['connections']:,}),"
        f" opened in {plain['connect_seconds']:.1f} s"
    )
    print(f"RSS: {plain['rss_before'] / 2**20:.1f} MiB -> {plain['rss_after'] / 2**20:.1f} MiB")
    print(f"RSS growth per connection: {growth / alive:,.0f} B ({growth / alive / 1024:.2f} KiB)")
    for key, value in plain["native_growth"].items():
        print(f"  {key} growth per connection: {value / alive:,.0f} B")
    if not trace:
        return
    traced = await _run_once(data_dir, count, True, top, frames)
    alive = max(1, traced["alive"])
    print(f"\ntracemalloc growth per connection: {traced['traced_growth'] / alive:,.0f} B")
    print(f"{'bytes/conn':>10} {'objs/conn':>9}  where")
    for stat in traced["top"]:
        print(f"{stat['size'] / alive:>10.1f} {stat['count'] / alive:>9.2f}  {stat['where']}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--data-dir", type=Path, help="reuse this data directory (kept); default: a temp one")
    parser.add_argument("--top", type=int, default=25, help="tracemalloc lines to show")
    parser.add_argument("--frames", type=int, default=1, help="traceback depth of each tracemalloc line")
    parser.add_argument("--no-tracemalloc", action="store_true", help="measure RSS only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--provision", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, arguments.connections + 512)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    if arguments.serve:
        import uvloop

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        assert arguments.data_dir is not None
        uvloop.run(
            _serve(
                arguments.data_dir,
                arguments.connections,
                arguments.tracemalloc,
                arguments.top,
                arguments.frames,
                arguments.provision,
            )
        )
        return
    if arguments.data_dir is not None:
        arguments.data_dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(
            _main(
                arguments.data_dir,
                arguments.connections,
                arguments.top,
                not arguments.no_tracemalloc,
                arguments.frames,
            )
        )
        return
    with tempfile.TemporaryDirectory(prefix="instamsg-memory-") as directory:
        asyncio.run(
            _main(
                Path(directory),
                arguments.connections,
                arguments.top,
                not arguments.no_tracemalloc,
                arguments.frames,
            )
        )


if __name__ == "__main__":
    main()

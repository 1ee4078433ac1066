"""Run the benchmark scenarios against each broker and report them side by side.

    python -m benchmarks.run                      # full run, Mosquitto and InstaMsg
    python -m benchmarks.run --quick              # smoke run, well under a minute
    python -m benchmarks.run --scenario throughput --targets mosquitto

Every scenario starts a fresh broker process on free loopback ports, pinned to one core while the
generator runs on another, and stops by itself within its time limit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gc
import json
import os
import resource
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import procstat, report
from benchmarks.scenarios import FILE_HEADROOM, RUNNERS, SCENARIOS, Scenario, ScenarioSkipped
from benchmarks.targets import TARGETS, Target, TargetUnavailable

# Enough descriptors for 50,000 connections on both sides of loopback, plus headroom.
FILE_LIMIT = 200_000
# How many non-benchmark clients (with their own subscriptions) InstaMsg holds in its database.
OTHER_CLIENTS = 10_000
QUICK_OTHER_CLIENTS = 200
# CPU utilisation (of one core) from which a process counts as the bottleneck.
SATURATED = 0.9
# CPU (in cores) used by other processes from which the run counts as contended.
CONTENDED = 0.3
# Scenarios whose every published message is an application message the history must store.
HISTORY_KINDS = frozenset({"flow", "routing", "history"})
NAMES = frozenset(scenario.name for scenario in SCENARIOS)
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def parse_arguments(arguments: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run in under a minute")
    parser.add_argument(
        "--scenario",
        action="append",
        default=[],
        metavar="NAME",
        help="run only scenarios whose name contains NAME (repeatable)",
    )
    parser.add_argument(
        "--targets",
        default="mosquitto,instamsg",
        help="comma-separated brokers: mosquitto, instamsg, amqtt (default: mosquitto,instamsg)",
    )
    parser.add_argument(
        "--output", type=Path, help="JSONL file (default benchmarks/results/<UTC time>.jsonl)"
    )
    parser.add_argument("--update-docs", action="store_true", help="write the table into docs/benchmarks.md")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="record py-spy samples of the broker over each measured window into DIR (raw format)",
    )
    parser.add_argument(
        "--profile-native", action="store_true", help="with --profile: sample C frames too (py-spy --native)"
    )
    parser.add_argument(
        "--render", type=Path, metavar="JSONL", help="print the table of an earlier run and exit"
    )
    return parser.parse_args(arguments)


def raise_file_limit() -> int:
    """Raise RLIMIT_NOFILE for the generator and (inherited) the brokers; return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (FILE_LIMIT, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), max(hard, wanted)))
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def plan_cores() -> tuple[int | None, set[int]]:
    """Broker on the first usable core, generator on the rest; no pinning on a single core."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        return None, set(usable)
    generator = set(usable[1:])
    os.sched_setaffinity(0, generator)
    return usable[0], generator


def selected_scenarios(filters: Sequence[str]) -> list[Scenario]:
    if not filters:
        return list(SCENARIOS)
    # An exact name selects that scenario alone ("routing-10" is not "routing-100000").
    return [
        scenario
        for scenario in SCENARIOS
        if any(name == scenario.name or (name in scenario.name and name not in NAMES) for name in filters)
    ]


def base_record(scenario: Scenario, target: Target, context: dict[str, Any]) -> dict[str, Any]:
    count = (
        scenario.connections
        if scenario.kind in ("connect", "idle")
        else scenario.messages * scenario.publishers
    )
    return {
        **context,
        "scenario": scenario.name,
        "description": scenario.description,
        "kind": scenario.kind,
        "target": target.name,
        "broker_version": target.version(),
        "topology": scenario.topology,
        "qos": scenario.qos,
        "payload_bytes": scenario.payload,
        "transport": scenario.transport,
        "count": count,
        "publishers": scenario.publishers if scenario.kind in ("flow", "routing", "history") else None,
        "subscribers": scenario.subscribers if scenario.kind in ("flow", "routing") else None,
        "subscriptions_present": scenario.subscriptions or None,
        "database": scenario.database,
    }


async def run_one(scenario: Scenario, target: Target, context: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario on one target; any failure becomes a record with a reason, never a crash."""
    base = base_record(scenario, target, context)
    record = dict(base)
    reason = target.unavailable or target.supports(scenario.needs)
    if reason:
        status = "not_available" if target.unavailable else "not_applicable"
        return {**record, "status": status, "reason": reason}
    starting = time.monotonic()
    try:
        target.start(scenario.needs)
    except TargetUnavailable as error:
        return {**record, "status": "not_available", "reason": str(error)}
    record["broker_start_s"] = round(time.monotonic() - starting, 2)
    history_before = target.history_rows()
    procstat.PROFILING.label = f"{scenario.name}-{target.name}"
    procstat.PROFILING.windows = 0
    try:
        gc.collect()
        # The collector would pause the generator mid-measurement; the scenarios allocate little garbage.
        gc.disable()
        started = time.monotonic()
        measurement = await asyncio.wait_for(
            RUNNERS[scenario.kind](scenario, target), scenario.time_limit + 120
        )
        figures = measurement.figures
        delivered = figures.get("delivered") or 0
        duration = figures.get("duration_s") or 0.0
        cpu = measurement.cpu
        record.update(figures)
        record.update(
            {
                "status": "ok",
                "wall_s": round(time.monotonic() - started, 2),
                "broker_cpu_s": round(cpu.broker_seconds, 3),
                "broker_thread_cpu_s": cpu.thread_seconds,
                "broker_cpu_us_per_message": round(cpu.broker_seconds / delivered * 1e6, 3)
                if delivered
                else None,
                "broker_cpu_utilisation": round(cpu.broker_seconds / duration, 3) if duration else None,
                "generator_cpu_utilisation": round(cpu.generator_seconds / duration, 3) if duration else None,
                "other_cpu_utilisation": round(cpu.other_seconds / duration, 3) if duration else None,
                "interrupt_cpu_utilisation": round(cpu.interrupt_seconds / duration, 3) if duration else None,
                "load_average": os.getloadavg()[0],
                "broker_rss_bytes": measurement.rss_bytes,
            }
        )
        record["bottleneck"] = bottleneck(
            record["broker_cpu_utilisation"],
            record["generator_cpu_utilisation"],
            record["other_cpu_utilisation"],
        )
        return record
    except TargetUnavailable as error:
        return {**base, "status": "not_available", "reason": str(error)}
    except ScenarioSkipped as error:
        return {**base, "status": "skipped", "reason": str(error)}
    except Exception as error:
        # Partial figures of a failed run are dropped: a row is either measured or explained.
        return {**base, "status": "error", "reason": f"{type(error).__name__}: {error}"[:300]}
    finally:
        gc.enable()
        # A graceful stop flushes the history writer, so the rows can be counted afterwards.
        target.stop()
        if history_before is not None and record.get("status") == "ok" and scenario.kind in HISTORY_KINDS:
            history_after = target.history_rows()
            if history_after is not None:
                record["history_rows"] = history_after - history_before
                record["history_complete"] = record["history_rows"] >= (record.get("messages") or 0)


def bottleneck(broker: float | None, generator: float | None, other: float | None) -> str:
    """Which side limited the rate: a row is a broker measurement only when the broker is saturated."""
    if broker is None or generator is None:
        return "unknown"
    if broker >= SATURATED:
        return "broker"
    if generator >= SATURATED:
        return "generator"
    if other is not None and other >= CONTENDED:
        # Other processes took a large share of the machine: the figure understates both sides.
        return "contended"
    # Neither core is busy: the rate is bounded by round trips (window, in-flight limits, handshakes).
    return "latency"


async def main_async(options: argparse.Namespace) -> int:
    scenarios = selected_scenarios(options.scenario)
    if options.list:
        for scenario in scenarios:
            print(f"{scenario.name:26} {scenario.description}")
        return 0
    if not scenarios:
        print("no scenario matches", options.scenario, file=sys.stderr)
        return 2
    target_names = [name.strip() for name in options.targets.split(",") if name.strip()]
    unknown = [name for name in target_names if name not in TARGETS]
    if unknown:
        print(f"unknown targets: {', '.join(unknown)}; choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    file_limit = raise_file_limit()
    procstat.PROFILING.output = options.profile
    procstat.PROFILING.native = options.profile_native
    machine = procstat.machine_info()  # before pinning, so usable_cores counts the whole machine
    broker_core, generator_cores = plan_cores()
    try:
        from importlib.metadata import version

        uvloop_version: str | None = version("uvloop")
    except ImportError:
        uvloop_version = None
    sized = [scenario.sized(options.quick) for scenario in scenarios]
    now = datetime.datetime.now(datetime.UTC)
    output = options.output or report.RESULTS_DIRECTORY / f"{now:%Y%m%dT%H%M%SZ}.jsonl"
    context = {
        "run_id": f"{now:%Y%m%dT%H%M%SZ}",
        "timestamp": now.isoformat(timespec="seconds"),
        "command": shlex.join([os.path.basename(sys.executable), "-m", "benchmarks.run", *sys.argv[1:]]),
        "quick": options.quick,
        "machine": machine,
        "pinning": {"broker_core": broker_core, "generator_cores": sorted(generator_cores)},
        "generator": {
            "processes": 1,
            "event_loop": f"uvloop {uvloop_version}" if uvloop_version else "asyncio",
        },
        "file_limit": file_limit,
    }
    targets = [TARGETS[name](broker_core) for name in target_names]
    # Identities only for scenarios this machine can run (idle connections need descriptors).
    needed = (
        max(
            scenario.identities
            for scenario in sized
            if scenario.kind != "idle" or scenario.connections + FILE_HEADROOM <= file_limit
        )
        if sized
        else 1
    )
    others = QUICK_OTHER_CLIENTS if options.quick else OTHER_CLIENTS
    databases = frozenset(scenario.database for scenario in sized if scenario.database)
    records: list[dict[str, Any]] = []
    try:
        for target in targets:
            await target.prepare(needed, others, databases)
            if target.unavailable:
                print(f"{target.label}: not available — {target.unavailable}", file=sys.stderr)
        for scenario in sized:
            for target in targets:
                record = await run_one(scenario, target, context)
                report.append_records(output, [record])
                records.append(record)
                print(_progress(record), file=sys.stderr, flush=True)
    finally:
        for target in targets:
            target.cleanup()
    report.print_table(records, target_names)
    print(f"records: {output}")
    if options.update_docs:
        write_docs(records, target_names)
    return 0


def write_docs(records: list[dict[str, Any]], target_names: Sequence[str]) -> None:
    """Put the table, with the command and the machine of its first record, into docs/benchmarks.md."""
    first = records[0]
    machine = first["machine"]
    pinning = first["pinning"]
    header = (
        f"Measured {first['timestamp']} with `{first['command']}` on {machine['cpu_model']}, "
        f"{machine['cores']} cores, Linux {machine['kernel']}, Python {machine['python']}, "
        f"Mosquitto {machine['mosquitto']}; broker pinned to core {pinning['broker_core']}, "
        f"generator on cores {pinning['generator_cores']}. "
        f"Records: `benchmarks/results/{first['run_id']}.jsonl`.\n\n"
    )
    if not report.update_docs(DOCS_PATH, header + report.markdown_table(records, target_names)):
        print(f"{DOCS_PATH} has no results markers; table not written", file=sys.stderr)


def render(path: Path, update_docs: bool) -> int:
    """Print (and optionally publish) the table of an earlier run without measuring again."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records:
        print(f"{path} holds no records", file=sys.stderr)
        return 2
    target_names = list(dict.fromkeys(record["target"] for record in records))
    report.print_table(records, target_names)
    if update_docs:
        write_docs(records, target_names)
    return 0


def _progress(record: dict[str, Any]) -> str:
    if record["status"] != "ok":
        return f"{record['scenario']:26} {record['target']:10} {record['status']}: {record.get('reason', '')}"
    return (
        f"{record['scenario']:26} {record['target']:10} {record['rate']:>12,.0f} {record['rate_unit']:<12} "
        f"loss {record['loss']}  broker cpu {record['broker_cpu_utilisation']}"
        f"  generator cpu {record['generator_cpu_utilisation']}  other {record['other_cpu_utilisation']}"
        f"  bound by {record['bottleneck']}"
    )


def main(arguments: Sequence[str] | None = None) -> int:
    options = parse_arguments(arguments)
    if options.render:
        return render(options.render, options.update_docs)
    try:
        import uvloop

        return uvloop.run(main_async(options))
    except ImportError:
        return asyncio.run(main_async(options))


if __name__ == "__main__":
    sys.exit(main())

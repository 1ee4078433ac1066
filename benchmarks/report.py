"""Result records (JSONL) and the comparison table (rich for the terminal, Markdown for the docs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIRECTORY = Path(__file__).parent / "results"
BASELINE = "mosquitto"
CANDIDATE = "instamsg"
LABELS = {"mosquitto": "Mosquitto", "instamsg": "InstaMsg", "amqtt": "amqtt"}
DOCS_START = "<!-- results:start -->"
DOCS_END = "<!-- results:end -->"


def append_records(path: Path, records: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as output:
        for record in records:
            output.write(json.dumps(record, sort_keys=True) + "\n")


def primary_value(record: dict[str, Any]) -> float | None:
    """The figure the ratio compares: RSS per connection for idle rows, the rate elsewhere."""
    if record.get("status") != "ok" or record.get("loss") or not record.get("completed", True):
        # A run that lost messages or stopped early has no rate worth a ratio.
        return None
    value = record.get("rss_per_connection_bytes") if record.get("kind") == "idle" else record.get("rate")
    return float(value) if isinstance(value, int | float) else None


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def cell_lines(record: dict[str, Any] | None) -> list[str]:
    """The lines shown for one broker in one row."""
    if record is None:
        return ["not run"]
    status = record.get("status")
    if status != "ok":
        return [str(status).replace("_", " "), str(record.get("reason", ""))[:80]]
    lines = []
    if record.get("kind") == "idle":
        lines.append(f"{record['rss_per_connection_bytes'] / 1024:,.1f} KiB/conn")
        lines.append(f"{_number(record['rate'])} {record['rate_unit']}")
    else:
        lines.append(f"{_number(record['rate'])} {record['rate_unit']}")
    latency = record.get("latency") or {}
    if latency.get("p50_us") is not None:
        lines.append(f"p50/90/99 {latency['p50_us']:g}/{latency['p90_us']:g}/{latency['p99_us']:g} µs")
    if record.get("broker_cpu_us_per_message") is not None:
        unit = {"connect": "connect", "idle": "connection", "rest": "request"}.get(
            record.get("kind", ""), "msg"
        )
        lines.append(f"CPU {record['broker_cpu_us_per_message']:,.2f} µs/{unit}")
        lines.append(
            f"busy: broker {record['broker_cpu_utilisation']:.0%}, generator "
            f"{record['generator_cpu_utilisation']:.0%} ({record['bottleneck']}-bound)"
        )
    lines.append(f"RSS {record['broker_rss_bytes'] / 2**20:,.1f} MiB, loss {record['loss']}")
    if record.get("history_rows") is not None:
        stored = record["history_rows"]
        lines.append(
            f"history: all {stored:,} stored"
            if record.get("history_complete")
            else f"HISTORY INCOMPLETE: {stored:,} of {record.get('messages') or 0:,} stored"
        )
    if record.get("stalled"):
        lines.append("STALLED: deliveries stopped")
    elif not record.get("completed", True):
        lines.append("TIME LIMIT REACHED")
    return lines


def ratio_text(rows: dict[str, dict[str, Any]]) -> str:
    baseline = primary_value(rows.get(BASELINE, {}))
    candidate = primary_value(rows.get(CANDIDATE, {}))
    if baseline is None or candidate is None or baseline == 0:
        return "-"
    return f"{candidate / baseline:.2f}x"


def _grouped(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["scenario"], {})[record["target"]] = record
    return grouped


def _shape(record: dict[str, Any]) -> tuple[str, str, str, str]:
    qos = str(record.get("qos", "-")) if record.get("kind") not in ("connect", "idle", "rest") else "-"
    payload = f"{record['payload_bytes']} B" if record.get("kind") not in ("connect", "idle") else "-"
    count = f"{record.get('count', 0):,}"
    return str(record.get("topology", "-")), qos, payload, count


def print_table(
    records: Sequence[dict[str, Any]], targets: Sequence[str], console: Console | None = None
) -> None:
    console = console or Console()
    table = Table(
        title="InstaMsg benchmark (ratio = InstaMsg / Mosquitto of the first figure)", show_lines=True
    )
    for heading in ("Scenario", "Topology", "QoS", "Payload", "Count"):
        table.add_column(heading)
    for target in targets:
        table.add_column(LABELS.get(target, target))
    table.add_column("InstaMsg/Mosquitto")
    for scenario, rows in _grouped(records).items():
        first = next(iter(rows.values()))
        table.add_row(
            scenario,
            *_shape(first),
            *("\n".join(cell_lines(rows.get(target))) for target in targets),
            ratio_text(rows),
        )
    console.print(table)


def markdown_table(records: Sequence[dict[str, Any]], targets: Sequence[str]) -> str:
    headings = ["Scenario", "Topology", "QoS", "Payload", "Count"]
    headings += [LABELS.get(target, target) for target in targets] + ["InstaMsg/Mosquitto"]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for scenario, rows in _grouped(records).items():
        first = next(iter(rows.values()))
        cells = [f"`{scenario}`", *_shape(first)]
        cells += ["<br>".join(cell_lines(rows.get(target))) for target in targets]
        cells.append(ratio_text(rows))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def update_docs(path: Path, section: str) -> bool:
    """Replace the results section of docs/benchmarks.md; False when its markers are missing."""
    if not path.exists():
        return False
    text = path.read_text()
    if DOCS_START not in text or DOCS_END not in text:
        return False
    before, rest = text.split(DOCS_START, 1)
    _, after = rest.split(DOCS_END, 1)
    path.write_text(f"{before}{DOCS_START}\n{section}\n{DOCS_END}{after}")
    return True

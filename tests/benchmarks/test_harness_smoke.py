"""Smoke test of the benchmark harness: quick mode runs end to end and writes well-formed records.

Benchmarks are not tests: nothing here asserts a rate or a latency, only that the harness works and
that every delivered message was accounted for (loss 0).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ("pingpong-qos1", "throughput-1to1-qos0", "throughput-1to100-qos1", "connect-rate", "idle-2000")
COMMON_FIELDS = {"run_id", "scenario", "target", "status", "machine", "command", "topology", "qos", "count"}
MEASURED_FIELDS = {
    "rate",
    "loss",
    "delivered",
    "duration_s",
    "broker_cpu_s",
    "broker_cpu_us_per_message",
    "broker_rss_bytes",
    "bottleneck",
}

pytestmark = [pytest.mark.mosquitto, pytest.mark.slow, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed")
    output = tmp_path_factory.mktemp("bench") / "results.jsonl"
    # Mosquitto proves the measurements; amqtt (an optional extra, normally not installed) proves that an
    # unavailable broker becomes a "not available" record instead of a crash. InstaMsg is left out so a
    # broker bug never fails the harness test.
    arguments = [sys.executable, "-m", "benchmarks.run", "--quick", "--targets", "mosquitto,amqtt"]
    for name in SCENARIOS:
        arguments += ["--scenario", name]
    completed = subprocess.run(
        [*arguments, "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return [json.loads(line) for line in output.read_text().splitlines()]


def test_one_record_per_scenario_and_target(records: list[dict[str, Any]]) -> None:
    pairs = {(record["scenario"], record["target"]) for record in records}
    assert pairs == {(name, target) for name in SCENARIOS for target in ("mosquitto", "amqtt")}
    for record in records:
        assert record.keys() >= COMMON_FIELDS


def test_mosquitto_rows_are_measured_without_loss(records: list[dict[str, Any]]) -> None:
    for record in records:
        if record["target"] != "mosquitto":
            continue
        assert record["status"] == "ok", record.get("reason")
        assert record.keys() >= MEASURED_FIELDS
        assert record["loss"] == 0
        assert record["delivered"] > 0
        assert record["rate"] > 0


def test_unavailable_brokers_are_reported_not_faked(records: list[dict[str, Any]]) -> None:
    for record in records:
        if record["status"] != "ok":
            assert record["status"] in {"not_available", "not_applicable", "skipped"}
            assert record["reason"]
            assert "rate" not in record


def test_flow_records_carry_latency_percentiles(records: list[dict[str, Any]]) -> None:
    for record in records:
        if record["status"] == "ok" and record["scenario"] != "connect-rate" and record["kind"] == "flow":
            latency = record["latency"]
            assert isinstance(latency, dict)
            assert latency["samples"] > 0
            assert latency["p50_us"] <= latency["p90_us"] <= latency["p99_us"]

"""The provisioning throttle: attempt budgets per peer address and per provisioning id, answered with
PROVACK rc 3 (server unavailable, devices retry later) and logged once per streak; its table is bounded."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from instamsg.broker import ClientRecord, Directory, TenantRecord
from instamsg.protocol.plugin import DeviceProtocol
from instamsg.protocol.provisioning import (
    SERVER_UNAVAILABLE,
    AttemptBudget,
    ProvisioningThrottle,
    install_provisioning,
)
from instamsg.settings import Settings
from tests.support.devices import port_of, protocol_node, provision

UUID = "77777777-0000-4000-8000-000000000001"
TOKEN = "7" * 32
PROVISIONING_ID = "356938035643809"
KEY = "KEY01a"
ACCEPTED = bytes((0xF0, 2 + 69, 0, 0)) + f"{UUID}-{TOKEN}".encode()
THROTTLED = b"\xf0\x02\x00\x03"
UNKNOWN = b"\xf0\x02\x00\x02"


def directory() -> Directory:
    loaded = Directory()
    loaded.load(
        [TenantRecord("tenant-1", active=True, max_messages=1000, messages_used=0)],
        [
            ClientRecord(
                UUID, "tenant-1", TOKEN, (), (), provisioning_id=PROVISIONING_ID, provisioning_key=KEY
            )
        ],
    )
    return loaded


@asynccontextmanager
async def node_with(throttle: ProvisioningThrottle) -> AsyncIterator[int]:
    def install(devices: DeviceProtocol) -> None:
        install_provisioning(devices, close_delay=0.2, throttle=throttle)

    async with protocol_node(directory(), install=[install]) as (node, _):
        yield port_of(node, "tcp")


async def attempt(port: int, provisioning_id: str = PROVISIONING_ID, key: str = KEY) -> bytes:
    return (await provision("127.0.0.1", port, provisioning_id, key, dialect="c")).raw


async def test_provisioning_id_over_its_budget_gets_rc_3_and_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="instamsg.protocol.provisioning")
    throttle = ProvisioningThrottle(per_peer_per_minute=0, per_id_per_minute=2, max_entries=100)
    async with node_with(throttle) as port:
        assert await attempt(port) == ACCEPTED
        assert await attempt(port, key="wrong") == b"\xf0\x02\x00\x04"
        # The budget of this id is spent, whether or not the key is right; other ids are not throttled.
        assert await attempt(port) == THROTTLED
        assert await attempt(port, key="wrong") == THROTTLED
        assert await attempt(port, "another-id") == UNKNOWN
    warnings = [
        record.getMessage() for record in caplog.records if "provisioning_throttled" in record.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert f"provisioning_id='{PROVISIONING_ID}'" in warnings[0]
    assert f"rc={SERVER_UNAVAILABLE}" in warnings[0] and "by=provisioning_id" in warnings[0]


async def test_peer_over_its_budget_gets_rc_3_even_for_a_valid_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="instamsg.protocol.provisioning")
    throttle = ProvisioningThrottle(per_peer_per_minute=3, per_id_per_minute=0, max_entries=100)
    async with node_with(throttle) as port:
        for guess in ("guess-1", "guess-2", "guess-3"):
            assert await attempt(port, guess) == UNKNOWN
        assert await attempt(port) == THROTTLED
    assert any("by=peer" in record.getMessage() for record in caplog.records)


async def test_without_a_throttle_attempts_are_not_limited() -> None:
    throttle = ProvisioningThrottle(per_peer_per_minute=0, per_id_per_minute=0, max_entries=1)
    async with node_with(throttle) as port:
        for _ in range(5):
            assert await attempt(port) == ACCEPTED


def test_budget_refills_at_its_rate() -> None:
    now = [1000.0]
    budget = AttemptBudget(6, 10, clock=lambda: now[0])  # one attempt every 10 s, bursts of 6
    assert [budget.take("a") for _ in range(7)] == [0, 0, 0, 0, 0, 0, 1]
    assert budget.take("a") == 2  # refused in a row
    now[0] += 10.0
    assert budget.take("a") == 0
    assert budget.take("a") == 1  # a new streak after an accepted attempt
    now[0] += 3600.0
    assert [budget.take("a") for _ in range(7)] == [0, 0, 0, 0, 0, 0, 1]  # never more than the burst


def test_budget_table_is_bounded_and_forgets_the_least_recently_used() -> None:
    now = [0.0]
    budget = AttemptBudget(1, 3, clock=lambda: now[0])
    assert budget.take("kept") == 0
    for number in range(1000):
        budget.take(f"spray-{number}")
        assert budget.take("kept") == number + 1  # still remembered: used most recently
        assert len(budget) <= 3
    assert len(budget) == 3


def test_long_usernames_share_one_key() -> None:
    throttle = ProvisioningThrottle(per_peer_per_minute=0, per_id_per_minute=1, max_entries=10)
    assert throttle.refusal("10.0.0.1", "x" * 64 + "a") is None
    assert throttle.refusal("10.0.0.1", "x" * 64 + "b") == ("provisioning_id", 1)
    assert throttle.ids is not None and len(throttle.ids) == 1


def test_settings_defaults_turn_the_throttle_on() -> None:
    settings = Settings()
    assert settings.provisioning_attempts_per_minute_per_peer > 0
    assert settings.provisioning_attempts_per_minute_per_id > 0
    assert settings.provisioning_throttle_max_entries >= 1

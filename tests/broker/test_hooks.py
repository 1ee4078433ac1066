"""Hooks fire in priority order, can stop the chain, and fail closed on auth points."""

from __future__ import annotations

import logging

import pytest

from instamsg.broker.hooks import HookPoint, Hooks, Priority, Stop


def test_priority_then_registration_order() -> None:
    hooks = Hooks()
    calls: list[str] = []
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: calls.append("normal-1"))
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: calls.append("high"), Priority.HIGH)
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: calls.append("normal-2"))
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: calls.append("last"), Priority.LAST)
    hooks.run(HookPoint.CLIENT_CONNECTED, object())
    assert calls == ["high", "normal-1", "normal-2", "last"]


def test_stop_ends_the_chain() -> None:
    hooks = Hooks()
    calls: list[str] = []

    def stopper(channel: object) -> Stop[None]:
        calls.append("stopper")
        return Stop(None)

    hooks.add(HookPoint.CLIENT_CONNECTED, stopper, Priority.HIGH)
    hooks.add(HookPoint.CLIENT_CONNECTED, lambda channel: calls.append("never"))
    hooks.run(HookPoint.CLIENT_CONNECTED, object())
    assert calls == ["stopper"]


def test_fold_accumulates_and_stop_returns_value() -> None:
    hooks = Hooks()
    hooks.add(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, lambda channel, acc: [*acc, ("inbox", 1)])
    hooks.add(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, lambda channel, acc: None)  # no opinion
    hooks.add(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, lambda channel, acc: [*acc, ("x", 0)])
    assert hooks.run_fold(HookPoint.SESSION_IMPLICIT_SUBSCRIPTIONS, [], object()) == [("inbox", 1), ("x", 0)]
    hooks.add(HookPoint.MESSAGE_PUBLISH, lambda channel, message: Stop(None), Priority.FIRST)
    hooks.add(HookPoint.MESSAGE_PUBLISH, lambda channel, message: pytest.fail("chain not stopped"))
    assert hooks.run_fold(HookPoint.MESSAGE_PUBLISH, "message", None) is None


def test_failing_callback_skipped_except_fail_closed(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks()

    def broken(*args: object) -> object:
        raise RuntimeError("boom")

    hooks.add(HookPoint.MESSAGE_PUBLISH, broken, Priority.HIGH)
    hooks.add(HookPoint.MESSAGE_PUBLISH, lambda channel, message: message + "!")
    with caplog.at_level(logging.ERROR):
        assert hooks.run_fold(HookPoint.MESSAGE_PUBLISH, "m", None) == "m!"
    assert "hook_failed" in caplog.text
    hooks.add(HookPoint.CLIENT_AUTHORIZE, lambda channel, action, topic, allowed: True)
    hooks.add(HookPoint.CLIENT_AUTHORIZE, broken, Priority.HIGH)
    assert hooks.run_fold(HookPoint.CLIENT_AUTHORIZE, True, None, "publish", "t", on_error=False) is False
    hooks.add(HookPoint.CLIENT_AUTHENTICATE, broken)
    assert hooks.run_fold(HookPoint.CLIENT_AUTHENTICATE, None, None, None, on_error="refused") == "refused"


def test_remove_and_has() -> None:
    hooks = Hooks()

    def callback(channel: object) -> None:
        return None

    assert not hooks.has(HookPoint.CLIENT_CONNECTED)
    hooks.add(HookPoint.CLIENT_CONNECTED, callback)
    assert hooks.has(HookPoint.CLIENT_CONNECTED)
    hooks.remove(HookPoint.CLIENT_CONNECTED, callback)
    assert not hooks.has(HookPoint.CLIENT_CONNECTED)


def test_hook_points_have_dotted_values() -> None:
    assert HookPoint.CLIENT_AUTHENTICATE.value == "client.authenticate"
    assert all("." in point.value for point in HookPoint)

from __future__ import annotations

import asyncio
import weakref

from instamsg.broker.timers import Timer, TimerWheel


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_timers_fire_not_before_deadline_and_in_slot_order() -> None:
    clock = FakeClock()
    wheel = TimerWheel(0.5, clock)
    fired: list[str] = []
    wheel.schedule(1.2, lambda: fired.append("late"))
    wheel.schedule(0.1, lambda: fired.append("early"))
    cancelled = wheel.schedule(0.6, lambda: fired.append("cancelled"))
    cancelled.cancel()
    clock.now += 0.3
    wheel.advance()
    assert fired == []
    clock.now += 0.3
    wheel.advance()
    assert fired == ["early"]
    clock.now += 1.0
    assert wheel.advance() == 1
    assert fired == ["early", "late"]
    assert len(wheel) == 0


def test_failing_callback_does_not_stop_the_wheel() -> None:
    clock = FakeClock()
    wheel = TimerWheel(0.5, clock)
    fired: list[int] = []
    wheel.schedule(0.1, lambda: 1 / 0)  # type: ignore[func-returns-value]
    wheel.schedule(0.1, lambda: fired.append(1))
    clock.now += 1
    wheel.advance()
    assert fired == [1]


async def test_wheel_runs_on_the_loop() -> None:
    wheel = TimerWheel(0.05)
    done = asyncio.Event()
    wheel.start(asyncio.get_running_loop())
    wheel.schedule(0.1, done.set)
    await asyncio.wait_for(done.wait(), 1)
    wheel.stop()


def test_cancel_takes_the_timer_out_at_once() -> None:
    clock = FakeClock()
    wheel = TimerWheel(0.5, clock)

    class Owner:
        def fire(self) -> None:
            raise AssertionError("cancelled timer fired")

    owner = Owner()
    alive = weakref.ref(owner)
    timer = wheel.schedule(900.0, owner.fire)
    kept = wheel.schedule(900.0, lambda: None)
    assert len(wheel) == 2
    timer.cancel()
    timer.cancel()  # idempotent
    del timer, owner
    assert len(wheel) == 1 and alive() is None  # nothing of a closed connection lingers until 900 s
    kept.cancel()
    assert len(wheel) == 0
    clock.now += 1000
    assert wheel.advance() == 0


def test_a_callback_may_cancel_a_later_timer_of_its_slot() -> None:
    clock = FakeClock()
    wheel = TimerWheel(0.5, clock)
    fired: list[str] = []
    later: list[Timer] = []
    wheel.schedule(0.1, lambda: (fired.append("first"), later[0].cancel()))
    later.append(wheel.schedule(0.1, lambda: fired.append("second")))
    clock.now += 1
    assert wheel.advance() == 1
    assert fired == ["first"] and len(wheel) == 0

"""One timer wheel for the whole node: keep-alive, CONNECT timeout, session expiry, will delay.

Mosquitto's approach rather than one `call_later` per event: the wheel ticks at a fixed resolution and
runs the callbacks whose slot has come. Keep-alive does not reschedule on every packet; the channel only
stores "last seen" and its timer re-arms itself for the remaining time when it fires early.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Final, TypeVar

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class Timer:
    """A scheduled callback; `cancel()` is O(1) and takes the timer out of its slot at once, so a
    cancelled timer (a closed connection's keep-alive, say) keeps nothing alive until its deadline.

    Small on purpose, one per connection: no deadline kept (the slot is the deadline) and, through
    `TimerWheel.schedule_call`, one shared function plus its argument instead of a bound method."""

    __slots__ = ("_timers", "argument", "callback", "cancelled")

    def __init__(self, callback: Callable[..., None], argument: object) -> None:
        self.callback = callback
        self.argument = argument
        self.cancelled = False
        # The wheel's slot holding this timer; None once it ran, was cancelled, or its slot is due.
        self._timers: dict[Timer, None] | None = None

    def cancel(self) -> None:
        self.cancelled = True
        timers = self._timers
        if timers is not None:
            self._timers = None
            timers.pop(self, None)


# `Timer.argument` when the callback takes none.
_NO_ARGUMENT: Final = object()


class TimerWheel:
    """Slots keyed by tick number; a tick runs every timer whose deadline has passed."""

    __slots__ = ("_clock", "_handle", "_loop", "_resolution", "_slots", "_tick")

    def __init__(self, resolution: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolution = resolution
        self._clock = clock
        # A slot emptied by cancellations stays until its tick: there are few slots, and many timers.
        self._slots: dict[int, dict[Timer, None]] = {}
        self._tick = math.floor(clock() / resolution)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def now(self) -> float:
        return self._clock()

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self._add(delay, Timer(callback, _NO_ARGUMENT))

    def schedule_call(self, delay: float, function: Callable[[_T], None], argument: _T) -> Timer:
        """Run `function(argument)` after `delay`: with a plain function shared by every caller, this
        allocates no bound method or closure per timer (keep-alive: one timer per connection)."""
        return self._add(delay, Timer(function, argument))

    def _add(self, delay: float, timer: Timer) -> Timer:
        deadline = self._clock() + max(delay, 0.0)
        # Round up so a timer never fires before its deadline.
        slot = max(math.ceil(deadline / self._resolution), self._tick + 1)
        timers = self._slots.get(slot)
        if timers is None:
            timers = self._slots[slot] = {}
        timers[timer] = None  # a dict: insertion-ordered like a list, O(1) removal on cancel
        timer._timers = timers
        return timer

    def __len__(self) -> int:
        return sum(map(len, self._slots.values()))

    def advance(self, now: float | None = None) -> int:
        """Run every due timer (tests call this directly with a fake clock); returns how many ran."""
        current = math.floor((self._clock() if now is None else now) / self._resolution)
        ran = 0
        while self._tick < current:
            self._tick += 1
            timers = self._slots.pop(self._tick, None)
            if not timers:
                continue
            # The slot is out of the wheel: a callback cancelling a later timer of this slot only
            # marks it (and it is skipped below), never changes the dict being iterated.
            for timer in timers:
                timer._timers = None
            for timer in timers:
                if timer.cancelled:
                    continue
                ran += 1
                try:
                    argument = timer.argument
                    if argument is _NO_ARGUMENT:
                        timer.callback()
                    else:
                        timer.callback(argument)
                except Exception:
                    logger.exception("timer_callback_failed callback=%r", timer.callback)
        return ran

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._tick = math.floor(self._clock() / self._resolution)
        self._handle = loop.call_later(self._resolution, self._on_tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _on_tick(self) -> None:
        self.advance()
        if self._loop is not None:
            self._handle = self._loop.call_later(self._resolution, self._on_tick)

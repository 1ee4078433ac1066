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

logger = logging.getLogger(__name__)


class Timer:
    """A scheduled callback; `cancel()` is O(1) and takes the timer out of its slot at once, so a
    cancelled timer (a closed connection's keep-alive, say) keeps nothing alive until its deadline."""

    __slots__ = ("_slot", "_wheel", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self._wheel: TimerWheel | None = None
        self._slot = 0

    def cancel(self) -> None:
        self.cancelled = True
        wheel = self._wheel
        if wheel is not None:
            self._wheel = None
            wheel._discard(self)


class TimerWheel:
    """Slots keyed by tick number; a tick runs every timer whose deadline has passed."""

    __slots__ = ("_clock", "_count", "_handle", "_loop", "_resolution", "_slots", "_tick")

    def __init__(self, resolution: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self._resolution = resolution
        self._clock = clock
        self._slots: dict[int, dict[Timer, None]] = {}
        self._tick = math.floor(clock() / resolution)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._count = 0

    def now(self) -> float:
        return self._clock()

    def schedule(self, delay: float, callback: Callable[[], None]) -> Timer:
        deadline = self._clock() + max(delay, 0.0)
        timer = Timer(deadline, callback)
        # Round up so a timer never fires before its deadline.
        slot = max(math.ceil(deadline / self._resolution), self._tick + 1)
        timers = self._slots.get(slot)
        if timers is None:
            timers = self._slots[slot] = {}
        timers[timer] = None  # a dict: insertion-ordered like a list, O(1) removal on cancel
        timer._wheel = self
        timer._slot = slot
        self._count += 1
        return timer

    def _discard(self, timer: Timer) -> None:
        """Take a cancelled timer out of its slot (`Timer.cancel`)."""
        timers = self._slots.get(timer._slot)
        if timers is not None and timer in timers:
            del timers[timer]
            self._count -= 1
            if not timers:
                del self._slots[timer._slot]

    def __len__(self) -> int:
        return self._count

    def advance(self, now: float | None = None) -> int:
        """Run every due timer (tests call this directly with a fake clock); returns how many ran."""
        current = math.floor((self._clock() if now is None else now) / self._resolution)
        ran = 0
        while self._tick < current:
            self._tick += 1
            timers = self._slots.pop(self._tick, None)
            if not timers:
                continue
            self._count -= len(timers)
            for timer in timers:
                # The slot is already out of the wheel: a callback cancelling a later timer of this
                # slot only marks it, and it is skipped here.
                timer._wheel = None
                if timer.cancelled:
                    continue
                ran += 1
                try:
                    timer.callback()
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

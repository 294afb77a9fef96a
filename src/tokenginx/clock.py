"""Wall-clock time in milliseconds, injectable so expiry can be tested without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable

MsClock = Callable[[], int]


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class ManualClock:
    """A clock tests move by hand: ``clock.advance(1500)``."""

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms

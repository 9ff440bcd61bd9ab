"""Failed-authentication throttling per client address (attack report LOW-12: 594 guesses/s).

Rule: an address that failed authentication ``limit`` times within ``window`` seconds is refused
(HTTP 429 with ``Retry-After``) until the oldest of those failures is ``window`` seconds old: a
sliding window, so a steady guesser gets at most ``limit`` tries per window. While an address is
refused, *every* request from it that would be authenticated is refused, a valid token included:
otherwise the 429 would itself tell a guesser that a guess was right, and throttling would be a
formality. The price is that a hostile neighbour behind the same address (every local user on
loopback, a NAT) can lock the others out for a window; the CLI (``snapkeep api``) is not affected.

Refused requests are not counted (they are not checked), so a client that keeps hammering is
released once its failures age out. Memory is bounded: at most ``max_addresses`` addresses are
tracked, each with at most ``limit`` timestamps; beyond that the least recently failed address is
forgotten (an attacker who owns many addresses can flush entries, which costs it those addresses).

In memory and per process: a restart forgets, which is acceptable for a slow-down whose window is
a minute. The clock is injected (``Clock.monotonic``), so tests move time instead of sleeping.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict, deque

from snapkeep.clock import SYSTEM, Clock

log = logging.getLogger(__name__)

#: Failures allowed per address within the window before it is refused.
FAILURE_LIMIT = 10
#: The window, in seconds.
WINDOW_SECONDS = 60.0
#: Addresses tracked at most (about 10 timestamps each: well under 10 MiB in all).
MAX_ADDRESSES = 10_000


class AuthThrottle:
    """Counts failed authentications per address and says when an address must wait.

    Thread-safe: the HTTP door calls it from the event loop (``retry_after``) and from worker
    threads (``failed``).
    """

    def __init__(
        self,
        clock: Clock = SYSTEM,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        if limit < 1 or window <= 0 or max_addresses < 1:
            raise ValueError("limit, window and max_addresses must be positive")
        self.clock = clock
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Whole seconds ``address`` must wait before it is heard again, or None when it may call."""
        now = self.clock.monotonic()
        with self._lock:
            times = self._failures.get(address)
            if times is None:
                return None
            self._expire(times, now)
            if not times:
                del self._failures[address]
                return None
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, address: str, reason: str) -> None:
        """Record one failed authentication from ``address`` and log it (``reason`` never holds
        the token: the caller passes a fixed phrase)."""
        now = self.clock.monotonic()
        with self._lock:
            times = self._failures.pop(address, None)
            if times is None:
                times = deque(maxlen=self.limit)
            self._expire(times, now)
            times.append(now)
            self._failures[address] = times  # the most recently failed address goes last
            self._bound()
            refused = len(times) >= self.limit
        log.warning("authentication failed from %s: %s", address, reason)
        if refused:
            log.warning(
                "address %s refused for up to %.0f s: %d failed authentications within %.0f s",
                address,
                self.window,
                self.limit,
                self.window,
            )

    def tracked(self) -> int:
        """How many addresses are tracked now (for tests of the memory bound)."""
        with self._lock:
            return len(self._failures)

    def _expire(self, times: deque[float], now: float) -> None:
        while times and now - times[0] >= self.window:
            times.popleft()

    def _bound(self) -> None:
        """Forget the least recently failed addresses beyond ``max_addresses``."""
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

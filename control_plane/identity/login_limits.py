"""Login throttling: a per-address rate limit and a per-account lockout after failures."""

from __future__ import annotations

import time
from collections import deque


class SlidingWindowLimiter:
    """At most ``limit`` events per ``window`` seconds per key (in this process)."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._max_keys = max_keys

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        events = self._events.get(key)
        if events is None:
            if len(self._events) >= self._max_keys:
                self._events.clear()
            events = self._events[key] = deque()
        while events and now - events[0] > self.window:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def retry_after(self, key: str) -> int:
        events = self._events.get(key)
        if not events:
            return 0
        return max(1, int(self.window - (time.monotonic() - events[0])) + 1)


class UnknownAccountFailures:
    """Failure counts for emails with no account, so lockouts do not reveal which exist."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self._failures: dict[str, tuple[int, float]] = {}
        self._max_keys = max_keys

    def record(self, email: str, lockout_seconds: float) -> int:
        count, since = self._failures.get(email, (0, time.monotonic()))
        if time.monotonic() - since > lockout_seconds:
            count, since = 0, time.monotonic()
        if len(self._failures) >= self._max_keys:
            self._failures.clear()
        self._failures[email] = (count + 1, since)
        return count + 1

    def count(self, email: str, lockout_seconds: float) -> int:
        count, since = self._failures.get(email, (0, 0.0))
        return count if time.monotonic() - since <= lockout_seconds else 0

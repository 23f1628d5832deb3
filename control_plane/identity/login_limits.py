"""Login throttling: a per-address rate limit and a per-account lockout after failures."""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime, timedelta


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
    """Failure counts for emails with no account, so lockouts do not reveal which exist.

    Kept exactly like a real account's (``User.failed_logins`` / ``locked_until``) and on the
    same clock, so an unknown email locks, reports ``Retry-After`` and unlocks the same way.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._failures: dict[str, tuple[int, datetime | None]] = {}
        self._max_keys = max_keys

    def locked_until(self, email: str, now: datetime) -> datetime | None:
        """When the lock on ``email`` ends, or None when it is not locked."""
        _, until = self._failures.get(email, (0, None))
        return until if until is not None and until > now else None

    def record_failure(
        self, email: str, now: datetime, max_failures: int, lockout_seconds: int
    ) -> None:
        """Count a failure; the ``max_failures``-th locks for ``lockout_seconds``."""
        count, _ = self._failures.get(email, (0, None))
        if len(self._failures) >= self._max_keys:
            self._failures.clear()
        if count + 1 >= max_failures:
            self._failures[email] = (0, now + timedelta(seconds=lockout_seconds))
        else:
            self._failures[email] = (count + 1, None)

"""Per-API-key limits: requests per second and tokens per minute, as token buckets kept
in this process (each gateway replica enforces its share)."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["KeyLimits", "Limiter"]


@dataclass
class _Bucket:
    level: float
    at: float


@dataclass(frozen=True, slots=True)
class KeyLimits:
    requests_per_second: float
    tokens_per_minute: int


class Limiter:
    def __init__(self, limits: KeyLimits) -> None:
        self._limits = limits
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}

    def _level(self, buckets: dict[str, _Bucket], key: str, rate: float, size: float) -> _Bucket:
        now = time.monotonic()
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(size, now)
        bucket.level = min(size, bucket.level + (now - bucket.at) * rate)
        bucket.at = now
        return bucket

    def admit(self, key: str) -> float | None:
        """None when the key may send a request now, else seconds until it may."""
        rps = self._limits.requests_per_second
        tokens = self._level(
            self._tokens,
            key,
            self._limits.tokens_per_minute / 60.0,
            float(self._limits.tokens_per_minute),
        )
        if tokens.level <= 0:
            return -tokens.level / (self._limits.tokens_per_minute / 60.0) + 0.001
        requests = self._level(self._requests, key, rps, max(1.0, rps))
        if requests.level < 1:
            return (1 - requests.level) / rps
        requests.level -= 1
        return None

    def spend_tokens(self, key: str, tokens: int) -> None:
        """Charge tokens used (after the fact: a request may take the bucket below zero,
        which holds back the key's next requests until it refills)."""
        bucket = self._level(
            self._tokens,
            key,
            self._limits.tokens_per_minute / 60.0,
            float(self._limits.tokens_per_minute),
        )
        bucket.level -= tokens

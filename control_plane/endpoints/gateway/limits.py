"""Per-API-key limits: requests per second and tokens per minute, as token buckets kept
in this process (each gateway replica enforces its share). A key may carry its own limits
(set when it is created); others get the operator's defaults."""

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
        self._own: dict[str, KeyLimits] = {}

    @property
    def defaults(self) -> KeyLimits:
        return self._limits

    def _of(self, key: str, own: KeyLimits | None) -> KeyLimits:
        if own is not None:
            self._own[key] = own
        return self._own.get(key, self._limits)

    def _level(self, buckets: dict[str, _Bucket], key: str, rate: float, size: float) -> _Bucket:
        now = time.monotonic()
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = _Bucket(size, now)
        bucket.level = min(size, bucket.level + (now - bucket.at) * rate)
        bucket.at = now
        return bucket

    def _token_bucket(self, key: str, limits: KeyLimits) -> _Bucket:
        per_minute = limits.tokens_per_minute
        return self._level(self._tokens, key, per_minute / 60.0, float(per_minute))

    def admit(self, key: str, own: KeyLimits | None = None) -> float | None:
        """None when the key may send a request now, else seconds until it may. ``own``
        are the key's own limits (else the defaults)."""
        limits = self._of(key, own)
        tokens = self._token_bucket(key, limits)
        if tokens.level <= 0:
            return -tokens.level / (limits.tokens_per_minute / 60.0) + 0.001
        rps = limits.requests_per_second
        requests = self._level(self._requests, key, rps, max(1.0, rps))
        if requests.level < 1:
            return (1 - requests.level) / rps
        requests.level -= 1
        return None

    def spend_tokens(self, key: str, tokens: int) -> None:
        """Charge tokens used (after the fact: a request may take the bucket below zero,
        which holds back the key's next requests until it refills)."""
        self._token_bucket(key, self._of(key, None)).level -= tokens

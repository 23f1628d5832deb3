"""Prefixed, time-sortable, opaque identifiers such as ``org_01JD3...``."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the latest id made by this process


def new_id(prefix: str) -> str:
    """Return ``prefix_`` + 26 characters: 48 bits of milliseconds then 80 random bits.

    Ids made by one process strictly increase, even within a millisecond (the random part
    then counts up, as monotonic ULIDs do), so lists ordered by id keep creation order.
    """
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        if millis > last_millis:
            randomness = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
        elif last_random + 1 < 1 << _RANDOM_BITS:
            millis, randomness = last_millis, last_random + 1
        else:  # the random part ran out within one millisecond: borrow the next one
            millis, randomness = last_millis + 1, 0
        _last = (millis, randomness)
    return f"{prefix}_{_encode(millis, 10)}{_encode(randomness, 16)}"

"""Prefixed, time-sortable, opaque identifiers such as ``org_01JD3...``."""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # every 10-bit value, two digits


def _encode(value: int, length: int) -> str:
    """The last ``length`` (even) base32 digits of ``value``, two digits per lookup."""
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in range(5 * length - 10, -1, -10)])


_RANDOM_BITS = 80
_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, random part) of the latest id made by this process


def new_id(prefix: str) -> str:
    """Return ``prefix_`` + 26 characters: 48 bits of milliseconds then 80 random bits.

    Ids made by one process strictly increase, even within a millisecond (the random part
    then counts up, as monotonic ULIDs do), so lists ordered by id keep creation order.
    """
    return new_ids(prefix, 1)[0]


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` ids as ``count`` calls of new_id would make them, taking the lock once."""
    global _last
    made = []
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_random = _last
        for _ in range(count):
            if millis > last_millis:
                randomness = int.from_bytes(os.urandom(_RANDOM_BITS // 8), "big")
            elif last_random + 1 < 1 << _RANDOM_BITS:
                millis, randomness = last_millis, last_random + 1
            else:  # the random part ran out within one millisecond: borrow the next one
                millis, randomness = last_millis + 1, 0
            last_millis, last_random = millis, randomness
            made.append((millis, randomness))
        _last = (last_millis, last_random)
    ids = []
    encoded_ms, encoded = -1, ""
    for ms, r in made:  # a batch mostly shares its millisecond: encode it once
        if ms != encoded_ms:
            encoded_ms, encoded = ms, f"{prefix}_{_encode(ms, 10)}"
        ids.append(encoded + _encode(r, 16))
    return ids

"""Prefixed ids: 26 Crockford base32 digits, strictly increasing within a process."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from control_plane.ids import _ALPHABET, _encode, new_id, new_ids

ID = re.compile(rf"aud_[{_ALPHABET}]{{26}}")


def reference(value: int, length: int) -> str:
    return "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(length)))


class TestIds:
    @given(st.integers(0, 2**130 - 1), st.sampled_from([10, 16, 26]))
    def test_encode_is_base32_of_the_low_digits(self, value: int, length: int) -> None:
        assert _encode(value, length) == reference(value, length)

    def test_a_batch_is_what_single_calls_would_make(self) -> None:
        batch = new_ids("aud", 500)
        made = [*batch, new_id("aud"), *new_ids("aud", 3)]
        assert all(ID.fullmatch(i) for i in made)
        assert made == sorted(made)
        assert len(set(made)) == len(made)

    def test_an_empty_batch_is_empty(self) -> None:
        assert new_ids("aud", 0) == []

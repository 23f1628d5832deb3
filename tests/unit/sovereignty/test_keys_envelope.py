"""The envelope format: round trips, and every alteration or misplacement is refused."""

from __future__ import annotations

import pytest

from control_plane.sovereignty.keys.envelope import (
    Context,
    EnvelopeError,
    key_version,
    new_data_key,
    seal,
    unseal,
)

CONTEXT = Context(org_id="org_a", purpose="secret/kubeconfig", record_id="sec_1")


class TestRoundTrip:
    def test_a_sealed_value_opens_with_its_key_and_context(self) -> None:
        key = new_data_key()
        sealed = seal(key, 3, b"apiVersion: v1\nkind: Config\n", CONTEXT)

        assert unseal(key, sealed, CONTEXT) == b"apiVersion: v1\nkind: Config\n"

    def test_the_ciphertext_names_its_data_key_version_and_hides_the_value(self) -> None:
        sealed = seal(new_data_key(), 7, b"hunter2-hunter2", CONTEXT)

        assert key_version(sealed) == 7
        assert b"hunter2" not in sealed
        assert sealed.startswith(b"cpe\x01")

    def test_sealing_twice_gives_different_ciphertexts(self) -> None:
        key = new_data_key()

        assert seal(key, 1, b"same", CONTEXT) != seal(key, 1, b"same", CONTEXT)

    def test_provider_secrets_have_no_organization(self) -> None:
        key = new_data_key()
        provider = Context(org_id=None, purpose="secret/stripe_key", record_id="sec_9")

        assert unseal(key, seal(key, 1, b"sk_live_x", provider), provider) == b"sk_live_x"


class TestTampering:
    @pytest.mark.parametrize("position", [0, 3, 5, 10, 25, -1])
    def test_any_flipped_byte_is_refused(self, position: int) -> None:
        key = new_data_key()
        sealed = bytearray(seal(key, 1, b"a secret value", CONTEXT))
        sealed[position] ^= 0x01

        with pytest.raises(EnvelopeError):
            unseal(key, bytes(sealed), CONTEXT)

    def test_a_truncated_ciphertext_is_refused(self) -> None:
        key = new_data_key()
        sealed = seal(key, 1, b"a secret value", CONTEXT)

        with pytest.raises(EnvelopeError):
            unseal(key, sealed[:-1], CONTEXT)
        with pytest.raises(EnvelopeError):
            unseal(key, sealed[:20], CONTEXT)

    def test_the_wrong_key_is_refused(self) -> None:
        sealed = seal(new_data_key(), 1, b"a secret value", CONTEXT)

        with pytest.raises(EnvelopeError):
            unseal(new_data_key(), sealed, CONTEXT)

    def test_an_unknown_format_is_refused(self) -> None:
        key = new_data_key()
        sealed = bytearray(seal(key, 1, b"v", CONTEXT))
        sealed[3] = 2

        with pytest.raises(EnvelopeError, match="format 2"):
            unseal(key, bytes(sealed), CONTEXT)


class TestAssociatedData:
    @pytest.mark.parametrize(
        "other",
        [
            Context(org_id="org_b", purpose="secret/kubeconfig", record_id="sec_1"),
            Context(org_id=None, purpose="secret/kubeconfig", record_id="sec_1"),
            Context(org_id="org_a", purpose="secret/other", record_id="sec_1"),
            Context(org_id="org_a", purpose="secret/kubeconfig", record_id="sec_2"),
        ],
        ids=["other-org", "provider", "other-purpose", "other-record"],
    )
    def test_a_ciphertext_moved_to_another_owner_purpose_or_record_is_refused(
        self, other: Context
    ) -> None:
        key = new_data_key()
        sealed = seal(key, 1, b"a secret value", CONTEXT)

        with pytest.raises(EnvelopeError):
            unseal(key, sealed, other)

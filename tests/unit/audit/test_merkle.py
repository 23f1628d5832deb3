"""RFC 6962 Merkle tree, inclusion proofs, Ed25519 checkpoint signatures and key rotation."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.audit import (
    Keyring,
    Leaf,
    SigningKey,
    build_checkpoint,
    inclusion_proof,
    merkle_root,
    verify_inclusion,
)
from control_plane.audit.merkle import leaf_hash

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def leaves(n: int) -> list[Leaf]:
    return [
        Leaf(f"org_{i:03d}/ca-qc-1", i + 1, hashlib.sha256(str(i).encode()).hexdigest())
        for i in range(n)
    ]


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class TestMerkleRoot:
    def test_empty_tree_is_the_hash_of_nothing(self) -> None:
        assert merkle_root([]) == hashlib.sha256(b"").hexdigest()

    def test_leaf_hash_is_domain_separated_from_nodes(self) -> None:
        leaf = leaves(1)[0]
        encoded = f'{{"chain":"org_000/ca-qc-1","entry_hash":"{leaf.entry_hash}","seq":1}}'
        expected = hashlib.sha256(b"\x00" + encoded.encode()).digest()
        assert leaf_hash(leaf) == expected
        assert merkle_root([leaf]) == expected.hex()

    def test_three_leaves_split_at_the_largest_power_of_two(self) -> None:
        a, b, c = (leaf_hash(x) for x in leaves(3))
        assert merkle_root(leaves(3)) == node(node(a, b), c).hex()


class TestInclusionProof:
    @pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 16, 17])
    def test_every_leaf_proves_into_the_root(self, size: int) -> None:
        tree = leaves(size)
        root = merkle_root(tree)
        for i, leaf in enumerate(tree):
            assert verify_inclusion(leaf, i, size, inclusion_proof(tree, i), root)

    @given(size=st.integers(2, 70), data=st.data())
    def test_proof_fails_for_another_leaf_index_or_root(
        self, size: int, data: st.DataObject
    ) -> None:
        tree = leaves(size)
        root = merkle_root(tree)
        i = data.draw(st.integers(0, size - 1))
        other = data.draw(st.integers(0, size - 1).filter(lambda j: j != i))
        proof = inclusion_proof(tree, i)
        assert verify_inclusion(tree[i], i, size, proof, root)
        assert not verify_inclusion(tree[other], i, size, proof, root)
        assert not verify_inclusion(tree[i], other, size, proof, root)
        assert not verify_inclusion(tree[i], i, size, proof, merkle_root(tree[:-1]))
        assert not verify_inclusion(dataclasses.replace(tree[i], seq=0), i, size, proof, root)

    def test_proof_size_is_logarithmic(self) -> None:
        assert len(inclusion_proof(leaves(1000), 417)) == 10

    def test_index_outside_the_tree_is_refused(self) -> None:
        assert not verify_inclusion(leaves(1)[0], 3, 2, [], merkle_root(leaves(2)))
        with pytest.raises(IndexError):
            inclusion_proof(leaves(2), 2)


class TestSigningKey:
    def test_key_id_is_the_start_of_the_public_key_hash(self) -> None:
        key = SigningKey.generate()
        raw = base64.b64decode(key.public_key_b64)
        assert len(raw) == 32
        assert key.key_id == hashlib.sha256(raw).hexdigest()[:16]

    def test_round_trips_through_its_raw_seed(self) -> None:
        key = SigningKey.generate()
        assert SigningKey.from_private_bytes(key.private_bytes()).key_id == key.key_id
        assert key.key_id in repr(key)
        assert "private" not in repr(key)


class TestCheckpoint:
    def keyring(self) -> Keyring:
        ring = Keyring()
        ring.add("ca-qc-1", SigningKey.generate(), T0)
        return ring

    def test_signed_checkpoint_verifies_with_the_region_key(self) -> None:
        ring = self.keyring()
        cp, sorted_leaves = build_checkpoint(
            region="ca-qc-1", at=T0 + timedelta(hours=1), heads=reversed(leaves(5)), prev=None,
            key=ring.signing_key("ca-qc-1"),
        )  # fmt: skip
        assert sorted_leaves == leaves(5)
        assert (cp.number, cp.tree_size, cp.prev_checkpoint_hash) == (1, 5, "0" * 64)
        assert cp.check_signature(ring.public_keys()) is None

    def test_changed_root_breaks_the_signature(self) -> None:
        ring = self.keyring()
        cp, _ = build_checkpoint(
            region="ca-qc-1", at=T0, heads=leaves(3), prev=None, key=ring.signing_key("ca-qc-1")
        )
        forged = dataclasses.replace(cp, root=merkle_root(leaves(2)))
        assert "does not verify" in str(forged.check_signature(ring.public_keys()))

    def test_next_checkpoint_names_the_previous_hash(self) -> None:
        ring = self.keyring()
        key = ring.signing_key("ca-qc-1")
        first, _ = build_checkpoint(region="ca-qc-1", at=T0, heads=leaves(3), prev=None, key=key)
        second, _ = build_checkpoint(region="ca-qc-1", at=T0, heads=leaves(4), prev=first, key=key)
        assert (second.number, second.prev_checkpoint_hash) == (2, first.checkpoint_hash)

    def test_rotation_keeps_old_checkpoints_valid_and_retires_the_old_key(self) -> None:
        ring = self.keyring()
        old = ring.signing_key("ca-qc-1")
        before, _ = build_checkpoint(region="ca-qc-1", at=T0, heads=leaves(2), prev=None, key=old)
        ring.rotate("ca-qc-1", SigningKey.generate(), T0 + timedelta(days=1))
        late, _ = build_checkpoint(
            region="ca-qc-1", at=T0 + timedelta(days=2), heads=leaves(2), prev=before, key=old
        )
        new, _ = build_checkpoint(
            region="ca-qc-1", at=T0 + timedelta(days=2), heads=leaves(2), prev=before,
            key=ring.signing_key("ca-qc-1"),
        )  # fmt: skip
        keys = ring.public_keys()
        assert [k.not_after for k in keys] == [T0 + timedelta(days=1), None]
        assert before.check_signature(keys) is None
        assert new.check_signature(keys) is None
        assert "not valid at" in str(late.check_signature(keys))

    def test_key_of_another_region_or_unknown_key_is_refused(self) -> None:
        ring = self.keyring()
        ring.add("se-north-1", SigningKey.generate(), T0)
        swedish = ring.signing_key("se-north-1")
        cp, _ = build_checkpoint(region="ca-qc-1", at=T0, heads=leaves(2), prev=None, key=swedish)
        assert "belongs to region se-north-1" in str(cp.check_signature(ring.public_keys()))
        stranger, _ = build_checkpoint(
            region="ca-qc-1", at=T0, heads=leaves(2), prev=None, key=SigningKey.generate()
        )
        assert "unknown key" in str(stranger.check_signature(ring.public_keys()))

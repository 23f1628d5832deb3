"""Signed checkpoints: an RFC 6962 Merkle tree over every chain head of a region.

leaf      = canonical JSON {"chain", "entry_hash", "seq"} of one chain head
leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right)
An inclusion proof (audit path) shows one chain's head is in the signed root without
revealing any other organization's chain. See docs/audit-format.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from control_plane.audit.canonical import canonical_json, format_time, parse_time
from control_plane.audit.chain import GENESIS_HASH
from control_plane.audit.signing import PublicKeyRecord, SigningKey, check_signed

__all__ = [
    "CHECKPOINT_DOMAIN",
    "Checkpoint",
    "InclusionProof",
    "Leaf",
    "build_checkpoint",
    "inclusion_proof",
    "leaf_hash",
    "merkle_root",
    "proofs_for",
    "verify_inclusion",
]

CHECKPOINT_DOMAIN = b"cp-audit-checkpoint-v1\x00"
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


@dataclass(frozen=True, slots=True, order=True)
class Leaf:
    """One chain's head at checkpoint time. Leaves sort by chain name."""

    chain: str
    seq: int
    entry_hash: str

    def encode(self) -> bytes:
        return canonical_json({"chain": self.chain, "seq": self.seq, "entry_hash": self.entry_hash})


def leaf_hash(leaf: Leaf) -> bytes:
    return hashlib.sha256(b"\x00" + leaf.encode()).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _root(hashes: Sequence[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return _node(_root(hashes[:k]), _root(hashes[k:]))


def merkle_root(leaves: Sequence[Leaf]) -> str:
    """Hex RFC 6962 Merkle tree hash; the empty tree hashes to SHA-256 of nothing."""
    if not leaves:
        return EMPTY_ROOT
    return _root([leaf_hash(x) for x in leaves]).hex()


def _path(m: int, hashes: Sequence[bytes]) -> list[bytes]:
    if len(hashes) == 1:
        return []
    k = _split(len(hashes))
    if m < k:
        return [*_path(m, hashes[:k]), _root(hashes[k:])]
    return [*_path(m - k, hashes[k:]), _root(hashes[:k])]


def inclusion_proof(leaves: Sequence[Leaf], index: int) -> list[str]:
    """Audit path (hex hashes, leaf to root) for ``leaves[index]``."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} outside a tree of {len(leaves)}")
    return [h.hex() for h in _path(index, [leaf_hash(x) for x in leaves])]


def verify_inclusion(leaf: Leaf, index: int, size: int, proof: Sequence[str], root: str) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` place ``leaf`` at ``index`` under ``root``?"""
    if not 0 <= index < size:
        return False
    try:
        path = [bytes.fromhex(p) for p in proof]
    except ValueError:
        return False
    fn, sn, r = index, size - 1, leaf_hash(leaf)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = _node(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r.hex() == root


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed commitment to every chain head of one region at one moment."""

    region: str
    number: int
    at: str
    tree_size: int
    root: str
    prev_checkpoint_hash: str
    key_id: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "number": self.number,
            "at": self.at,
            "tree_size": self.tree_size,
            "root": self.root,
            "prev_checkpoint_hash": self.prev_checkpoint_hash,
            "key_id": self.key_id,
        }

    def signed_bytes(self) -> bytes:
        """What the signature covers: domain prefix + canonical body (no signature)."""
        return CHECKPOINT_DOMAIN + canonical_json(self.body())

    @property
    def checkpoint_hash(self) -> str:
        """What the next checkpoint of the region names as prev_checkpoint_hash."""
        return hashlib.sha256(self.signed_bytes()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """Parse ``to_dict`` output; raises ValueError/KeyError/TypeError when malformed."""
        ints = {name: data[name] for name in ("number", "tree_size")}
        if any(not isinstance(v, int) or isinstance(v, bool) for v in ints.values()):
            raise TypeError("number and tree_size must be integers")
        texts = {
            name: data[name]
            for name in ("region", "at", "root", "prev_checkpoint_hash", "key_id", "signature")
        }
        if any(not isinstance(v, str) for v in texts.values()):
            raise TypeError("checkpoint text fields must be strings")
        return cls(**ints, **texts)

    def check_signature(self, keys: Iterable[PublicKeyRecord]) -> str | None:
        """None if validly signed by a key of this region valid at ``at``; else why not."""
        return check_signed(
            keys,
            key_id=self.key_id,
            region=self.region,
            at=parse_time(self.at),
            message=self.signed_bytes(),
            signature=self.signature,
        )


def build_checkpoint(
    *,
    region: str,
    at: datetime,
    heads: Iterable[Leaf],
    prev: Checkpoint | None,
    key: SigningKey,
) -> tuple[Checkpoint, list[Leaf]]:
    """Sign the next checkpoint of ``region`` over ``heads``; returns it and its sorted leaves."""
    leaves = sorted(heads)
    if len({x.chain for x in leaves}) != len(leaves):
        raise ValueError("one head per chain")
    if prev is not None and prev.region != region:
        raise ValueError("checkpoints chain within one region")
    unsigned = Checkpoint(
        region=region,
        number=1 if prev is None else prev.number + 1,
        at=format_time(at),
        tree_size=len(leaves),
        root=merkle_root(leaves),
        prev_checkpoint_hash=GENESIS_HASH if prev is None else prev.checkpoint_hash,
        key_id=key.key_id,
        signature="",
    )
    signed = Checkpoint(**{**unsigned.body(), "signature": key.sign(unsigned.signed_bytes())})
    return signed, leaves


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """Proof that ``chain``'s head (seq, entry_hash) is leaf ``leaf_index`` of a checkpoint."""

    region: str
    number: int
    chain: str
    seq: int
    entry_hash: str
    leaf_index: int
    tree_size: int
    path: tuple[str, ...]

    @property
    def leaf(self) -> Leaf:
        return Leaf(self.chain, self.seq, self.entry_hash)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "checkpoint": self.number,
            "chain": self.chain,
            "seq": self.seq,
            "entry_hash": self.entry_hash,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "path": list(self.path),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InclusionProof:
        path = data["path"]
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise TypeError("path must be a list of hex strings")
        for name in ("checkpoint", "seq", "leaf_index", "tree_size"):
            if not isinstance(data[name], int) or isinstance(data[name], bool):
                raise TypeError(f"{name} must be an integer")
        return cls(
            region=str(data["region"]),
            number=data["checkpoint"],
            chain=str(data["chain"]),
            seq=data["seq"],
            entry_hash=str(data["entry_hash"]),
            leaf_index=data["leaf_index"],
            tree_size=data["tree_size"],
            path=tuple(path),
        )

    def verify(self, checkpoint: Checkpoint) -> bool:
        return (
            checkpoint.region == self.region
            and checkpoint.number == self.number
            and checkpoint.tree_size == self.tree_size
            and verify_inclusion(
                self.leaf, self.leaf_index, self.tree_size, self.path, checkpoint.root
            )
        )


def proofs_for(
    checkpoint: Checkpoint, leaves: Sequence[Leaf], chains: Iterable[str]
) -> list[InclusionProof]:
    """Inclusion proofs for the heads of ``chains`` (those present) in ``checkpoint``."""
    wanted = set(chains)
    return [
        InclusionProof(
            region=checkpoint.region,
            number=checkpoint.number,
            chain=leaf.chain,
            seq=leaf.seq,
            entry_hash=leaf.entry_hash,
            leaf_index=i,
            tree_size=len(leaves),
            path=tuple(inclusion_proof(leaves, i)),
        )
        for i, leaf in enumerate(leaves)
        if leaf.chain in wanted
    ]

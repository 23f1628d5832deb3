"""Tamper-evident audit ledger: hash chains, signed Merkle checkpoints, offline bundles.

This package is pure (no database, no network); the request transaction wiring lives
elsewhere. Format specification: docs/audit-format.md.
"""

from control_plane.audit.bundle import VerifyResult, verify_bundle, write_bundle
from control_plane.audit.canonical import CanonicalError, canonical_json, payload_hash
from control_plane.audit.chain import (
    GENESIS_HASH,
    ActorKind,
    AuditEntry,
    Problem,
    ProblemKind,
    append,
    chain_name,
    verify_chain,
)
from control_plane.audit.merkle import (
    Checkpoint,
    InclusionProof,
    Leaf,
    build_checkpoint,
    inclusion_proof,
    merkle_root,
    proofs_for,
    verify_inclusion,
)
from control_plane.audit.signing import Keyring, PublicKeyRecord, SigningKey

__all__ = [
    "GENESIS_HASH",
    "ActorKind",
    "AuditEntry",
    "CanonicalError",
    "Checkpoint",
    "InclusionProof",
    "Keyring",
    "Leaf",
    "Problem",
    "ProblemKind",
    "PublicKeyRecord",
    "SigningKey",
    "VerifyResult",
    "append",
    "build_checkpoint",
    "canonical_json",
    "chain_name",
    "inclusion_proof",
    "merkle_root",
    "payload_hash",
    "proofs_for",
    "verify_bundle",
    "verify_chain",
    "verify_inclusion",
    "write_bundle",
]

"""API shapes of the ledger: entries as exported, public keys, checkpoints."""

from __future__ import annotations

import msgspec


class ActorRead(msgspec.Struct):
    kind: str
    id: str | None


class TargetRead(msgspec.Struct):
    type: str | None
    id: str | None


class AuditEntryRead(msgspec.Struct):
    """One ledger entry, exactly as hashed (the same shape as a line of entries.jsonl)."""

    seq: int
    chain: str
    at: str
    actor: ActorRead
    org_id: str | None
    action: str
    target: TargetRead
    request_id: str | None
    source_address: str | None
    outcome: str
    decision_ref: str | None
    payload_hash: str
    prev_hash: str
    entry_hash: str


class PublicKeyRead(msgspec.Struct):
    key_id: str
    region: str
    algorithm: str
    public_key: str
    not_before: str
    not_after: str | None


class AuditKeysRead(msgspec.Struct):
    """The public keys that sign this region's checkpoints, oldest first."""

    region: str
    keys: list[PublicKeyRead]


class CheckpointRead(msgspec.Struct):
    region: str
    number: int
    at: str
    tree_size: int
    root: str
    prev_checkpoint_hash: str
    key_id: str
    signature: str

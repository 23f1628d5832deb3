"""The secret store: how every domain keeps a secret at rest and gets it back.

Other domains call these functions with the organization the secret belongs to (``None``
for the provider's own secrets, such as the Stripe key or the OIDC client secret)::

    from control_plane.sovereignty.keys import service as secrets
    from control_plane.sovereignty.keys.models import SecretKind

    stored = await secrets.put(
        db, org_id=None, name="bmc/node-17", kind=SecretKind.BMC_CREDENTIALS,
        value=b'{"user": "root", "password": "..."}',
        actor=secrets.Actor.system("inventory"), clock=clock, settings=settings,
    )
    value = await secrets.reveal(
        db, org_id=None, secret_id=stored.id, justification="power-cycle node-17 (OPS-4411)",
        actor=secrets.Actor.system("tenancies.redfish"), clock=clock, settings=settings,
    )

Values are encrypted with the keyring's active data key before they touch the session,
and come back only through :func:`reveal`, which appends a ``keys.use`` entry (with the
justification) to the ledger in the caller's transaction. The entry is written only if the
caller commits: commit before acting on a revealed value. Nothing here commits.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit.store import record
from control_plane.clock import Clock
from control_plane.errors import Conflict, FieldError, InvalidInput, NotFound
from control_plane.identity.principal import Principal
from control_plane.ids import new_id
from control_plane.settings import Settings
from control_plane.sovereignty.keys import datakeys, repository
from control_plane.sovereignty.keys.datakeys import Keyring
from control_plane.sovereignty.keys.envelope import (
    Context,
    EnvelopeError,
    key_version,
    seal,
    unseal,
)
from control_plane.sovereignty.keys.kek import FileKeyEncryptionKeys, KeyEncryptionKeys
from control_plane.sovereignty.keys.models import (
    PROVIDER_KEYRING,
    DataKey,
    DataKeyState,
    Secret,
    SecretKind,
)
from control_plane.sovereignty.keys.schemas import MAX_SECRET_BYTES, DataKeyRead, SecretRead

__all__ = [
    "Actor",
    "create",
    "data_key_read",
    "decode_value",
    "delete",
    "find",
    "get",
    "keys_for",
    "org_deletion_hook",
    "put",
    "replace",
    "reveal",
    "reveal_by_name",
    "rotate_data_key",
    "secret_read",
    "served_region",
    "shred_organization",
]

USE_ACTION = "keys.use"
MAX_JUSTIFICATION = 200  # the ledger's decision_ref column


@dataclass(frozen=True)
class Actor:
    """Who stores or uses a secret, as the ledger names them."""

    kind: str  # "user", "api_key", "operator" or "system"
    id: str | None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        if principal.kind == "api_key":
            return cls("api_key", principal.id)
        kind = "operator" if principal.provider_role is not None else "user"
        return cls(kind, principal.user_id or principal.id)

    @classmethod
    def system(cls, component: str) -> Actor:
        """The platform itself, e.g. ``Actor.system("tenancies.redfish")``."""
        return cls("system", component)


def keys_for(settings: Settings) -> KeyEncryptionKeys:
    """The KEK store this deployment uses (the key files under ``settings.key_dir``)."""
    return _file_keys(Path(settings.key_dir).resolve())


@lru_cache(maxsize=16)
def _file_keys(key_dir: Path) -> FileKeyEncryptionKeys:
    return FileKeyEncryptionKeys(key_dir)


def served_region(settings: Settings, region: str | None = None, field: str = "body.region") -> str:
    """The region whose keys this deployment holds; another region's keys never come here."""
    if region is None or region == settings.region:
        return settings.region
    raise Conflict(
        detail=(
            f"This deployment holds the keys of {settings.region} only; keys of {region} "
            "are held by that region's control plane."
        ),
        errors=[FieldError(field, f"must be {settings.region}")],
    )


def decode_value(value: str, encoding: str, field: str = "body.value") -> bytes:
    """The bytes of a value sent as text (UTF-8) or base64, within the size limit."""
    try:
        raw = base64.b64decode(value, validate=True) if encoding == "base64" else value.encode()
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(
            detail="The value is not valid base64.", errors=[FieldError(field, "invalid base64")]
        ) from exc
    _check_size(raw, field)
    return raw


def secret_read(row: Secret) -> SecretRead:
    return SecretRead(
        id=row.id,
        org_id=row.org_id,
        region=row.region,
        name=row.name,
        kind=SecretKind(row.kind),
        description=row.description,
        data_key_version=row.data_key_version,
        created_by=row.created_by,
        created_at=row.created_at,
        rotated_at=row.rotated_at,
    )


def data_key_read(row: DataKey) -> DataKeyRead:
    return DataKeyRead(
        id=row.id,
        region=row.region,
        version=row.version,
        state=DataKeyState(row.state),
        kek_id=row.kek_id,
        kek_version=row.kek_version,
        created_at=row.created_at,
        rewrapped_at=row.rewrapped_at,
        retired_at=row.retired_at,
        destroyed_at=row.destroyed_at,
    )


async def create(
    db: AsyncSession,
    *,
    org_id: str | None,
    name: str,
    kind: SecretKind,
    value: bytes,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    description: str = "",
    region: str | None = None,
    keks: KeyEncryptionKeys | None = None,
) -> SecretRead:
    """Store a new secret; 409 when the name is taken in this organization and region."""
    ring = Keyring(org_id, served_region(settings, region))
    _check_size(value)
    if await repository.secret_by_name(db, ring.name, ring.region, name) is not None:
        raise _name_taken()
    row = Secret(
        id=new_id("sec"),
        keyring=ring.name,
        org_id=org_id,
        region=ring.region,
        name=name,
        kind=kind,
        description=description,
        created_by=actor.id,
        created_at=clock.now(),
    )
    await _encrypt_into(db, keks or keys_for(settings), ring, row, value, clock)
    db.add(row)
    try:
        await db.flush()
    except IntegrityError as exc:  # taken by a concurrent request since the check above
        raise _name_taken() from exc
    return secret_read(row)


async def put(
    db: AsyncSession,
    *,
    org_id: str | None,
    name: str,
    kind: SecretKind,
    value: bytes,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    description: str | None = None,
    region: str | None = None,
    keks: KeyEncryptionKeys | None = None,
) -> SecretRead:
    """Store ``value`` under ``name``, replacing the value of an existing secret of that name."""
    ring = Keyring(org_id, served_region(settings, region))
    existing = await repository.secret_by_name(db, ring.name, ring.region, name)
    if existing is None:
        return await create(
            db,
            org_id=org_id,
            name=name,
            kind=kind,
            value=value,
            actor=actor,
            clock=clock,
            settings=settings,
            description=description or "",
            region=ring.region,
            keks=keks,
        )
    if existing.kind != kind:
        raise Conflict(
            detail=f"A {existing.kind} secret is already named {name!r}.",
            errors=[FieldError("body.kind", f"the existing secret is a {existing.kind}")],
        )
    return await _replace_row(db, existing, value, clock, settings, description, keks)


async def replace(
    db: AsyncSession,
    *,
    org_id: str | None,
    secret_id: str,
    value: bytes,
    clock: Clock,
    settings: Settings,
    description: str | None = None,
    keks: KeyEncryptionKeys | None = None,
) -> SecretRead:
    """Replace a secret's value (encrypted with the active data key version)."""
    row = await _secret(db, org_id, secret_id)
    return await _replace_row(db, row, value, clock, settings, description, keks)


async def delete(db: AsyncSession, *, org_id: str | None, secret_id: str) -> None:
    await db.delete(await _secret(db, org_id, secret_id))
    await db.flush()


async def get(db: AsyncSession, *, org_id: str | None, secret_id: str) -> SecretRead:
    """A secret's metadata (never its value)."""
    return secret_read(await _secret(db, org_id, secret_id))


async def find(
    db: AsyncSession,
    *,
    org_id: str | None,
    name: str,
    settings: Settings,
    region: str | None = None,
) -> SecretRead | None:
    """A secret's metadata by name, or None."""
    row = await repository.secret_by_name(
        db, org_id or PROVIDER_KEYRING, served_region(settings, region), name
    )
    return secret_read(row) if row else None


async def reveal(
    db: AsyncSession,
    *,
    org_id: str | None,
    secret_id: str,
    justification: str,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    request_id: str | None = None,
    keks: KeyEncryptionKeys | None = None,
) -> bytes:
    """Decrypt a secret for the platform's use, ledgering who used it and why.

    Raises 400 without a justification, 404 for an unknown secret, 410 (``key-destroyed``)
    when the organization was deleted and its keys shredded, 503 when a key is missing here.
    """
    reason = _justification(justification)
    row = await _secret(db, org_id, secret_id)
    value = await _decrypt(db, keks or keys_for(settings), row)
    await record(
        db,
        org_id=row.org_id,
        region=settings.region,
        actor_kind=actor.kind,
        actor_id=actor.id,
        action=USE_ACTION,
        target_type="secret",
        target_id=row.id,
        request_id=request_id,
        source_address=None,
        outcome="success",
        decision_ref=reason,
        payload={"name": row.name, "kind": row.kind, "data_key_version": row.data_key_version},
        at=clock.now(),
    )
    return value


async def reveal_by_name(
    db: AsyncSession,
    *,
    org_id: str | None,
    name: str,
    justification: str,
    actor: Actor,
    clock: Clock,
    settings: Settings,
    request_id: str | None = None,
    keks: KeyEncryptionKeys | None = None,
) -> bytes:
    """:func:`reveal` for callers that know a secret by name (e.g. the provider's Stripe key)."""
    found = await find(db, org_id=org_id, name=name, settings=settings)
    if found is None:
        raise NotFound(detail=f"No secret named {name!r}.")
    return await reveal(
        db,
        org_id=org_id,
        secret_id=found.id,
        justification=justification,
        actor=actor,
        clock=clock,
        settings=settings,
        request_id=request_id,
        keks=keks,
    )


async def rotate_data_key(
    db: AsyncSession,
    *,
    org_id: str | None,
    clock: Clock,
    settings: Settings,
    keks: KeyEncryptionKeys | None = None,
) -> DataKeyRead:
    """A new data-key version for new writes; existing secrets keep their version and read."""
    ring = Keyring(org_id, served_region(settings))
    return data_key_read(await datakeys.rotate(db, keks or keys_for(settings), ring, clock))


async def shred_organization(
    db: AsyncSession, org_id: str, at: datetime, *, settings: Settings, clock: Clock
) -> list[int]:
    """Destroy every data key of a deleted organization (crypto-shredding) and ledger it."""
    destroyed = await datakeys.destroy(db, org_id, clock)
    await record(
        db,
        org_id=org_id,
        region=settings.region,
        actor_kind="system",
        actor_id="sovereignty.keys",
        action="keys.destroy",
        target_type="organization",
        target_id=org_id,
        request_id=None,
        source_address=None,
        outcome="success",
        decision_ref="organization deleted",
        payload={"destroyed_versions": destroyed, "at": at.isoformat()},
        at=clock.now(),
    )
    return destroyed


def org_deletion_hook(
    settings: Settings, clock: Clock
) -> Callable[[AsyncSession, str, datetime], Awaitable[None]]:
    """What identity calls when an organization is deleted (wired by the app factory)."""

    async def hook(db: AsyncSession, org_id: str, at: datetime) -> None:
        await shred_organization(db, org_id, at, settings=settings, clock=clock)

    return hook


async def _secret(db: AsyncSession, org_id: str | None, secret_id: str) -> Secret:
    row = await repository.secret_by_id(db, org_id or PROVIDER_KEYRING, secret_id)
    if row is None:
        raise NotFound(detail="No such secret.")
    return row


async def _replace_row(
    db: AsyncSession,
    row: Secret,
    value: bytes,
    clock: Clock,
    settings: Settings,
    description: str | None,
    keks: KeyEncryptionKeys | None,
) -> SecretRead:
    _check_size(value)
    ring = Keyring(row.org_id, row.region)
    await _encrypt_into(db, keks or keys_for(settings), ring, row, value, clock)
    row.rotated_at = clock.now()
    if description is not None:
        row.description = description
    await db.flush()
    return secret_read(row)


async def _encrypt_into(
    db: AsyncSession,
    keks: KeyEncryptionKeys,
    ring: Keyring,
    row: Secret,
    value: bytes,
    clock: Clock,
) -> None:
    version, key = await datakeys.active_key(db, keks, ring, clock)
    row.ciphertext = seal(key, version, value, _context(row))
    row.data_key_version = version


async def _decrypt(db: AsyncSession, keks: KeyEncryptionKeys, row: Secret) -> bytes:
    ring = Keyring(row.org_id, row.region)
    try:
        version = key_version(row.ciphertext)
        key = await datakeys.key_version(db, keks, ring, version)
        return unseal(key, row.ciphertext, _context(row))
    except EnvelopeError as exc:
        raise datakeys.KeyUnavailable(
            detail="The stored ciphertext does not authenticate (altered or misplaced)."
        ) from exc


def _context(row: Secret) -> Context:
    """What the ciphertext is bound to: owner, kind and the secret's own id."""
    return Context(org_id=row.org_id, purpose=f"secret/{row.kind}", record_id=row.id)


def _justification(text: str) -> str:
    reason = " ".join(text.split())
    if not 3 <= len(reason) <= MAX_JUSTIFICATION:
        raise InvalidInput(
            detail=f"Say why the secret is used (3 to {MAX_JUSTIFICATION} characters).",
            errors=[FieldError("justification", "required, 3-200 characters")],
        )
    return reason


def _check_size(value: bytes, field: str = "body.value") -> None:
    if not 1 <= len(value) <= MAX_SECRET_BYTES:
        raise InvalidInput(
            detail=f"A secret is 1 byte to {MAX_SECRET_BYTES // 1024} KiB.",
            errors=[FieldError(field, f"must be 1-{MAX_SECRET_BYTES} bytes")],
        )


def _name_taken() -> Conflict:
    return Conflict(
        detail="A secret with that name already exists; replace its value instead.",
        errors=[FieldError("body.name", "already taken")],
    )

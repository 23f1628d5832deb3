"""Request and response bodies of the keys API. No response ever carries a secret value."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from control_plane.sovereignty.keys.models import DataKeyState, SecretKind

MAX_SECRET_BYTES = 65_536

SecretName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
        description="Letters, digits and . _ / - (unique in the organization and region).",
    ),
]
SecretValue = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=4 * MAX_SECRET_BYTES // 3 + 4,
        description="The value (write-only: never returned). At most 64 KiB once decoded.",
    ),
]
ValueEncoding = Literal["text", "base64"]
Description = Annotated[str, Meta(max_length=500)]
Region = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{1,38}$")]


class _In(msgspec.Struct, forbid_unknown_fields=True):
    """Request bodies reject fields they do not know."""


class SecretCreate(_In):
    name: SecretName
    kind: SecretKind
    value: SecretValue
    value_encoding: ValueEncoding = "text"
    description: Description = ""
    region: Region | None = None


class SecretReplace(_In):
    value: SecretValue
    value_encoding: ValueEncoding = "text"
    description: Description | msgspec.UnsetType = msgspec.UNSET


class SecretRead(msgspec.Struct):
    id: str
    org_id: str | None
    region: str
    name: str
    kind: SecretKind
    description: str
    data_key_version: int
    created_by: str | None
    created_at: datetime
    rotated_at: datetime | None


class DataKeyRead(msgspec.Struct):
    id: str
    region: str
    version: int
    state: DataKeyState
    kek_id: str
    kek_version: int
    created_at: datetime
    rewrapped_at: datetime | None
    retired_at: datetime | None
    destroyed_at: datetime | None


class KekRotationRead(msgspec.Struct):
    region: str
    kek_id: str
    kek_version: int
    rewrapped: int
    remaining: int

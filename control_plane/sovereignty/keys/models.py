"""Tables of the keys domain: data keys (stored wrapped) and the secrets they encrypt.

``keyring`` names whose key a row belongs to: an organization id, or ``provider`` for the
provider's own secrets (Stripe key, OIDC client secret). It exists so that uniqueness
holds for provider rows too (``org_id`` is NULL there, and NULLs never collide).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.db.base import Base, UTCDateTime

PROVIDER_KEYRING = "provider"


class DataKeyState(StrEnum):
    ACTIVE = "active"  # encrypts new writes (one per keyring and region)
    RETIRED = "retired"  # decrypts what it wrote, encrypts nothing new
    DESTROYED = "destroyed"  # key material gone: what it wrote can never be read again


class SecretKind(StrEnum):
    BMC_CREDENTIALS = "bmc_credentials"
    KUBECONFIG = "kubeconfig"
    SLURM_TOKEN = "slurm_token"  # noqa: S105 - a kind name, not a token
    STRIPE_KEY = "stripe_key"
    OIDC_CLIENT_SECRET = "oidc_client_secret"  # noqa: S105 - a kind name, not a secret
    MODEL_REPOSITORY_CREDENTIALS = "model_repository_credentials"
    OTHER = "other"


class DataKey(Base):
    """One version of a keyring's data key in one region, wrapped by that region's KEK."""

    __tablename__ = "data_key"
    __table_args__ = (
        UniqueConstraint("keyring", "region", "version"),
        Index(None, "region", "kek_version"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    keyring: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[str | None] = mapped_column(
        ForeignKey("organization.id", ondelete="CASCADE"), index=True
    )
    region: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    kek_id: Mapped[str] = mapped_column(String(200))
    kek_version: Mapped[int] = mapped_column(Integer)
    # NULL once destroyed: nothing is left to unwrap.
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rewrapped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Secret(Base):
    """A secret value, stored only as envelope ciphertext (see ``envelope.py``)."""

    __tablename__ = "secret"
    __table_args__ = (
        UniqueConstraint("keyring", "region", "name"),
        Index(None, "org_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    keyring: Mapped[str] = mapped_column(String(40))
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organization.id", ondelete="CASCADE"))
    region: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(500), default="")
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    data_key_version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

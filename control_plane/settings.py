"""The one settings object: every knob is a ``CP_`` environment variable."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/control-plane.db")


class Settings(BaseSettings):
    """Control-plane configuration, read once at start-up (never at import time)."""

    model_config = SettingsConfigDict(env_prefix="CP_", env_file=None, extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str = ""
    environment: Literal["development", "test", "production"] = "development"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    # The data region this deployment serves (one release per region). Its ledger chains,
    # signing keys and key-encryption keys live here.
    region: str = Field(default="ca-qc-1", pattern=r"^[a-z0-9][a-z0-9-]{1,38}$")
    # Where file-backed keys live (audit signing keys, key-encryption keys): one directory
    # per deployment, readable only by the control plane.
    key_dir: Path = Path("var/keys")
    # Signed audit checkpoints: one per interval when the ledger moved (CloudTrail: hourly).
    audit_checkpoint_seconds: float = Field(default=600, gt=0)

    # Sessions and cookies. ``cookie_secure`` defaults to True; localhost runs turn it off.
    secret_key: SecretStr = SecretStr("")
    cookie_secure: bool = True
    session_ttl_seconds: int = Field(default=12 * 3600, ge=60)

    # Login protection.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=900, ge=1)
    login_rate_per_minute: int = Field(default=20, ge=1)

    # Request limits.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    page_size_default: int = Field(default=50, ge=1, le=500)
    page_size_max: int = Field(default=200, ge=1, le=1000)
    idempotency_ttl_seconds: int = Field(default=24 * 3600, ge=60)
    api_key_cache_seconds: float = Field(default=5.0, ge=0)

    # Single sign-on (OpenID Connect); disabled when issuer is empty.
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_display_name: str = "Single sign-on"
    oidc_default_org: str = ""

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("CP_DATABASE_URL must be a sqlite:/// or postgresql:// URL")
        return value

    @cached_property
    def async_database_url(self) -> str:
        """The URL with the async driver the app uses for this database."""
        return driver_url(self.database_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


def driver_url(url: str) -> str:
    """Map a plain ``sqlite:///`` or ``postgresql://`` URL to the async driver we use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"not a database URL: {url!r}")
    base = scheme.split("+", 1)[0]
    if base == "sqlite":
        return f"sqlite+aiosqlite://{rest}"
    if base in {"postgresql", "postgres"}:
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"unsupported database: {scheme}")

"""Key-encryption keys (KEKs): one per region, versioned, held only in that region.

A KEK never encrypts data. It wraps (encrypts) the per-organization data keys, which are
stored in the database only in wrapped form; the row records which KEK and which version
wrapped it, so a reader always knows what to unwrap with, even in the middle of a KEK
rotation.

Two kinds of store implement :class:`KeyEncryptionKeys`:

* :class:`FileKeyEncryptionKeys`, the embedded default: 32 random bytes per version in
  ``<key_dir>/kek/<region>/<version>.key`` (files 0600, directories 0700).
* An external KMS. Such an adapter keeps the key material inside the KMS and implements
  the same five methods with its API, for example:

  - HashiCorp Vault transit: ``kek_id`` = ``vault-transit:<mount>/<key name>``;
    ``wrap`` = ``POST <mount>/encrypt/<name>`` with ``plaintext`` and the AAD as
    ``context`` (derived keys) and returns the ``key_version`` Vault reports;
    ``unwrap`` = ``POST <mount>/decrypt/<name>``; ``rotate`` = ``POST <mount>/keys/<name>/rotate``;
    ``current_version`` = ``latest_version`` of ``GET <mount>/keys/<name>``.
  - AWS KMS: ``kek_id`` = the key ARN in the region's account; ``wrap`` = ``Encrypt`` with
    the AAD as ``EncryptionContext``; ``unwrap`` = ``Decrypt`` (KMS finds the backing key
    version itself, so ``kek_version`` is informational); ``rotate`` = ``RotateKeyOnDemand``.

  Methods are ``async`` because a KMS is a network call. The adapter must be usable from
  the region's own KMS endpoint only (keys stay in-jurisdiction).
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEK_BYTES = 32  # AES-256
_NONCE_BYTES = 12
_REGION = re.compile(r"^[a-z0-9][a-z0-9-]{1,38}$")
_VERSION_FILE = re.compile(r"^([1-9][0-9]{0,8})\.key$")


class KekUnavailable(RuntimeError):
    """A KEK version is missing, unreadable, too widely readable, or did not unwrap."""


@dataclass(frozen=True)
class WrappedKey:
    """A data key as stored: the wrapped bytes and the KEK (id, version) that wrapped them."""

    kek_id: str
    kek_version: int
    blob: bytes


@runtime_checkable
class KeyEncryptionKeys(Protocol):
    """Where a region's KEKs live. Implementations must never return KEK material."""

    def kek_id(self, region: str) -> str:
        """A stable name of the region's KEK, recorded on every data key it wraps."""
        ...

    async def current_version(self, region: str) -> int:
        """The version new wraps use (creating version 1 on first use)."""
        ...

    async def wrap(self, region: str, plaintext: bytes, aad: bytes) -> WrappedKey:
        """Encrypt a data key under the region's current KEK version, bound to ``aad``."""
        ...

    async def unwrap(self, region: str, kek_version: int, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a data key wrapped under ``kek_version``; raise KekUnavailable on failure."""
        ...

    async def rotate(self, region: str) -> int:
        """Make a new KEK version current and return it; older versions keep unwrapping."""
        ...


class FileKeyEncryptionKeys:
    """KEKs as files under ``<key_dir>/kek/<region>/``: the embedded default.

    Every replica of a region must see the same directory (a mounted Kubernetes Secret or a
    shared volume); a version missing on one replica is read from disk when first needed.
    Files are created with ``O_EXCL`` through a temporary name and a hard link, so two
    processes creating the same version concurrently end up with one key, never a torn
    file.
    """

    def __init__(self, key_dir: Path) -> None:
        self._root = Path(key_dir) / "kek"
        self._cache: dict[tuple[str, int], bytes] = {}

    def kek_id(self, region: str) -> str:
        return f"file:{_checked(region)}"

    def region_dir(self, region: str) -> Path:
        return self._root / _checked(region)

    def versions(self, region: str) -> list[int]:
        """The KEK versions on disk for ``region``, oldest first."""
        directory = self.region_dir(region)
        if not directory.is_dir():
            return []
        found = (_VERSION_FILE.match(p.name) for p in directory.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    async def current_version(self, region: str) -> int:
        versions = self.versions(region)
        if versions:
            return versions[-1]
        self._create(region, 1)
        return self.versions(region)[-1]

    async def wrap(self, region: str, plaintext: bytes, aad: bytes) -> WrappedKey:
        version = await self.current_version(region)
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = AESGCM(self._key(region, version)).encrypt(nonce, plaintext, aad)
        return WrappedKey(self.kek_id(region), version, nonce + sealed)

    async def unwrap(self, region: str, kek_version: int, blob: bytes, aad: bytes) -> bytes:
        key = self._key(region, kek_version)
        try:
            return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except (InvalidTag, ValueError) as exc:
            raise KekUnavailable(
                f"data key does not unwrap under KEK {region} v{kek_version}"
            ) from exc

    async def rotate(self, region: str) -> int:
        while True:
            versions = self.versions(region)
            candidate = (versions[-1] if versions else 0) + 1
            if self._create(region, candidate):
                return candidate

    def _key(self, region: str, version: int) -> bytes:
        cached = self._cache.get((region, version))
        if cached is not None:
            return cached
        path = self.region_dir(region) / f"{version}.key"
        try:
            info = path.stat()
            if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KekUnavailable(f"{path} is readable by others; chmod 600 it")
            key = path.read_bytes()
        except FileNotFoundError as exc:
            raise KekUnavailable(f"KEK {region} v{version} is missing ({path})") from exc
        if len(key) != KEK_BYTES:
            raise KekUnavailable(f"{path} is not a {KEK_BYTES}-byte key")
        self._cache[(region, version)] = key
        return key

    def _create(self, region: str, version: int) -> bool:
        """Write version ``version``; False when another process wrote it first."""
        directory = self.region_dir(region)
        self._root.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # shared key_dir
        _private_dir(self._root)
        _private_dir(directory)
        final = directory / f"{version}.key"
        temporary = directory / f".{version}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEK_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, final)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
        return True


def _private_dir(path: Path) -> None:
    """Create ``path`` if needed and make sure only the owner can enter it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) & (stat.S_IRWXG | stat.S_IRWXO):
        path.chmod(0o700)


def _checked(region: str) -> str:
    """A region code safe to use as a directory name (no traversal)."""
    if not _REGION.match(region):
        raise ValueError(f"not a region code: {region!r}")
    return region

"""File-backed key-encryption keys: private files, versions, rotation that keeps old ones."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from control_plane.sovereignty.keys.kek import (
    KEK_BYTES,
    FileKeyEncryptionKeys,
    KekUnavailable,
    KeyEncryptionKeys,
)

AAD = b"data-key org_a ca-qc-1 v1"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def keks(tmp_path: Path) -> FileKeyEncryptionKeys:
    return FileKeyEncryptionKeys(tmp_path / "keys")


class TestFiles:
    def test_is_a_key_encryption_key_store(self, keks: FileKeyEncryptionKeys) -> None:
        assert isinstance(keks, KeyEncryptionKeys)

    async def test_first_use_creates_version_one_readable_only_by_the_owner(
        self, keks: FileKeyEncryptionKeys, tmp_path: Path
    ) -> None:
        assert await keks.current_version("ca-qc-1") == 1

        key_file = tmp_path / "keys" / "kek" / "ca-qc-1" / "1.key"
        assert key_file.stat().st_size == KEK_BYTES
        assert mode(key_file) == 0o600
        assert mode(key_file.parent) == 0o700
        assert mode(key_file.parent.parent) == 0o700

    async def test_a_permissive_umask_does_not_loosen_the_files(
        self, keks: FileKeyEncryptionKeys, tmp_path: Path
    ) -> None:
        previous = os.umask(0)
        try:
            await keks.wrap("se-north-1", b"k" * 32, AAD)
        finally:
            os.umask(previous)

        directory = tmp_path / "keys" / "kek" / "se-north-1"
        assert mode(directory) == 0o700
        assert mode(directory / "1.key") == 0o600

    async def test_a_key_file_readable_by_others_is_refused(
        self, keks: FileKeyEncryptionKeys, tmp_path: Path
    ) -> None:
        wrapped = await keks.wrap("ca-qc-1", b"k" * 32, AAD)
        (tmp_path / "keys" / "kek" / "ca-qc-1" / "1.key").chmod(0o644)

        with pytest.raises(KekUnavailable, match="readable by others"):
            await FileKeyEncryptionKeys(tmp_path / "keys").unwrap("ca-qc-1", 1, wrapped.blob, AAD)

    async def test_regions_have_separate_keys(self, keks: FileKeyEncryptionKeys) -> None:
        wrapped = await keks.wrap("ca-qc-1", b"k" * 32, AAD)

        with pytest.raises(KekUnavailable):
            await keks.unwrap("se-north-1", wrapped.kek_version, wrapped.blob, AAD)

    def test_a_region_code_cannot_escape_the_key_directory(
        self, keks: FileKeyEncryptionKeys
    ) -> None:
        with pytest.raises(ValueError, match="region"):
            keks.region_dir("../../etc")


class TestWrapping:
    async def test_a_wrapped_key_unwraps_with_its_aad_only(
        self, keks: FileKeyEncryptionKeys
    ) -> None:
        wrapped = await keks.wrap("ca-qc-1", b"d" * 32, AAD)

        assert wrapped.kek_id == "file:ca-qc-1"
        assert await keks.unwrap("ca-qc-1", wrapped.kek_version, wrapped.blob, AAD) == b"d" * 32
        with pytest.raises(KekUnavailable):
            await keks.unwrap("ca-qc-1", wrapped.kek_version, wrapped.blob, b"another row")

    async def test_a_missing_version_is_reported(self, keks: FileKeyEncryptionKeys) -> None:
        wrapped = await keks.wrap("ca-qc-1", b"d" * 32, AAD)

        with pytest.raises(KekUnavailable, match="v9 is missing"):
            await keks.unwrap("ca-qc-1", 9, wrapped.blob, AAD)


class TestRotation:
    async def test_rotation_makes_a_new_current_version_and_old_wraps_still_unwrap(
        self, keks: FileKeyEncryptionKeys
    ) -> None:
        old = await keks.wrap("ca-qc-1", b"o" * 32, AAD)

        assert await keks.rotate("ca-qc-1") == 2
        new = await keks.wrap("ca-qc-1", b"n" * 32, AAD)

        assert (old.kek_version, new.kek_version) == (1, 2)
        assert await keks.unwrap("ca-qc-1", 1, old.blob, AAD) == b"o" * 32
        assert await keks.unwrap("ca-qc-1", 2, new.blob, AAD) == b"n" * 32
        assert keks.versions("ca-qc-1") == [1, 2]

    async def test_another_process_sees_a_rotation_made_elsewhere(
        self, keks: FileKeyEncryptionKeys, tmp_path: Path
    ) -> None:
        other_replica = FileKeyEncryptionKeys(tmp_path / "keys")
        await keks.current_version("ca-qc-1")
        await other_replica.rotate("ca-qc-1")
        wrapped = await other_replica.wrap("ca-qc-1", b"x" * 32, AAD)

        assert await keks.current_version("ca-qc-1") == 2
        assert await keks.unwrap("ca-qc-1", 2, wrapped.blob, AAD) == b"x" * 32

    async def test_rotation_leaves_no_temporary_files(
        self, keks: FileKeyEncryptionKeys, tmp_path: Path
    ) -> None:
        for _ in range(3):
            await keks.rotate("ca-qc-1")

        names = sorted(p.name for p in (tmp_path / "keys" / "kek" / "ca-qc-1").iterdir())
        assert names == ["1.key", "2.key", "3.key"]

"""Replicas starting together on an empty shared key directory agree on one key."""

from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from control_plane.audit.keyfiles import load_keyring
from control_plane.create_once import create_once
from control_plane.http.idempotency import digest_key


def _first_keys(key_dir: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    keyring = load_keyring(Path(key_dir), "ca-qc-1", datetime.now(UTC))
    out.put((keyring.signing_key("ca-qc-1").key_id, digest_key(Path(key_dir))))


def test_processes_racing_on_an_empty_directory_end_with_one_key_each(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    out: multiprocessing.Queue[tuple[str, bytes]] = context.Queue()
    workers = [
        context.Process(target=_first_keys, args=(str(tmp_path), barrier, out)) for _ in range(6)
    ]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=30) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert len({key_id for key_id, _ in results}) == 1  # one signing key
    assert len({digest for _, digest in results}) == 1  # one idempotency digest key
    private_keys = list((tmp_path / "audit" / "ca-qc-1").glob("*.ed25519"))
    assert [p.stem for p in private_keys] == [results[0][0]]  # the losers' keys are gone
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_second_creator_gets_the_first_content(tmp_path: Path) -> None:
    target = tmp_path / "key"
    assert create_once(target, b"first") == b"first"
    assert create_once(target, b"second") == b"first"
    assert target.read_bytes() == b"first"
    assert oct(target.stat().st_mode & 0o777) == "0o600"

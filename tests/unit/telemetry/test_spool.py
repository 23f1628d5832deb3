"""The spool on its own: crash leftovers, the rejected pile's bound."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from control_plane.telemetry.agent.spool import Spool, batch_id_of
from control_plane.telemetry.agent.wire import Batch, new_batch_id

START = datetime(2026, 12, 5, tzinfo=UTC)


def batches(n: int) -> list[Batch]:
    return [Batch(batch_id=new_batch_id(START), samples=[]) for _ in range(n)]


class TestSpool:
    def test_a_write_interrupted_by_a_crash_is_neither_shipped_nor_kept(
        self, tmp_path: Path
    ) -> None:
        (kept,) = batches(1)
        Spool(tmp_path).put(kept)
        torn = tmp_path / ".1796511276055-00000000.tmp"
        torn.write_bytes(b'{"batch_id": "17965')

        spool = Spool(tmp_path)  # the restart

        assert [batch_id_of(p) for p in spool.pending()] == [kept.batch_id]
        assert not torn.exists()

    def test_files_are_private_to_the_agent(self, tmp_path: Path) -> None:
        spool = Spool(tmp_path / "spool")
        spool.put(batches(1)[0])

        assert spool.pending()[0].stat().st_mode & 0o077 == 0
        assert spool.rejected_dir.stat().st_mode & 0o077 == 0
        assert spool.directory.stat().st_mode & 0o077 == 0

    def test_the_rejected_pile_is_bounded_keeping_the_latest(self, tmp_path: Path) -> None:
        made = batches(6)
        spool = Spool(tmp_path)
        for batch in made:
            spool.put(batch)
        one = spool.pending()[0].stat().st_size
        spool.rejected_max_bytes = 3 * one

        for path in spool.pending():
            spool.reject(path)

        assert [batch_id_of(p) for p in spool.rejected()] == [b.batch_id for b in made[-3:]]
        assert spool.pending() == []

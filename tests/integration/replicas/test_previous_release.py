"""A rolling upgrade's middle: the schema is already at the new head while replicas of the
previous release still serve. The previous release is the commit before the one that added
the newest migration, taken from this checkout's git history (``git archive``) and started
as a real replica next to one of this release, on one PostgreSQL database. Both serve
tenants, see each other's writes, and the tenancies created by either become active.

What the newest migration may change is checked statically in test_expand_contract.py; this
runs the previous release's own queries against the new tables."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.db.migrate import alembic_config
from control_plane.settings import Settings
from tests.conftest import REPO
from tests.fixtures.replicas import Replica, replica_env
from tests.integration.replicas.conftest import (
    StartCluster,
    World,
    base_settings,
    slurm_tenancy,
    wait_for_states,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Packages the previous release's replica imports from its own tree (tests and fixtures
# stay this release's: they are not deployed).
PACKAGES = ("control_plane", "billing", "portal")
# A route the newest release added (migration 0020's release): its absence shows the old
# replica really runs the old code. Update it with the next migration.
NEW_ROUTE = "/api/v1/orgs/{org_id}/tenancies/{tenancy_id}/power"


def _git(*args: str) -> bytes:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], check=True, capture_output=True, timeout=60
    ).stdout


def _previous_release_commit() -> str | None:
    """The parent of the commit that added the newest migration file (None without git
    history: a source tarball, a shallow clone)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        return None
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    (head,) = script.get_heads()
    path = Path(script.get_revision(head).path).relative_to(REPO)
    try:
        added = _git("log", "--diff-filter=A", "--format=%H", "-1", "--", str(path)).decode()
        if not added.strip():
            return None
        return _git("rev-parse", f"{added.strip()}^").decode().strip()
    except subprocess.CalledProcessError:
        return None


def _require_previous_release() -> str:
    """The previous release's commit, or a skip naming why there is none: a checkout
    without history (source tarball, shallow clone) cannot run this test. That is not a
    missing peer, so it skips in CI too rather than fail the run; a clean clone has it."""
    commit = _previous_release_commit()
    if commit is None:
        pytest.skip("no git history holding the previous release in this checkout")
    return commit


@pytest.fixture(scope="module")
def previous_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    commit = _require_previous_release()
    tree = tmp_path_factory.mktemp("previous-release")
    archive = _git("archive", "--format=tar", commit, *PACKAGES)
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


async def _routes(client: httpx.AsyncClient, url: str) -> set[str]:
    schema = await client.get(f"{url}/schema/openapi.json")
    assert schema.status_code == 200, schema.text
    return set(schema.json()["paths"])


class TestPreviousReleaseOnTheNewSchema:
    async def test_old_and_new_replicas_serve_side_by_side(
        self, previous_tree: Path, start_cluster: StartCluster, world: World,
        db: AsyncSession, settings: Settings, tmp_path: Path,
    ) -> None:  # fmt: skip
        new = (await start_cluster(1, reconciler_enabled="false")).replicas[0]
        env = replica_env(os.environ, base_settings(settings))
        env["PYTHONPATH"] = os.pathsep.join([str(previous_tree), env["PYTHONPATH"]])
        old = Replica(1, env, tmp_path / "previous-release.log", cwd=previous_tree)
        try:
            await old.start()
            async with httpx.AsyncClient(timeout=20.0, headers=world.headers) as client:
                assert NEW_ROUTE in await _routes(client, new.url)
                assert NEW_ROUTE not in await _routes(client, old.url), "not the old code"

                ids: list[str] = []
                for n, replica in enumerate((old, new, old, new)):
                    made = await client.post(
                        replica.url + world.tenancies_path, json=slurm_tenancy(f"mixed-{n}")
                    )
                    assert made.status_code == 201, (replica.index, made.text)
                    ids.append(made.json()["id"])
                # The old replica reconciles all four, including what the new one wrote.
                await wait_for_states(db, ids, "active")
                for replica in (old, new):
                    listed = await client.get(replica.url + world.tenancies_path)
                    assert listed.status_code == 200, (replica.index, listed.text)
                    assert {t["id"] for t in listed.json()["items"]} >= set(ids)
                    for tenancy_id in ids:
                        one = await client.get(f"{replica.url}{world.tenancies_path}/{tenancy_id}")
                        assert one.status_code == 200, (replica.index, one.text)
                        assert one.json()["state"] == "active"
                released = await client.post(f"{old.url}{world.tenancies_path}/{ids[1]}/release")
                assert released.status_code in (200, 202), released.text
                await wait_for_states(db, ids[1:2], "released")
                assert world.effects(ids[1])["released"] == 1
                events = await client.get(f"{new.url}{world.tenancies_path}/{ids[1]}/events")
                assert events.status_code == 200, events.text
                assert len(events.json()["items"]) >= 3
        finally:
            old.force_close()
        assert "Traceback" not in old.log_tail(100_000), old.log_tail()


def test_the_previous_release_is_found_in_this_checkout() -> None:
    """Guards the fixture: with git history present, a previous release exists and differs
    from the working tree's migrations."""
    commit = _require_previous_release()
    listed = _git("ls-tree", "--name-only", f"{commit}:migrations/versions").decode().split()
    theirs = {name for name in listed if name.startswith("0")}
    ours = {p.name for p in (REPO / "migrations" / "versions").glob("0*.py")}
    assert theirs < ours
    assert len(ours - theirs) == 1, "the previous release lacks exactly the newest migration"

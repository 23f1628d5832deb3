"""A rolling restart under traffic loses no accepted request: while each replica in turn
is stopped gracefully (SIGTERM: uvicorn stops accepting and drains) and started again,
clients keep creating projects with an Idempotency-Key (retried, on another replica, on a
connection error) and reading them; no answer is a 5xx, and every accepted create is in
the database exactly once."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.models import Project
from control_plane.identity.roles import TenantRole
from tests.fixtures.factories import make_org
from tests.integration.replicas.conftest import StartCluster, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CLIENTS = 4
RETRY_FOR = 30.0  # how long one logical request keeps retrying before the test fails


@dataclass
class Traffic:
    """What the clients saw: accepted creates (slug -> id), every final status, retries."""

    urls: list[str]
    headers: dict[str, str]
    org_id: str
    accepted: dict[str, str] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    retries: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    turn: itertools.count[int] = field(default_factory=itertools.count)

    async def send(
        self, client: httpx.AsyncClient, method: str, path: str, key: str | None = None,
        **kwargs: object,
    ) -> httpx.Response:  # fmt: skip
        """One logical request: round-robin, moving to the next replica on a connection
        error or a 409 for a first attempt still running, until RETRY_FOR has passed."""
        headers = {**self.headers, **({"Idempotency-Key": key} if key else {})}
        deadline = time.monotonic() + RETRY_FOR
        start = next(self.turn)
        for attempt in itertools.count():
            url = self.urls[(start + attempt) % len(self.urls)] + path
            try:
                response = await client.request(method, url, headers=headers, **kwargs)  # type: ignore[arg-type]
            except httpx.TransportError:
                response = None
            if response is not None and not _still_running(response):
                self.statuses.append(response.status_code)
                return response
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path} failed for {RETRY_FOR}s")
            self.retries += 1
            await asyncio.sleep(0.05)
        raise AssertionError("unreachable")

    async def client_loop(self, client: httpx.AsyncClient, worker: int) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            slug = f"w{worker}-{n}"
            body = {"slug": slug, "name": f"Project {slug}", "org_id": self.org_id}
            created = await self.send(client, "POST", "/api/v1/projects", f"rolling-{slug}",
                                      json=body)  # fmt: skip
            if created.status_code == 201:
                self.accepted[slug] = created.json()["id"]
            await self.send(client, "GET", "/api/v1/projects",
                            params={"org_id": self.org_id, "page_size": 5})  # fmt: skip


def _still_running(response: httpx.Response) -> bool:
    """The idempotency layer's 409 for a retry that overtook its first attempt."""
    return response.status_code == 409 and "progress" in response.text.lower()


class TestRollingRestart:
    async def test_no_accepted_request_is_lost_and_none_fails_while_each_replica_restarts(
        self, start_cluster: StartCluster, db: AsyncSession
    ) -> None:
        tenant = await make_org(db, roles=(TenantRole.OWNER,))
        await db.commit()
        cluster = await start_cluster(3)
        async with httpx.AsyncClient(timeout=15.0) as client:
            headers = await sign_in(client, cluster.urls[0], tenant)
            traffic = Traffic(cluster.urls, headers, tenant.org_id)
            workers = [asyncio.create_task(traffic.client_loop(client, n)) for n in range(CLIENTS)]
            try:
                for replica in cluster.replicas:
                    await wait_for_accepted(traffic, len(traffic.accepted) + 10)
                    # uvicorn re-raises the signal once it has shut down cleanly
                    assert await replica.stop() == -signal.SIGTERM, replica.log_tail()
                    assert "Traceback" not in replica.log_tail(), replica.log_tail()
                    await wait_for_accepted(traffic, len(traffic.accepted) + 10)
                    await replica.start()
                await wait_for_accepted(traffic, len(traffic.accepted) + 10)
            finally:
                traffic.stop.set()
                await asyncio.gather(*workers)

        assert [s for s in traffic.statuses if s >= 500] == []
        assert set(traffic.statuses) <= {200, 201}, sorted(set(traffic.statuses))
        db.expire_all()
        rows = await db.execute(
            select(Project.slug, Project.id).where(Project.org_id == tenant.org_id)
        )
        stored = dict(rows.all())
        del stored["default"]
        assert stored == traffic.accepted  # each accepted create once, with the id answered
        assert len(traffic.accepted) >= 40
        assert traffic.retries > 0  # requests did meet a stopped replica, and were retried


async def wait_for_accepted(traffic: Traffic, count: int, within: float = 30.0) -> None:
    """Until the clients have had ``count`` creates accepted (traffic really flows)."""
    deadline = time.monotonic() + within
    while len(traffic.accepted) < count:
        assert time.monotonic() < deadline, f"only {len(traffic.accepted)} creates accepted"
        await asyncio.sleep(0.02)

"""Audit chains stay linear when three replicas append to them at once: every chain
verifies (hashes, links, seq from 1 without a gap), its head names its last entry, and
every request's entry is there exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.audit import chain_name, verify_chain
from control_plane.audit.models import AuditChainHead, AuditEntryRow
from control_plane.audit.store import entries
from control_plane.identity.roles import TenantRole
from tests.fixtures.factories import Tenant, make_org
from tests.integration.replicas.conftest import REGION, StartCluster, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ORGS = 3
CREATES = 24  # per organization, of which every fourth is refused (its slug is taken)


class TestConcurrentWriters:
    async def test_chains_written_by_three_replicas_at_once_verify_without_fork_or_gap(
        self, start_cluster: StartCluster, db: AsyncSession
    ) -> None:
        tenants = [await make_org(db, roles=(TenantRole.OWNER,)) for _ in range(ORGS)]
        await db.commit()
        cluster = await start_cluster(3, reconciler_enabled="false")
        urls = cluster.urls
        async with httpx.AsyncClient(timeout=30.0) as client:
            sessions = [await sign_in(client, urls[n % 3], t) for n, t in enumerate(tenants)]

            async def create(n: int, tenant: Tenant, headers: dict[str, str]) -> int:
                slug = "default" if n % 4 == 0 else f"p{n}"  # "default" exists: a 409
                response = await client.post(
                    f"{urls[n % 3]}/api/v1/projects",
                    json={"slug": slug, "name": f"Project {n}", "org_id": tenant.org_id},
                    headers=headers,
                )
                return response.status_code

            codes = await asyncio.gather(*(
                create(n, tenant, headers)
                for n in range(CREATES)
                for tenant, headers in zip(tenants, sessions, strict=True)
            ))  # fmt: skip
        refused = len(range(0, CREATES, 4))
        assert Counter(codes) == {201: ORGS * (CREATES - refused), 409: ORGS * refused}

        for tenant in tenants:
            name = chain_name(tenant.org_id, REGION)
            chain = await entries(db, name, limit=100_000)
            assert verify_chain(chain, chain=name) is None
            assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
            head = await db.get(AuditChainHead, name)
            assert head is not None
            assert (head.seq, head.entry_hash) == (chain[-1].seq, chain[-1].entry_hash)
            outcomes = Counter(
                (e.outcome, e.request_id is not None)
                for e in chain
                if e.action.endswith("create_project")
            )
            assert outcomes == {("success", True): CREATES - refused,
                                ("rejected", True): refused}, outcomes  # fmt: skip

        # One entry per request: no request id appears twice in any chain.
        duplicates = await db.execute(
            select(AuditEntryRow.request_id)
            .where(AuditEntryRow.request_id.is_not(None))
            .group_by(AuditEntryRow.request_id, AuditEntryRow.action)
            .having(func.count() > 1)
        )
        assert duplicates.all() == []

"""The demo organization gets its residency policy once, however often the seed runs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.identity.models import Organization
from control_plane.identity.roles import ProviderRole
from control_plane.seed.demo import DEMO_LOGINS, seed_demo
from control_plane.sovereignty.residency import service
from control_plane.sovereignty.residency.engine import decide_operator_access, decide_placement
from tests.fixtures.factories import make_user


class TestDemoSeed:
    async def test_demo_is_kept_in_canada_and_the_eu_and_seeding_twice_adds_nothing(
        self, db: AsyncSession, clock: Clock
    ) -> None:
        # Users made first with the factories' precomputed hash: the seed then skips hashing.
        for demo in DEMO_LOGINS:
            role = ProviderRole.OPERATOR if demo.email.startswith("ops-") else None
            await make_user(db, demo.email, provider_role=role)
        await seed_demo(db, clock)
        await seed_demo(db, clock)
        await db.commit()
        org_id = (
            await db.execute(select(Organization.id).where(Organization.slug == "demo"))
        ).scalar_one()
        policy = await service.current_policy(db, org_id)
        assert policy.version == 1
        assert policy.name == "Canada and EU"
        verdicts = {
            code: decide_placement(policy, await service.region_facts(db, code)).allowed
            for code in ("ca-qc-1", "se-north-1", "us-east-1")
        }
        assert verdicts == {"ca-qc-1": True, "se-north-1": True, "us-east-1": False}
        assert decide_operator_access(policy, "SE").allowed
        assert not decide_operator_access(policy, "US").allowed

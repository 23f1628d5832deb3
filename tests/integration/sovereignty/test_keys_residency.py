"""Residency sees an organization's data keys as resources held in their region."""

from __future__ import annotations

from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.settings import Settings
from control_plane.sovereignty.keys import datakeys, service
from control_plane.sovereignty.keys.models import SecretKind
from control_plane.sovereignty.keys.residency import org_key_resources
from tests.fixtures.factories import make_org


class TestKeysAsResidencyResources:
    async def test_live_data_keys_are_listed_in_their_region_and_shredded_ones_are_not(
        self, app: Litestar, db: AsyncSession, clock: Clock, settings: Settings
    ) -> None:
        org = await make_org(db)
        assert await org_key_resources(db, org.org_id) == []
        await service.put(
            db,
            org_id=org.org_id,
            name="s",
            kind=SecretKind.OTHER,
            value=b"v",
            actor=service.Actor.system("tests"),
            clock=clock,
            settings=settings,
        )

        [held] = await org_key_resources(db, org.org_id)
        everything = await app.state.residency_sources.collect(db, org.org_id)

        assert (held.kind, held.region_code) == ("org_key", settings.region)
        assert "Data key v1" in held.description
        assert held in everything
        await datakeys.destroy(db, org.org_id, clock)
        assert await org_key_resources(db, org.org_id) == []

"""Pools lent by time windows: who may place when, leases cut at the window end, a drain
notice given once, and the handover at the switch."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.tenancies.reconciler import Reconciler
from tests.fixtures.factories import Tenant
from tests.integration.pools.conftest import POOLS, DayAndNight, must
from tests.integration.tenancies.conftest import Client, create, tenancies_url, used_milli


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _events(client: Client, org: Tenant, auth: dict[str, str], tenancy_id: str) -> list:
    url = f"{tenancies_url(org)}/{tenancy_id}/events"
    return (await client.get(url, params={"limit": 200}, headers=auth)).json()["items"]  # type: ignore[no-any-return]


class TestPlacement:
    async def test_a_tenancy_placed_in_its_window_ends_when_the_window_does(
        self, client: Client, org: Tenant, auth: dict[str, str], day_and_night: DayAndNight
    ) -> None:
        response = await create(client, org, auth)

        assert response.status_code == 201, response.text
        assert _at(response.json()["ends_at"]) == day_and_night.day_end

    async def test_an_earlier_lease_end_asked_for_is_kept(
        self, client: Client, org: Tenant, auth: dict[str, str], day_and_night: DayAndNight,
        clock: OffsetClock,
    ) -> None:  # fmt: skip
        ends = (clock.now() + timedelta(minutes=20)).replace(microsecond=0)

        response = await create(client, org, auth, ends_at=ends.isoformat())

        assert _at(response.json()["ends_at"]) == ends

    async def test_another_organization_is_told_when_the_pool_opens_to_it(
        self, client: Client, other: Tenant, other_auth: dict[str, str],
        day_and_night: DayAndNight,
    ) -> None:  # fmt: skip
        response = await create(client, other, other_auth)

        assert response.status_code == 409, response.text
        body = response.json()
        assert body["reason"] == "pool-closed"
        assert "gpu-shared" in body["detail"]
        assert _at(body["opens_at"]) == day_and_night.day_end
        assert day_and_night.day_end.isoformat() in body["detail"]

    async def test_no_new_work_lands_in_the_drain_before_the_window_ends(
        self, client: Client, org: Tenant, auth: dict[str, str], day_and_night: DayAndNight,
        clock: OffsetClock,
    ) -> None:  # fmt: skip
        clock.advance((day_and_night.day_end - clock.now()).total_seconds() - 10 * 60)

        response = await create(client, org, auth)

        assert response.status_code == 409
        assert response.json()["reason"] == "pool-closed"

    async def test_nodes_outside_every_window_are_held_for_nobody(
        self, client: Client, operator: dict[str, str], org: Tenant, auth: dict[str, str],
        fleet: list[str],
    ) -> None:  # fmt: skip
        pool = await must(client.post(POOLS, json={"name": "idle", "timezone": "UTC"},
                                      headers=operator))  # fmt: skip
        await must(client.put(f"{POOLS}/{pool['id']}/nodes", json={"node_ids": fleet[:1]},
                              headers=operator))  # fmt: skip

        placed = (await create(client, org, auth)).json()

        assert placed["ends_at"] is None  # the node outside the pool took it, no lease cut
        assert [a["node_id"] for a in placed["allocations"]] == [fleet[1]]


class TestSwitch:
    async def test_the_drain_notice_is_given_once_then_the_pool_changes_hands(
        self,
        client: Client,
        org: Tenant,
        other: Tenant,
        auth: dict[str, str],
        other_auth: dict[str, str],
        day_and_night: DayAndNight,
        reconciler: Reconciler,
        clock: OffsetClock,
        db: AsyncSession,
    ) -> None:
        tenancy = (await create(client, org, auth, gpus_per_node=8, node_count=2)).json()
        await reconciler.converge()
        clock.advance((day_and_night.day_end - clock.now()).total_seconds() - 29 * 60)
        await reconciler.run_timers()
        await reconciler.run_timers()  # a second replica, or a restart: nothing new

        notices = [e for e in await _events(client, org, auth, tenancy["id"])
                   if "pool gpu-shared" in e["detail"]]  # fmt: skip
        assert len(notices) == 1
        assert notices[0]["kind"] == "warning"
        assert "switches to another organization" in notices[0]["detail"]
        assert day_and_night.day_end.isoformat() in notices[0]["detail"]
        assert other.org_id not in notices[0]["detail"]

        clock.advance((day_and_night.day_end - clock.now()).total_seconds() + 1)
        await reconciler.converge()
        released = (await client.get(f"{tenancies_url(org)}/{tenancy['id']}", headers=auth)).json()
        assert released["state"] == "released"
        assert await used_milli(db) == 0

        night = await create(client, other, other_auth, gpus_per_node=8, node_count=2)
        assert night.status_code == 201, night.text
        assert _at(night.json()["ends_at"]) == day_and_night.night_end
        assert {a["node_id"] for a in night.json()["allocations"]} == {
            a["node_id"] for a in tenancy["allocations"]
        }

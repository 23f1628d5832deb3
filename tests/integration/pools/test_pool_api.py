"""The pools API as operators and tenants see it: validation answered as problem+json with
the field and the reason, the schedule, and tenants seeing only their own windows."""

from __future__ import annotations

from datetime import datetime, timedelta

from control_plane.clock import OffsetClock
from tests.fixtures.factories import Tenant
from tests.integration.pools.conftest import POOLS, DayAndNight, must
from tests.integration.tenancies.conftest import Client

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]


async def _pool(client: Client, operator: dict[str, str], name: str = "render") -> str:
    body = {"name": name, "timezone": "America/Toronto", "drain_minutes": 15}
    return (await must(client.post(POOLS, json=body, headers=operator)))["id"]  # type: ignore[no-any-return]


class TestOperatorValidation:
    async def test_an_overlapping_window_is_refused_with_the_field_and_reason(
        self, client: Client, operator: dict[str, str], org: Tenant, other: Tenant
    ) -> None:
        pool_id = await _pool(client, operator)
        url = f"{POOLS}/{pool_id}/windows"
        first = await must(client.post(url, headers=operator, json={
            "org_id": org.org_id, "days": WEEKDAYS, "start": "08:00", "end": "20:00"}))  # fmt: skip

        response = await client.post(url, headers=operator, json={
            "org_id": other.slug, "days": ["fri"], "start": "19:00", "end": "07:00"})  # fmt: skip

        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"] == [
            {"field": "body.start", "reason": f"overlaps window {first['id']}"}
        ]

    async def test_a_night_window_after_the_day_window_is_accepted(
        self, client: Client, operator: dict[str, str], org: Tenant, other: Tenant
    ) -> None:
        pool_id = await _pool(client, operator)
        url = f"{POOLS}/{pool_id}/windows"
        await must(client.post(url, headers=operator, json={
            "org_id": org.org_id, "days": WEEKDAYS, "start": "08:00", "end": "20:00"}))  # fmt: skip

        night = await must(client.post(url, headers=operator, json={
            "org_id": other.slug, "days": WEEKDAYS, "start": "20:00", "end": "08:00"}))  # fmt: skip

        assert night["org_id"] == other.org_id
        assert (night["start"], night["end"]) == ("20:00", "08:00")

    async def test_an_unknown_time_zone_is_refused(
        self, client: Client, operator: dict[str, str]
    ) -> None:
        response = await client.post(POOLS, headers=operator,
                                     json={"name": "x", "timezone": "Mars/Base"})  # fmt: skip

        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.timezone"

    async def test_a_pool_name_is_unique_in_its_region(
        self, client: Client, operator: dict[str, str]
    ) -> None:
        await _pool(client, operator, "dup")

        response = await client.post(POOLS, headers=operator,
                                     json={"name": "dup", "timezone": "UTC"})  # fmt: skip

        assert response.status_code == 409
        assert response.json()["errors"][0]["field"] == "body.name"

    async def test_a_node_belongs_to_at_most_one_pool(
        self, client: Client, operator: dict[str, str], fleet: list[str]
    ) -> None:
        first, second = await _pool(client, operator, "a"), await _pool(client, operator, "b")
        await must(client.put(f"{POOLS}/{first}/nodes", json={"node_ids": fleet[:1]},
                              headers=operator))  # fmt: skip

        response = await client.put(f"{POOLS}/{second}/nodes", json={"node_ids": fleet},
                                    headers=operator)  # fmt: skip

        assert response.status_code == 409
        assert "already in pool 'a'" in response.json()["detail"]

    async def test_a_node_of_another_region_is_refused(
        self, client: Client, operator: dict[str, str], fleet: list[str]
    ) -> None:
        pool_id = await _pool(client, operator)
        url = f"/api/v1/regions/se-sto-1/pools/{pool_id}/nodes"

        response = await client.put(url, json={"node_ids": fleet}, headers=operator)

        assert response.status_code == 404  # the pool is not in that region either

    async def test_a_window_for_a_project_of_another_organization_is_refused(
        self, client: Client, operator: dict[str, str], org: Tenant, other: Tenant
    ) -> None:
        pool_id = await _pool(client, operator)

        response = await client.post(f"{POOLS}/{pool_id}/windows", headers=operator, json={
            "org_id": org.org_id, "project_id": other.project_id, "days": ["mon"],
            "start": "08:00", "end": "09:00"})  # fmt: skip

        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "body.project_id"


class TestSchedule:
    async def test_the_schedule_lists_concrete_openings_with_their_drain(
        self, client: Client, operator: dict[str, str], day_and_night: DayAndNight
    ) -> None:
        url = f"{POOLS}/{day_and_night.pool_id}/schedule"

        openings = await must(client.get(url, params={"days": 2}, headers=operator))

        first = openings[0]
        end = datetime.fromisoformat(first["end"].replace("Z", "+00:00"))
        assert end == day_and_night.day_end
        drain = datetime.fromisoformat(first["drain_from"].replace("Z", "+00:00"))
        assert end - drain == timedelta(minutes=30)
        assert len(openings) >= 4

    async def test_deleting_a_window_and_the_pool(
        self, client: Client, operator: dict[str, str], day_and_night: DayAndNight
    ) -> None:
        url = f"{POOLS}/{day_and_night.pool_id}"
        pool = await must(client.get(url, headers=operator))
        window_id = pool["windows"][0]["id"]
        assert (
            await client.delete(f"{url}/windows/{window_id}", headers=operator)
        ).status_code == 204
        assert len((await must(client.get(url, headers=operator)))["windows"]) == 1
        assert (await client.delete(url, headers=operator)).status_code == 204
        assert (await client.get(url, headers=operator)).status_code == 404


class TestTenantView:
    async def test_each_organization_sees_only_its_own_windows(
        self,
        client: Client,
        org: Tenant,
        other: Tenant,
        auth: dict[str, str],
        other_auth: dict[str, str],
        day_and_night: DayAndNight,
        clock: OffsetClock,
    ) -> None:
        mine = await client.get(f"/api/v1/orgs/{org.org_id}/pools", headers=auth)
        theirs = await client.get(f"/api/v1/orgs/{other.org_id}/pools", headers=other_auth)

        assert mine.status_code == theirs.status_code == 200
        (pool,) = mine.json()
        assert pool["name"] == "gpu-shared"
        assert pool["gpus"] == 16
        assert pool["openings"][0]["open_now"] is True
        assert len(pool["openings"]) in (7, 8)
        assert other.org_id not in mine.text
        assert org.org_id not in theirs.text
        assert theirs.json()[0]["openings"][0]["open_now"] is False

    async def test_another_organizations_pools_are_hidden(
        self, client: Client, other: Tenant, auth: dict[str, str], day_and_night: DayAndNight
    ) -> None:
        response = await client.get(f"/api/v1/orgs/{other.org_id}/pools", headers=auth)

        assert response.status_code == 404

"""The pool pages: a tenant sees the windows lent to it (never another's), an operator sees
each pool's week and manages windows through forms with CSRF and errors by the field."""

from __future__ import annotations

import re

from tests.fixtures.factories import Tenant
from tests.integration.pools.conftest import (
    POOLS,
    DayAndNight,
    auth,
    catalog,
    day_and_night,
    fleet,
    operator,
    org,
    other,
    other_auth,
)
from tests.integration.portal.test_tenancy_pages import text_of
from tests.integration.tenancies.conftest import Client

__all__ = ["auth", "catalog", "day_and_night", "fleet", "operator", "org", "other", "other_auth"]
HTML = {"Accept": "text/html"}


def _form(headers: dict[str, str], **values: str) -> dict[str, str]:
    return {"_csrf": headers["X-CSRF-Token"], **values}


class TestTenantPage:
    async def test_a_tenant_sees_its_own_openings_and_nothing_of_the_other_tenant(
        self,
        client: Client,
        org: Tenant,
        other: Tenant,
        auth: dict[str, str],
        day_and_night: DayAndNight,
    ) -> None:
        page = await client.get("/pools", headers={**auth, **HTML})

        assert page.status_code == 200
        words = text_of(page.text)
        assert "gpu-shared" in words
        assert "16 x H100" in words
        assert "Open now" in words
        assert other.org_id not in page.text
        assert other.slug not in page.text
        assert page.text.count('class="pool-week__row"') == 7
        assert "style=" not in page.text  # the strict CSP allows no inline style

    async def test_a_tenant_without_a_pool_is_told_so(
        self, client: Client, auth: dict[str, str], fleet: list[str]
    ) -> None:
        page = await client.get("/pools", headers={**auth, **HTML})

        assert "No pool is lent to your organization" in text_of(page.text)


class TestOperatorPage:
    async def test_the_week_shows_each_window_and_the_overnight_one_wraps(
        self, client: Client, operator: dict[str, str], day_and_night: DayAndNight
    ) -> None:
        page = await client.get("/operator/pools?region=ca-qc-1", headers={**operator, **HTML})

        assert page.status_code == 200
        assert "gpu-shared" in page.text
        bars = re.findall(r'<rect class="pool-week__bar pool-week__bar--(\d)"', page.text)
        assert {"1", "2"} <= set(bars)
        assert len(bars) >= 14  # every day has both grantees, one of them split at midnight

    async def test_an_overlapping_window_is_shown_next_to_its_field(
        self,
        client: Client,
        operator: dict[str, str],
        org: Tenant,
        day_and_night: DayAndNight,
    ) -> None:
        url = f"/operator/pools/{day_and_night.pool_id}/windows"
        form = _form(operator, region="ca-qc-1", org_id=org.slug, start="00:00", end="23:59")

        page = await client.post(url, data={**form, "days": "mon"}, headers={**operator, **HTML})

        assert page.status_code == 400
        assert "field__error" in page.text
        assert "overlaps window" in text_of(page.text)

    async def test_an_operator_creates_a_pool_and_adds_a_window(
        self, client: Client, operator: dict[str, str], org: Tenant, fleet: list[str]
    ) -> None:
        created = await client.post(
            "/operator/pools",
            data=_form(operator, region="ca-qc-1", name="render", timezone="America/Toronto",
                       drain_minutes="15"),
            headers={**operator, **HTML}, follow_redirects=False,
        )  # fmt: skip
        assert created.status_code == 303
        pool_id = (await client.get(POOLS, headers=operator)).json()[0]["id"]

        added = await client.post(
            f"/operator/pools/{pool_id}/windows",
            data={**_form(operator, region="ca-qc-1", org_id=org.slug, start="20:00",
                          end="08:00"), "days": ["fri", "sat"]},
            headers={**operator, **HTML}, follow_redirects=False,
        )  # fmt: skip

        assert added.status_code == 303
        (window,) = (await client.get(f"{POOLS}/{pool_id}", headers=operator)).json()["windows"]
        assert (window["days"], window["start"], window["end"]) == (
            ["fri", "sat"],
            "20:00",
            "08:00",
        )

    async def test_a_form_without_its_csrf_token_is_refused(
        self, client: Client, operator: dict[str, str]
    ) -> None:
        response = await client.post(
            "/operator/pools", data={"region": "ca-qc-1", "name": "x", "timezone": "UTC"},
            headers={"Cookie": operator["Cookie"], **HTML},
        )  # fmt: skip

        assert response.status_code == 403

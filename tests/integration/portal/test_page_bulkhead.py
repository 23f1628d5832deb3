"""With ``CP_PORTAL_PAGES_AT_ONCE`` at 1, pages and API calls sent at once are all answered (no
turn kept); every page route shares one bulkhead, no API route has one."""

from __future__ import annotations

import asyncio

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from portal.bulkhead import PageBulkhead, PageTurns
from tests.fixtures.factories import make_org, signed_in

Client = AsyncTestClient[Litestar]
PAGES = ("/tenancies", "/insights", "/endpoints", "/dashboard")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"portal_pages_at_once": 1})


async def test_with_a_limit_of_one_pages_and_api_calls_sent_at_once_are_all_answered(
    client: Client, db: AsyncSession
) -> None:
    org = await make_org(db, roles=(TenantRole.MEMBER,))
    await db.commit()
    member = await signed_in(client, org.accounts[TenantRole.MEMBER])
    api = f"/api/v1/orgs/{org.org_id}/tenancies"

    answers = await asyncio.gather(
        *(client.get(path, headers=member) for path in PAGES * 3),
        *(client.get(api, headers=member) for _ in range(4)),
    )

    assert [a.status_code for a in answers] == [200] * (len(PAGES) * 3 + 4)
    assert all("<html" in a.text for a in answers[: len(PAGES) * 3])
    assert all(a.json()["items"] == [] for a in answers[len(PAGES) * 3 :])


def test_every_page_route_shares_one_bulkhead_of_the_configured_size_and_no_api_route_has_one(
    app: Litestar,
) -> None:
    def turns(path: str) -> list[PageTurns]:
        """The turns of the route's handlers (GET, POST, OPTIONS...)."""
        route = next(r for r in app.routes if r.path == path)
        return [m.kwargs["turns"] for handler in route.route_handlers
                for m in handler.resolve_middleware()
                if getattr(m, "middleware", None) is PageBulkhead]  # fmt: skip

    shared = {id(t) for page in PAGES for t in turns(page)}
    assert len(shared) == 1
    assert turns(PAGES[0])[0].limit == 1
    assert turns("/api/v1/orgs/{org_id:str}/tenancies") == []

"""A spent hard-stop budget stops inference: the gateway answers 402 ``budget-exhausted``
on the OpenAI and KServe routes before any replica is asked."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.budgets.models import Budget
from control_plane.clock import OffsetClock
from control_plane.identity.roles import TenantRole
from control_plane.ids import new_id
from control_plane.settings import Settings
from tests.fixtures.factories import Tenant, bearer, make_api_key
from tests.integration.endpoints.conftest import Client, create_endpoint, fake_model

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
V2 = {"inputs": [{"name": "text_input", "datatype": "BYTES", "shape": [1], "data": ["hi"]}]}


async def test_a_stopped_budget_refuses_inference_with_402(
    client: Client,
    org: Tenant,
    auth: dict[str, str],
    fleet: list[str],
    settings: Settings,
    db: AsyncSession,
    clock: OffsetClock,
) -> None:
    created = await create_endpoint(client, org, auth, model_uri=fake_model(settings, "tiny"))
    assert created.status_code == 201, created.text
    key = await make_api_key(db, org, TenantRole.MEMBER)
    budget_id = new_id("bud")
    db.add(
        Budget(
            id=budget_id,
            org_id=org.org_id,
            project_id="",
            currency="CAD",
            amount_minor=1_000,
            thresholds=[100],
            hard_stop=True,
            webhook_url="",
            webhook_secret="",
            email="",
            spent_minor=1_250,
            stopped=True,
            evaluated_at=clock.now(),
            created_at=clock.now(),
        )
    )
    await db.commit()
    client.app.state.budget_gate.forget()  # the budget loop does this after each evaluation
    client.cookies.clear()

    chat = await client.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
    kserve = await client.post("/v2/models/chat/infer", json=V2, headers=bearer(key))

    for refused in (chat, kserve):
        assert refused.status_code == 402, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"].endswith("/budget-exhausted")
        assert "10.00 CAD" in refused.json()["detail"]

"""The gateway against a real Triton server (the local driver starts it): the OpenAI
Python client, streaming with a usage chunk, token counts equal to the model's own
tokenizer, disconnects billed for what was generated, per-key limits, the approval gate,
tenant isolation, cold start from zero, and the exactly-once usage flush."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest
from litestar import Litestar
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from control_plane.db.engine import make_sessionmaker
from control_plane.endpoints.gateway.core import Gateway
from control_plane.endpoints.gateway.text import model_text
from control_plane.endpoints.modelrepo.tiny import write_tiny_model
from control_plane.endpoints.triton.driver import stop_all
from control_plane.endpoints.triton.server import triton_available
from control_plane.identity.roles import TenantRole
from control_plane.metering.service import usage_total
from control_plane.settings import Settings
from control_plane.tenancies.reconciler import Reconciler
from tests.conftest import need_peer
from tests.fixtures.factories import Tenant, bearer, make_api_key, make_org
from tests.integration.endpoints.conftest import REGION, Client, endpoints_url

pytestmark = [pytest.mark.peer_triton, pytest.mark.slow]


@pytest.fixture
def inference_driver() -> str:
    need_peer(triton_available())
    return "triton-local"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"gateway_cold_start_seconds": 60.0})


@pytest.fixture
def tiny(settings: Settings) -> Path:
    """The built-in tiny model in the region's store (a short delay per token, so a
    stream can be cut halfway)."""
    return write_tiny_model(settings.model_store_root / REGION, "tiny-chat", token_delay_ms=20)


@pytest.fixture(autouse=True)
def stop_tritons(settings: Settings) -> Iterator[None]:
    """Whatever a test leaves running, its Triton servers stop with it."""
    yield
    stop_all(settings.triton_dir)


@pytest.fixture
async def key(db: AsyncSession, org: Tenant) -> str:
    secret = await make_api_key(db, org, TenantRole.MEMBER)
    await db.commit()
    return secret


async def deploy(
    client: Client, org: Tenant, key: str, tiny: Path, reconciler: Reconciler, **body: Any
) -> dict[str, Any]:
    payload = {
        "name": "chat",
        "region": REGION,
        "model_uri": tiny.as_uri(),
        "gpu_model": "h100",
        "gpu_milli": 250,
        **body,
    }
    created = await client.post(endpoints_url(org), json=payload, headers=bearer(key))
    assert created.status_code == 201, created.text
    await reconciler.converge()
    endpoint = (await client.get(f"{endpoints_url(org)}/chat", headers=bearer(key))).json()
    return dict(endpoint)


def oai(client: Client, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=key, base_url=f"{client.base_url}/v1", http_client=client, max_retries=0
    )


async def flush(app: Litestar, db: AsyncSession) -> None:
    """Flush the app's usage meter from this test's event loop (its own connection)."""
    gateway: Gateway = app.state.gateway
    await gateway.meter.flush(sessionmaker_of(db))


def sessionmaker_of(db: AsyncSession) -> async_sessionmaker[AsyncSession]:
    engine = db.bind
    assert isinstance(engine, AsyncEngine)
    return make_sessionmaker(engine)


class TestChat:
    async def test_openai_client_gets_an_answer_with_exact_usage(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        app: Litestar,
        db: AsyncSession,
    ) -> None:
        endpoint = await deploy(client, org, key, tiny, reconciler)
        assert endpoint["state"] == "ready", endpoint
        messages = [{"role": "user", "content": "Tell me about sovereign clouds."}]
        answer = await oai(client, key).chat.completions.create(
            model="chat",
            messages=messages,
            max_tokens=12,
        )
        text = model_text(tiny)
        content = answer.choices[0].message.content or ""
        assert content
        assert answer.usage is not None
        assert answer.usage.prompt_tokens == text.count(text.prompt(messages))
        assert answer.usage.completion_tokens == text.count(content) == 12
        assert answer.choices[0].finish_reason == "length"
        await flush(app, db)
        billed = await usage_total(db, org_id=org.org_id, type="tokens_out")
        assert billed == 12
        scraped = (await client.get("/metrics")).text
        assert f'cp_endpoint_tokens_total{{direction="out",endpoint="{endpoint["id"]}"}} 12.0' in (
            scraped
        )

    async def test_stream_ends_with_a_usage_chunk_matching_the_deltas(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        stream = await oai(client, key).chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "hello"}],
            max_tokens=8,
            stream=True,
            stream_options={"include_usage": True},
        )
        deltas: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                deltas.append(chunk.choices[0].delta.content)
            if chunk.usage is not None:
                usage = chunk.usage
        assert len(deltas) > 1  # streamed, not one block
        assert usage is not None
        assert usage.completion_tokens == model_text(tiny).count("".join(deltas)) == 8

    async def test_completions_and_model_list(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        api = oai(client, key)
        models = await api.models.list()
        assert [m.id for m in models.data] == ["chat"]
        done = await api.completions.create(model="chat", prompt="Once upon", max_tokens=5)
        assert done.usage is not None
        assert done.usage.completion_tokens == model_text(tiny).count(done.choices[0].text) == 5


class TestRefusals:
    async def test_another_organization_cannot_see_or_call_the_model(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        other = await make_org(db, roles=(TenantRole.OWNER,))
        stranger = await make_api_key(db, other, TenantRole.OWNER)
        await db.commit()
        api = oai(client, stranger)
        assert (await api.models.list()).data == []
        with pytest.raises(openai.NotFoundError):
            await api.chat.completions.create(
                model="chat",
                messages=[{"role": "user", "content": "hi"}],
            )

    async def test_per_key_request_rate_answers_429_with_retry_after(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        app: Litestar,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        from control_plane.endpoints.gateway.limits import KeyLimits, Limiter

        app.state.gateway.limiter = Limiter(
            KeyLimits(requests_per_second=1, tokens_per_minute=10_000)
        )
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        first = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        second = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert first.status_code == 200, first.text
        assert second.status_code == 429
        assert int(second.headers["retry-after"]) >= 1
        assert second.headers["content-type"].startswith("application/problem+json")

    async def test_a_version_awaiting_approval_serves_nothing(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        from datetime import UTC, datetime

        from control_plane.endpoints.models import ModelGovernance

        db.add(
            ModelGovernance(
                org_id=org.org_id,
                require_approval=True,
                updated_by="test",
                updated_at=datetime.now(UTC),
            )
        )
        await db.commit()
        endpoint = await deploy(client, org, key, tiny, reconciler)
        assert endpoint["state"] == "awaiting-approval"
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        refused = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert refused.status_code == 503
        assert "approved" in refused.json()["detail"]

    async def test_malformed_body_gets_a_field_error(
        self, client: Client, key: str, fleet: list[str]
    ) -> None:
        bad = await client.post(
            "/v1/chat/completions", json={"model": "chat", "messages": []}, headers=bearer(key)
        )
        assert bad.status_code == 400
        assert bad.json()["errors"][0]["field"].startswith("body")


class TestUsage:
    async def test_a_flush_retried_after_its_commit_counts_once(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        app: Litestar,
        db: AsyncSession,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 6}
        for _ in range(3):
            ok = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
            assert ok.status_code == 200, ok.text
        meter = app.state.gateway.meter

        async def crash() -> None:  # the process dies between commit and acknowledgement
            meter.after_commit = None
            raise RuntimeError("crashed after commit")

        meter.after_commit = crash
        with pytest.raises(RuntimeError):
            await meter.flush(sessionmaker_of(db))
        assert meter.unflushed == 1  # the batch is kept
        await meter.flush(sessionmaker_of(db))  # written again, same ids: ignored
        assert meter.unflushed == 0
        assert await usage_total(db, org_id=org.org_id, type="tokens_out") == 18


class TestColdStart:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        """The app's own reconciler runs (the test client blocks this test's loop while
        a request is in flight, so only the app's loop can start the replica)."""
        return settings.model_copy(
            update={"reconciler_enabled": True, "reconcile_interval_seconds": 0.2}
        )

    async def test_a_request_to_an_endpoint_at_zero_waits_for_a_replica(
        self, client: Client, org: Tenant, key: str, fleet: list[str], tiny: Path
    ) -> None:
        payload = {
            "name": "chat",
            "region": REGION,
            "model_uri": tiny.as_uri(),
            "gpu_model": "h100",
            "gpu_milli": 250,
            "min_replicas": 0,
            "max_replicas": 1,
            "scale_to_zero_after_s": 30,
        }
        created = await client.post(endpoints_url(org), json=payload, headers=bearer(key))
        assert created.status_code == 201, created.text
        await _until(client, org, key, "ready")
        down = await client.put(
            f"{endpoints_url(org)}/chat/scale",
            headers=bearer(key),
            json={"min_replicas": 0, "max_replicas": 1, "replicas": 0},
        )
        assert down.status_code == 200, down.text
        await _until(client, org, key, "scaled-to-zero")
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        answer = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["usage"]["completion_tokens"] == 3
        events = (
            await client.get(f"{endpoints_url(org)}/chat/events", headers=bearer(key))
        ).json()["items"]
        assert any("cold start" in e["detail"] for e in events)


async def _until(client: Client, org: Tenant, key: str, state: str) -> None:
    seen = ""
    for _ in range(300):
        seen = (await client.get(f"{endpoints_url(org)}/chat", headers=bearer(key))).json()["state"]
        if seen == state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"endpoint is {seen}, not {state}")


class TestKServeV2:
    async def test_tritonclient_http_through_the_gateway(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
    ) -> None:
        """tritonclient's own request encoding (binary tensors) reaches the model through
        the gateway; the answer and its metered tokens match the model's tokenizer."""
        import numpy as np
        import tritonclient.http as httpclient

        await deploy(client, org, key, tiny, reconciler)
        prompt = httpclient.InferInput("text_input", [1], "BYTES")
        prompt.set_data_from_numpy(np.array([b"tell me a story"], dtype=np.object_))
        limit = httpclient.InferInput("max_tokens", [1], "INT32")
        limit.set_data_from_numpy(np.array([7], dtype=np.int32))
        body, header_length = httpclient.InferenceServerClient.generate_request_body(
            [prompt, limit], request_id="r-1"
        )
        headers = {**bearer(key), "Content-Type": "application/octet-stream"}
        if header_length is not None:
            headers["Inference-Header-Content-Length"] = str(header_length)
        answer = await client.post("/v2/models/chat/infer", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        result = httpclient.InferenceServerClient.parse_response_body(answer.content)
        text = result.as_numpy("text_output")[0]
        text = text.decode() if isinstance(text, bytes) else str(text)
        assert model_text(tiny).count(text) == 7
        assert answer.headers["x-usage-completion-tokens"] == "7"
        metadata = (await client.get("/v2/models/chat", headers=bearer(key))).json()
        assert metadata["name"] == "chat"
        assert {i["name"] for i in metadata["inputs"]} >= {"text_input", "max_tokens"}


class TestObservability:
    async def test_metrics_api_and_the_versions_inputs_and_outputs(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        app: Litestar,
        db: AsyncSession,
    ) -> None:
        from control_plane.endpoints.gateway.routing import RouteTable
        from control_plane.endpoints.observe import record_io

        await deploy(client, org, key, tiny, reconciler)
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        for _ in range(3):
            assert (
                await client.post("/v1/chat/completions", json=body, headers=bearer(key))
            ).status_code == 200
        metrics = (
            await client.get(f"{endpoints_url(org)}/chat/metrics", headers=bearer(key))
        ).json()
        assert metrics["requests"] == 3
        assert metrics["tokens_out"] == 12
        assert metrics["latency_ms_p50"] > 0
        assert metrics["ttft_ms_p99"] >= metrics["ttft_ms_p50"]
        assert metrics["drift"]["prompt_tokens"]["statistic"] is None  # baseline still filling
        assert metrics["drift"]["prompt_tokens"]["baseline_n"] == 3
        recorded = await record_io(sessionmaker_of(db), RouteTable(sessionmaker_of(db), 0.0))
        assert recorded == 1
        version = (await client.get(f"{endpoints_url(org)}/chat", headers=bearer(key))).json()[
            "versions"
        ][0]
        assert {i["name"] for i in version["io"]["inputs"]} >= {"text_input", "max_tokens"}
        assert [o["name"] for o in version["io"]["outputs"]] == ["text_output"]
        assert version["io"]["decoupled"] is True


class TestKeyLimits:
    async def test_a_keys_own_token_limit_holds_it_back_and_not_another_key(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        await deploy(client, org, key, tiny, reconciler)
        owner = await make_api_key(db, org, TenantRole.OWNER)
        await db.commit()
        project = org.project_id
        made = await client.post(
            f"/api/v1/projects/{project}/api-keys",
            headers=bearer(owner),
            json={"name": "small", "role": "member", "tokens_per_minute": 30},
        )
        assert made.status_code == 201, made.text
        assert made.json()["api_key"]["tokens_per_minute"] == 30
        small = made.json()["secret"]
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
        first = await client.post("/v1/chat/completions", json=body, headers=bearer(small))
        assert first.status_code == 200, first.text
        assert first.json()["usage"]["total_tokens"] > 30  # spent past its minute's budget
        held = await client.post("/v1/chat/completions", json=body, headers=bearer(small))
        assert held.status_code == 429
        other = await client.post("/v1/chat/completions", json=body, headers=bearer(key))
        assert other.status_code == 200  # the default limits of another key are untouched


class TestCost:
    async def test_usage_carries_the_calls_cost_at_the_organizations_prices(
        self,
        client: Client,
        org: Tenant,
        key: str,
        fleet: list[str],
        tiny: Path,
        reconciler: Reconciler,
        db: AsyncSession,
    ) -> None:
        from datetime import UTC, datetime, timedelta
        from decimal import Decimal

        from billing.prices.schemas import PriceBookCreate, RateIn
        from billing.prices.service import create_book

        now = datetime.now(UTC)
        book = PriceBookCreate(
            effective_from=now - timedelta(days=1),
            rates=[RateIn("tokens_in", Decimal("0.20")), RateIn("tokens_out", Decimal("0.60"))],
        )
        await create_book(db, REGION, book, actor="test", now=now)
        await db.commit()
        await deploy(client, org, key, tiny, reconciler)

        plain = await client.post(
            "/v1/completions",
            json={"model": "chat", "prompt": "Once upon a time", "max_tokens": 7},
            headers=bearer(key),
        )
        streamed = await client.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 5,
                "stream": True,
            },
            headers=bearer(key),
        )

        used = plain.json()["usage"]
        expected = (used["prompt_tokens"] * Decimal("0.20") + 7 * Decimal("0.60")) / 10**6
        assert (used["cost"], used["cost_currency"]) == (f"{expected:.9f}", "CAD")
        chunks = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: {")]
        last = msgspec.json.decode(chunks[-1])["usage"]
        assert last["completion_tokens"] == 5
        assert (
            Decimal(last["cost"])
            == (last["prompt_tokens"] * Decimal("0.20") + 5 * Decimal("0.60")) / 10**6
        )

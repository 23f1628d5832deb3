"""One real language model end to end: SmolLM2-135M-Instruct (llama.cpp inside a Triton
Python-backend model) deployed as an endpoint and called through the gateway with the
OpenAI Python client; the usage it reports is checked against the model's own tokenizer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.endpoints.gateway.text import model_text
from control_plane.endpoints.modelrepo.smollm2 import smollm2_gguf, write_smollm2_model
from control_plane.endpoints.triton.driver import stop_all
from control_plane.identity.roles import TenantRole
from control_plane.settings import Settings
from control_plane.tenancies.reconciler import Reconciler
from tests.conftest import need_peer
from tests.fixtures.factories import Tenant, bearer, make_api_key
from tests.fixtures.peers.triton import smollm2_unavailable, triton_unavailable
from tests.integration.endpoints.conftest import REGION, Client, endpoints_url

pytestmark = [pytest.mark.peer_triton, pytest.mark.slow]


@pytest.fixture
def inference_driver() -> str:
    need_peer(triton_unavailable())
    need_peer(smollm2_unavailable())
    return "triton-local"


@pytest.fixture
def smollm2(settings: Settings) -> Iterator[Path]:
    gguf = smollm2_gguf()
    assert gguf is not None
    yield write_smollm2_model(settings.model_store_root / REGION, gguf, "smollm2-135m")
    stop_all(settings.triton_dir)


async def test_openai_client_chats_with_smollm2_and_usage_matches_its_tokenizer(
    client: Client,
    org: Tenant,
    db: AsyncSession,
    fleet: list[str],
    smollm2: Path,
    reconciler: Reconciler,
) -> None:
    key = await make_api_key(db, org, TenantRole.MEMBER)
    await db.commit()
    created = await client.post(
        endpoints_url(org),
        headers=bearer(key),
        json={
            "name": "smol",
            "region": REGION,
            "model_uri": smollm2.as_uri(),
            "gpu_model": "h100",
            "gpu_milli": 500,
        },
    )
    assert created.status_code == 201, created.text
    await reconciler.converge()
    api = openai.AsyncOpenAI(
        api_key=key, base_url=f"{client.base_url}/v1", http_client=client, max_retries=0
    )
    messages = [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name three colours of the rainbow."},
    ]
    answer = await api.chat.completions.create(
        model="smol",
        messages=messages,
        max_tokens=24,
    )
    content = answer.choices[0].message.content or ""
    text = model_text(smollm2)
    assert content.strip(), "the model said nothing"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == text.count(text.prompt(messages))
    assert answer.usage.completion_tokens == text.count(content)
    assert 0 < answer.usage.completion_tokens <= 24
    assert "<|im_start|>" in text.prompt(messages)  # the model's own chat template was used

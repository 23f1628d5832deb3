"""Browser fixtures: Debian Chromium driven by Playwright (never ``playwright install``)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import OffsetClock
from control_plane.seed.demo import seed_demo
from control_plane.settings import Settings
from tests.conftest import REPO, need_peer
from tests.e2e.server import serve_app

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        need_peer("chromium not installed")
    assert path is not None
    return path


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def demo_url(settings: Settings, clock: OffsetClock, db: AsyncSession) -> AsyncIterator[str]:
    """The app served by uvicorn on loopback over the demo data (emptied after the test)."""
    await seed_demo(db, clock)
    await db.commit()
    with serve_app(settings, clock=clock) as url:
        yield url


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS

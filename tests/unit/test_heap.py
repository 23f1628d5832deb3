"""A server process moves its start-up heap out of the garbage collector's way: full
collections then walk only what was made since (they paused replicas 100-200 ms)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.heap import freeze_startup_heap


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()  # the test process goes on collecting as before
    gc.set_threshold(*threshold)


def test_freezing_exempts_what_start_up_made_from_full_collections(unfrozen: None) -> None:
    before = len(gc.get_objects())
    freeze_startup_heap()
    assert gc.get_freeze_count() >= before // 2
    assert len(gc.get_objects()) < before // 10  # what a full collection still walks


def test_the_young_generation_is_collected_less_often(unfrozen: None) -> None:
    """Each young collection promotes what requests in flight hold; fewer of them mean
    fewer full collections later."""

    def young_collections_while_allocating() -> int:
        before = gc.get_stats()[0]["collections"]
        alive = [[] for _ in range(50_000)]  # held, as a request in flight holds its objects
        collections = gc.get_stats()[0]["collections"] - before
        del alive
        return int(collections)

    by_default = young_collections_while_allocating()
    freeze_startup_heap()
    assert young_collections_while_allocating() <= 5 < by_default


def test_garbage_made_after_start_up_is_still_collected(unfrozen: None) -> None:
    """Automatically, as allocations go on: the freeze must not switch the collector off
    (``gc.disable()`` before ``gc.freeze()`` is the recipe for forking servers)."""
    freeze_startup_heap()

    class Node:
        partner: Node | None = None

    first, second = Node(), Node()
    first.partner, second.partner = second, first  # a cycle: only the collector frees it
    gone = weakref.ref(first)
    del first, second
    for _ in range(200):  # more such garbage, as a server makes: it triggers the collections
        if gone() is None:
            break
        for _ in range(1_000):
            more = Node()
            more.partner = more
        del more
    assert gone() is None


def test_the_server_entry_point_compiles_templates_and_freezes_once_started(
    tmp_path: Path,
) -> None:
    """``control_plane.asgi:app`` (what uvicorn serves) compiles every portal template and
    runs the freeze on start-up, so the templates are frozen too and no page's first view
    compiles one; ``create_app`` alone (tests, tools) leaves both alone."""
    probe = (
        "import asyncio, gc\n"
        "from control_plane.asgi import app\n"
        "env = app.template_engine.engine\n"
        "assert gc.get_freeze_count() == 0 and len(env.cache) == 0\n"
        "async def main():\n"
        "    async with app.lifespan():\n"
        "        print(len(env.cache), len(env.list_templates()))\n"
        "        print(gc.get_freeze_count())\n"
        "asyncio.run(main())\n"
    )
    env = {
        **os.environ,
        "CP_DATABASE_URL": f"sqlite:///{tmp_path / 'cp.db'}",
        **{f"CP_{name}_DIR": str(tmp_path / name.lower()) for name in ("KEY", "SIM", "TRITON")},
        "CP_MODEL_STORE_ROOT": str(tmp_path / "models"),
    }
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    *_, compiled, frozen = done.stdout.strip().splitlines()
    cached, templates = map(int, compiled.split())
    assert cached == templates > 40
    assert int(frozen) > 50_000

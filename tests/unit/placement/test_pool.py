"""The pool: decisions applied with commit, given back with release."""

from __future__ import annotations

import pytest

from control_plane.placement import Placement, Pool, Request, Slot
from tests.unit.placement.nodes import node, two_domains


def req(**kw: object) -> Request:
    base: dict[str, object] = {"regions": ("ca-qc-1",), "gpu_models": (), "gpu_count": 1}
    return Request(**{**base, **kw})  # type: ignore[arg-type]


def take(pool: Pool, request: Request) -> Placement:
    result = pool.place(request)
    assert isinstance(result, Placement), result
    pool.commit(result)
    return result


class TestCommitRelease:
    def test_commit_takes_and_release_gives_back_everything(self) -> None:
        nodes = [
            node("a", domains=two_domains(), cpu=64_000, memory=512_000),
            node("b", rack="r2", cpu=64_000, memory=512_000),
            node("c", rack="r2", cpu=64_000, memory=512_000),
        ]
        pool = Pool(nodes)
        taken = [
            take(pool, req(gpu_milli=250, cpu_milli=1000, memory_mib=2048)),
            take(pool, req(gpu_count=4, cpu_milli=8000)),
            take(pool, req(gpu_count=8, node_count=2, memory_mib=1000)),
            take(pool, req(gpu_count=0, cpu_milli=2000)),
        ]
        assert pool.nodes() != tuple(nodes)
        for placement in reversed(taken):
            pool.release(placement)
        assert pool.nodes() == tuple(nodes)

    def test_commit_subtracts_what_the_placement_uses(self) -> None:
        pool = Pool([node("a", gpus=2, cpu=10_000, memory=10_000)])
        take(pool, req(gpu_milli=300, cpu_milli=4000, memory_mib=1000))
        (state,) = pool.nodes()
        assert sorted(g.free_milli for g in state.gpus) == [700, 1000]
        assert (state.cpu_free_milli, state.memory_free_mib) == (6000, 9000)

    def test_a_stale_placement_is_refused_and_changes_nothing(self) -> None:
        pool = Pool([node("a", gpus=1)])
        first = pool.place(req())
        second = pool.place(req())
        assert isinstance(first, Placement)
        assert isinstance(second, Placement)
        pool.commit(first)
        before = pool.nodes()
        with pytest.raises(ValueError, match="taken"):
            pool.commit(second)
        assert pool.nodes() == before

    def test_releasing_twice_is_refused(self) -> None:
        pool = Pool([node("a", gpus=1)])
        placement = take(pool, req(gpu_milli=600))
        pool.release(placement)
        with pytest.raises(ValueError, match="not taken"):
            pool.release(placement)

    def test_unknown_nodes_and_gpus_are_refused(self) -> None:
        pool = Pool([node("a", gpus=1)])
        ghost = Placement("ca-qc-1", "H100", (Slot("zz", 0, 1000),), ("zz",))
        with pytest.raises(ValueError, match="unknown node"):
            pool.commit(ghost)
        wrong_gpu = Placement("ca-qc-1", "H100", (Slot("a", 7, 1000),), ("a",))
        with pytest.raises(ValueError, match="no GPU 7"):
            pool.commit(wrong_gpu)

    def test_released_whole_node_can_be_taken_again(self) -> None:
        pool = Pool([node("a")])
        metal = take(pool, req(gpu_count=8, whole_node=True))
        assert not isinstance(pool.place(req(gpu_count=0)), Placement)
        pool.release(metal)
        take(pool, req(gpu_count=8, whole_node=True))

    def test_bad_node_states_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="twice"):
            Pool([node("a"), node("a")])
        with pytest.raises(ValueError, match=r"out of 0\.\.1000"):
            Pool([node("a", free=(1200,))])

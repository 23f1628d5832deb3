"""Property tests: whatever the nodes and the request, placement never leaves the allowed
regions or models and never gives out more GPU, CPU or memory than is free."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.placement import (
    FULL_GPU,
    POLICY_NAMES,
    GpuFree,
    NodeState,
    Placement,
    Pool,
    Refusal,
    Request,
    place,
)

REGIONS = ("ca-qc-1", "ca-on-1", "se-north-1", "de-fra-1")
MODELS = ("H100", "L40S", "A100")

free_milli = st.one_of(st.sampled_from((0, 250, 500, 1000, 1000)), st.integers(0, 1000))


@st.composite
def node_states(draw: st.DrawFn, index: int) -> NodeState:
    frees = draw(st.lists(free_milli, min_size=1, max_size=8))
    domains = draw(st.sampled_from(("none", "pairs", "halves")))
    return NodeState(
        id=f"n{index}",
        region=draw(st.sampled_from(REGIONS[:3])),
        rack=draw(st.sampled_from(("r1", "r2"))),
        gpu_model=draw(st.sampled_from(MODELS[:2])),
        gpus=tuple(
            GpuFree(
                i, f, None if domains == "none" else f"d{i // (2 if domains == 'pairs' else 4)}"
            )
            for i, f in enumerate(frees)
        ),
        cpu_free_milli=draw(st.integers(0, 64_000)),
        memory_free_mib=draw(st.integers(0, 512_000)),
        schedulable=draw(st.booleans()) or draw(st.booleans()),
        fabric=draw(st.sampled_from((None, None, "ib-1"))),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[NodeState]:
    count = draw(st.integers(1, 10))
    return [draw(node_states(i)) for i in range(count)]


@st.composite
def requests(draw: st.DrawFn) -> Request:
    share = draw(st.booleans())
    gpu_count = 1 if share else draw(st.integers(0, 8))
    return Request(
        regions=tuple(draw(st.lists(st.sampled_from(REGIONS), max_size=3, unique=True))),
        gpu_models=tuple(draw(st.lists(st.sampled_from(MODELS), max_size=2, unique=True))),
        gpu_count=gpu_count,
        node_count=1 if share else draw(st.integers(1, 3)),
        gpu_milli=draw(st.integers(1, 999)) if share else FULL_GPU,
        whole_node=not share and draw(st.integers(0, 4)) == 0,
        cpu_milli=draw(st.integers(0, 32_000)),
        memory_mib=draw(st.integers(0, 256_000)),
        alternative_regions=tuple(draw(st.lists(st.sampled_from(REGIONS), max_size=2))),
    )


def check_within_rules(nodes: tuple[NodeState, ...], request: Request, p: Placement) -> None:
    by_id = {n.id: n for n in nodes}
    assert p.region in request.regions
    assert not request.gpu_models or p.gpu_model in request.gpu_models
    assert len(p.node_ids) == len(set(p.node_ids)) == request.node_count
    placed = [by_id[i] for i in p.node_ids]
    assert all(n.region == p.region and n.gpu_model == p.gpu_model for n in placed)
    assert all(n.schedulable for n in placed)
    assert len({n.fabric or f"rack:{n.rack}" for n in placed}) == 1
    used = Counter[tuple[str, int]]()
    for slot in p.slots:
        used[(slot.node_id, slot.gpu_index)] += slot.milli
    for n in placed:
        assert n.cpu_free_milli >= request.cpu_milli
        assert n.memory_free_mib >= request.memory_mib
        mine = [s for s in p.slots if s.node_id == n.id]
        if request.whole_node:
            assert all(g.free_milli == FULL_GPU for g in n.gpus)
            assert len(mine) == len(n.gpus) >= request.gpu_count
        else:
            assert len(mine) == request.gpu_count
        for g in n.gpus:
            assert used[(n.id, g.index)] <= g.free_milli
    assert all(key[0] in p.node_ids for key in used)
    assert all(s.milli == (request.gpu_milli if request.is_share else FULL_GPU) for s in p.slots)


class TestPlacementProperties:
    @settings(max_examples=300, deadline=None)
    @given(fleets(), requests(), st.sampled_from(POLICY_NAMES))
    def test_a_placement_never_breaks_a_rule(
        self, nodes: list[NodeState], request: Request, policy: str
    ) -> None:
        result = place(nodes, request, policy)
        if isinstance(result, Placement):
            check_within_rules(tuple(nodes), request, result)
        else:
            assert isinstance(result, Refusal)
            assert result.reason in {
                "invalid-request",
                "no-allowed-region",
                "no-such-gpu-model",
                "no-schedulable-nodes",
                "insufficient-capacity",
            }
            allowed = set(request.regions) | set(request.alternative_regions)
            for text in result.suggestions:
                named = [r for r in REGIONS if r in text]
                assert set(named) <= allowed, text

    @settings(max_examples=150, deadline=None)
    @given(fleets(), st.lists(requests(), min_size=1, max_size=12), st.sampled_from(POLICY_NAMES))
    def test_a_stream_of_commits_never_over_allocates_and_releases_restore_the_pool(
        self, nodes: list[NodeState], stream: list[Request], policy: str
    ) -> None:
        pool = Pool(nodes, policy)
        taken: list[Placement] = []
        for request in stream:
            before = pool.nodes()
            result = pool.place(request)
            if isinstance(result, Placement):
                check_within_rules(before, request, result)
                pool.commit(result)
                taken.append(result)
            assert all(g.free_milli >= 0 for n in pool.nodes() for g in n.gpus)
            assert all(n.cpu_free_milli >= 0 and n.memory_free_mib >= 0 for n in pool.nodes())
        for placement in reversed(taken):
            pool.release(placement)
        assert pool.nodes() == tuple(nodes)

"""Refusals say why, and what would fit instead."""

from __future__ import annotations

import pytest

from control_plane.placement import Refusal, Request, place
from tests.unit.placement.nodes import node


def refused(result: object) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


class TestInvalidRequests:
    @pytest.mark.parametrize(
        ("changes", "words"),
        [
            ({"gpu_count": 2, "gpu_milli": 500}, "exactly one GPU"),
            ({"gpu_milli": 0}, "1..1000"),
            ({"gpu_milli": 1001}, "1..1000"),
            ({"node_count": 0}, "node_count"),
            ({"gpu_count": -1}, "gpu_count"),
            ({"cpu_milli": -5}, "cpu_milli"),
            ({"whole_node": True, "gpu_milli": 500}, "whole node"),
        ],
    )
    def test_impossible_requests_are_refused_as_invalid(
        self, changes: dict[str, int | bool], words: str
    ) -> None:
        req = Request(**{"regions": ("ca-qc-1",), "gpu_models": (), "gpu_count": 1, **changes})  # type: ignore[arg-type]
        refusal = refused(place([node("a")], req))
        assert refusal.reason == "invalid-request"
        assert words in refusal.detail


class TestWhyAndWhatWouldFit:
    def test_no_allowed_region_suggests_an_alternative_the_policy_allows(self) -> None:
        nodes = [node("se", region="se-north-1"), node("us", region="us-east-1")]
        req = Request(
            regions=("ca-qc-1",),
            gpu_models=(),
            gpu_count=2,
            alternative_regions=("se-north-1",),
        )
        refusal = refused(place(nodes, req))
        assert refusal.reason == "no-allowed-region"
        assert "ca-qc-1" in refusal.detail
        assert refusal.suggestions == ("region se-north-1 has room for 2 GPUs on H100",)

    def test_an_empty_allow_list_places_nowhere(self) -> None:
        refusal = refused(place([node("a")], Request(regions=(), gpu_models=(), gpu_count=1)))
        assert refusal.reason == "no-allowed-region"
        assert refusal.suggestions == ()

    def test_unknown_gpu_model_names_the_models_there_are(self) -> None:
        nodes = [node("h", model="H100"), node("l", model="L40S", free=(0,) * 8)]
        req = Request(regions=("ca-qc-1",), gpu_models=("A100",), gpu_count=1)
        refusal = refused(place(nodes, req))
        assert refusal.reason == "no-such-gpu-model"
        assert "H100, L40S" in refusal.detail
        assert refusal.suggestions == ("GPU model H100 has room for 1 GPU in ca-qc-1",)

    def test_all_nodes_in_maintenance(self) -> None:
        nodes = [node("a", schedulable=False), node("b", schedulable=False)]
        req = Request(regions=("ca-qc-1",), gpu_models=(), gpu_count=1)
        refusal = refused(place(nodes, req))
        assert refusal.reason == "no-schedulable-nodes"
        assert "maintenance" in refusal.detail

    def test_too_big_suggests_the_largest_request_that_fits(self) -> None:
        nodes = [node("a", free=(1000,) * 4 + (0,) * 4), node("b", free=(1000,) * 2 + (0,) * 6)]
        req = Request(regions=("ca-qc-1",), gpu_models=(), gpu_count=8)
        refusal = refused(place(nodes, req))
        assert refusal.reason == "insufficient-capacity"
        assert "the most on one node is 4" in refusal.detail
        assert refusal.suggestions[0] == "4 GPUs fits in ca-qc-1"

    def test_a_full_model_suggests_another_model_with_room(self) -> None:
        nodes = [node("h", model="H100", free=(0,) * 8), node("l", model="L40S")]
        req = Request(regions=("ca-qc-1",), gpu_models=("H100",), gpu_count=4)
        refusal = refused(place(nodes, req))
        assert refusal.reason == "insufficient-capacity"
        assert "GPU model L40S has room for 4 GPUs in ca-qc-1" in refusal.suggestions

    def test_a_share_too_big_for_every_gap_suggests_the_largest_that_fits(self) -> None:
        nodes = [node("a", free=(300, 0))]
        req = Request(regions=("ca-qc-1",), gpu_models=(), gpu_count=1, gpu_milli=500)
        refusal = refused(place(nodes, req))
        assert "no GPU has 500/1000 free" in refusal.detail
        assert "a share of at most 300/1000 of a GPU fits" in refusal.suggestions

    def test_cpu_shortage_is_named(self) -> None:
        nodes = [node("a", cpu=1000)]
        req = Request(regions=("ca-qc-1",), gpu_models=(), gpu_count=1, cpu_milli=2000)
        refusal = refused(place(nodes, req))
        assert "lack the CPU or memory" in refusal.detail

    def test_bare_metal_on_a_busy_cluster_suggests_a_shared_node(self) -> None:
        nodes = [node("a", free=(1000,) * 7 + (0,))]
        req = Request(regions=("ca-qc-1",), gpu_models=(), gpu_count=4, whole_node=True)
        refusal = refused(place(nodes, req))
        assert "entirely free" in refusal.detail
        assert refusal.suggestions[0].endswith("on a shared node fits in ca-qc-1")

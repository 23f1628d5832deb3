"""What a tenant or operator notices about where requests land."""

from __future__ import annotations

import pytest

from control_plane.placement import Placement, Pool, Refusal, Request, place
from tests.unit.placement.nodes import node, two_domains


def request(**kw: object) -> Request:
    base: dict[str, object] = {"regions": ("ca-qc-1",), "gpu_models": (), "gpu_count": 1}
    return Request(**{**base, **kw})  # type: ignore[arg-type]


def placed(result: Placement | Refusal) -> Placement:
    assert isinstance(result, Placement), result
    return result


def gpus_of(p: Placement, node_id: str) -> list[int]:
    return sorted(s.gpu_index for s in p.slots if s.node_id == node_id)


class TestRegionsAndModels:
    def test_first_allowed_region_with_room_wins(self) -> None:
        nodes = [node("qc", region="ca-qc-1"), node("se", region="se-north-1")]
        p = placed(place(nodes, request(regions=("se-north-1", "ca-qc-1"))))
        assert (p.region, p.node_ids) == ("se-north-1", ("se",))

    def test_falls_back_to_the_next_allowed_region_when_the_first_is_full(self) -> None:
        nodes = [node("qc", region="ca-qc-1", free=(0,) * 8), node("se", region="se-north-1")]
        p = placed(place(nodes, request(regions=("ca-qc-1", "se-north-1"))))
        assert p.node_ids == ("se",)

    def test_never_places_outside_the_allowed_regions(self) -> None:
        nodes = [node("de", region="de-fra-1")]
        result = place(nodes, request(regions=("ca-qc-1",)))
        assert isinstance(result, Refusal)
        assert result.reason == "no-allowed-region"

    def test_only_the_requested_gpu_model(self) -> None:
        nodes = [node("h", model="H100"), node("l", model="L40S")]
        p = placed(place(nodes, request(gpu_models=("L40S",))))
        assert (p.gpu_model, p.node_ids) == ("L40S", ("l",))

    def test_nodes_in_maintenance_or_draining_are_skipped(self) -> None:
        nodes = [node("draining", schedulable=False), node("ok")]
        assert placed(place(nodes, request(gpu_count=8))).node_ids == ("ok",)

    def test_cpu_and_memory_must_fit(self) -> None:
        nodes = [node("small-cpu", cpu=4000), node("small-mem", memory=1024), node("big")]
        p = placed(place(nodes, request(cpu_milli=8000, memory_mib=4096)))
        assert p.node_ids == ("big",)
        assert (p.cpu_milli, p.memory_mib) == (8000, 4096)


class TestOneNodeAndNvlink:
    def test_all_gpus_of_a_request_on_one_node(self) -> None:
        nodes = [node("a", free=(1000, 1000, 0, 0)), node("b", free=(1000, 1000, 0, 0))]
        result = place(nodes, request(gpu_count=4))
        assert isinstance(result, Refusal)
        assert result.reason == "insufficient-capacity"

    def test_gpus_stay_in_one_nvlink_domain_when_they_fit(self) -> None:
        # domain a: GPU 0 taken, 1-3 free; domain b: GPU 4 taken, 5-7 free.
        n = node("n", free=(0, 1000, 1000, 1000, 0, 1000, 1000, 1000), domains=two_domains())
        p = placed(place([n], request(gpu_count=3)))
        assert gpus_of(p, "n") in ([1, 2, 3], [5, 6, 7])

    def test_a_node_whose_domain_holds_the_request_beats_an_earlier_split_one(self) -> None:
        split = node("split", free=(1000, 1000, 0, 0, 1000, 1000, 0, 0), domains=two_domains())
        whole = node("whole", free=(0, 0, 0, 0, 1000, 1000, 1000, 1000), domains=two_domains())
        p = placed(place([split, whole], request(gpu_count=4)))
        assert p.node_ids == ("whole",)
        assert gpus_of(p, "whole") == [4, 5, 6, 7]

    def test_spans_domains_when_no_domain_can_hold_the_request(self) -> None:
        split = node("split", free=(1000, 1000, 0, 0, 1000, 1000, 0, 0), domains=two_domains())
        p = placed(place([split], request(gpu_count=4)))
        assert gpus_of(p, "split") == [0, 1, 4, 5]

    def test_the_tightest_domain_is_used_so_a_full_domain_stays_whole(self) -> None:
        n = node("n", free=(1000, 1000, 0, 0, 1000, 1000, 1000, 1000), domains=two_domains())
        p = placed(place([n], request(gpu_count=2)))
        assert gpus_of(p, "n") == [0, 1]


class TestMultiNode:
    def test_multi_node_requests_stay_on_one_rack(self) -> None:
        nodes = [node("r1-a", rack="r1"), node("r2-a", rack="r2"), node("r2-b", rack="r2")]
        p = placed(place(nodes, request(gpu_count=8, node_count=2)))
        assert set(p.node_ids) == {"r2-a", "r2-b"}
        assert len(p.slots) == 16

    def test_a_fabric_groups_racks(self) -> None:
        nodes = [
            node("a", rack="r1", fabric="ib-1"),
            node("b", rack="r2", fabric="ib-1"),
            node("c", rack="r3", fabric="ib-2"),
        ]
        p = placed(place(nodes, request(gpu_count=8, node_count=2)))
        assert set(p.node_ids) == {"a", "b"}

    def test_refused_when_no_rack_holds_all_nodes(self) -> None:
        nodes = [node("a", rack="r1"), node("b", rack="r2")]
        result = place(nodes, request(gpu_count=8, node_count=2))
        assert isinstance(result, Refusal)
        assert result.reason == "insufficient-capacity"
        assert "8 GPUs fits in ca-qc-1" in result.suggestions

    def test_the_rack_with_fewest_spare_nodes_is_filled_first(self) -> None:
        nodes = [node(f"big-{i}", rack="big") for i in range(4)]
        nodes += [node(f"small-{i}", rack="small") for i in range(2)]
        p = placed(place(nodes, request(gpu_count=8, node_count=2)))
        assert set(p.node_ids) == {"small-0", "small-1"}


class TestWholeNode:
    def test_bare_metal_takes_an_entirely_free_node_whole(self) -> None:
        nodes = [node("used", free=(1000,) * 7 + (500,)), node("free")]
        p = placed(place(nodes, request(gpu_count=8, whole_node=True)))
        assert p.node_ids == ("free",)
        assert p.whole_node
        assert gpus_of(p, "free") == list(range(8))

    def test_the_smallest_node_big_enough_is_taken(self) -> None:
        nodes = [node("eight", gpus=8), node("four", gpus=4)]
        p = placed(place(nodes, request(gpu_count=4, whole_node=True)))
        assert p.node_ids == ("four",)

    def test_nothing_else_lands_on_a_node_taken_whole(self) -> None:
        pool = Pool([node("n", gpus=8)])
        pool.commit(placed(pool.place(request(gpu_count=8, whole_node=True))))
        for later in (request(gpu_count=0, cpu_milli=1), request(gpu_milli=100)):
            assert isinstance(pool.place(later), Refusal)


class TestFractional:
    def test_shares_of_one_gpu_in_thousandths(self) -> None:
        pool = Pool([node("n", gpus=2)])
        first = placed(pool.place(request(gpu_milli=500)))
        pool.commit(first)
        second = placed(pool.place(request(gpu_milli=500)))
        assert first.slots[0].milli == 500
        assert second.slots[0].gpu_index == first.slots[0].gpu_index  # fills the same GPU

    def test_a_share_goes_into_the_gap_it_fits_best(self) -> None:
        n = node("n", free=(1000, 300, 1000, 700))
        p = placed(place([n], request(gpu_milli=250)))
        assert p.slots[0].gpu_index == 1

    def test_a_share_larger_than_any_gap_takes_a_free_gpu(self) -> None:
        n = node("n", free=(300, 1000))
        assert placed(place([n], request(gpu_milli=400))).slots[0].gpu_index == 1


class TestFragmentation:
    def test_small_requests_go_to_used_nodes_so_empty_ones_stay_whole(self) -> None:
        nodes = [node("empty"), node("used", free=(0, 0, 0, 0, 1000, 1000, 1000, 1000))]
        p = placed(place(nodes, request()))
        assert p.node_ids == ("used",)

    def test_a_stream_of_small_requests_leaves_room_for_a_full_node(self) -> None:
        pool = Pool([node(f"n{i}") for i in range(4)])
        for milli in (500, 1000, 250, 1000, 500, 1000, 250, 1000) * 2:
            pool.commit(placed(pool.place(request(gpu_milli=milli))))
        assert isinstance(pool.place(request(gpu_count=8)), Placement)
        assert isinstance(pool.place(request(gpu_count=8, node_count=2)), Placement)


class TestPolicies:
    @pytest.mark.parametrize(
        "name", ["random", "best_fit", "dot_product", "clustering", "packing", "fgd", "ours"]
    )
    def test_every_policy_places_within_the_rules(self, name: str) -> None:
        nodes = [node("a", region="r2"), node("b", free=(0,) * 7 + (1000,)), node("c")]
        p = placed(place(nodes, request(gpu_count=2, cpu_milli=1000), name))
        assert p.region == "ca-qc-1"
        assert p.node_ids == ("c",)  # b has one free GPU, a is elsewhere

    def test_an_unknown_policy_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="unknown placement policy"):
            Pool([node("a")], "tetris")

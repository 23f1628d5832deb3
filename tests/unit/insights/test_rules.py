"""The waste rules on hand-built features: each fires on its case, not on its look-alike."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from control_plane.insights.features import Alternative, GpuFeatures, Thresholds
from control_plane.insights.findings import ActionKind, Finding, Rule
from control_plane.insights.rules import evaluate, evaluate_endpoint, evaluate_tenancy

from .factories import HOURS, endpoint, gpu, hours_ago, idle_gpu, tenancy

TH = Thresholds()


def rules_of(findings: list[Finding]) -> list[Rule]:
    return [f.rule for f in findings]


def only(findings: list[Finding], rule: Rule) -> Finding:
    assert rules_of(findings) == [rule]
    return findings[0]


class TestEmptyLease:
    def test_nothing_running_for_the_window_is_released(self) -> None:
        gpus = tuple(idle_gpu(i, proc_max=0, mem_max_mib=300) for i in range(4))

        f = only(evaluate_tenancy(tenancy(gpus), TH), Rule.EMPTY_LEASE)

        assert f.action.kind is ActionKind.RELEASE
        assert f.monthly_savings == Decimal("13140.00")  # 4 x 4.50 x 730
        assert f.energy_kwh_month == Decimal("280.3")  # 4 x 80 W x 730 h x 1.2
        assert f.co2e_kg_month == Decimal("8.4")  # 280.32 kWh x 30 g
        assert f.title == "Nothing running on 4 x H100-80GB for 14 days"
        assert f.wasted_gpu_hours == 4 * HOURS

    def test_a_held_process_is_not_an_empty_lease(self) -> None:
        gpus = (idle_gpu(0, proc_max=0, mem_max_mib=300), idle_gpu(1))

        assert Rule.EMPTY_LEASE not in rules_of(evaluate_tenancy(tenancy(gpus), TH))

    def test_under_min_hours_of_telemetry_there_is_no_finding(self) -> None:
        gpus = (idle_gpu(0, proc_max=0, mem_max_mib=300, hours=TH.min_hours - 1),)

        assert evaluate_tenancy(tenancy(gpus), TH) == []


class TestIdleGpus:
    def test_idle_since_the_last_busy_hour_is_released(self) -> None:
        gpus = tuple(idle_gpu(i, busy_hours=100, last_busy_at=hours_ago(30)) for i in range(2))

        f = only(evaluate_tenancy(tenancy(gpus), TH), Rule.IDLE_GPUS)

        assert f.action.kind is ActionKind.RELEASE
        assert f.title == "2 x H100-80GB idle for 1 day 5 hours"  # since the busy hour ended
        assert f.monthly_savings == Decimal("6570.00")
        assert f.energy_kwh_month == Decimal("140.2")
        assert f.co2e_kg_month == Decimal("4.2")
        assert f.wasted_gpu_hours == 58.0
        assert f.evidence["idle_for_hours"] == 29.0

    def test_busy_recently_after_long_gaps_is_not_idle(self) -> None:
        gpus = (idle_gpu(0, busy_hours=40, last_busy_at=hours_ago(10)), idle_gpu(1))

        assert Rule.IDLE_GPUS not in rules_of(evaluate_tenancy(tenancy(gpus), TH))

    def test_a_steady_light_load_is_not_idle(self) -> None:
        gpus = (idle_gpu(0, idle_hours=0, util_p95_max=15.0, util_mean=10.0),)

        assert Rule.IDLE_GPUS not in rules_of(evaluate_tenancy(tenancy(gpus), TH))

    def test_an_idle_tenancy_gets_no_other_finding(self) -> None:
        gpus = tuple(idle_gpu(i, mem_max_mib=4000) for i in range(4))  # an L4 would fit, too

        only(evaluate_tenancy(tenancy(gpus), TH), Rule.IDLE_GPUS)


def k_of_n(k: int, n: int) -> tuple[GpuFeatures, ...]:
    return tuple(gpu(i) for i in range(k)) + tuple(
        gpu(i, busy_hours=7, power_mean_w=90.0, mem_max_mib=2000) for i in range(k, n)
    )


class TestUnderusedMultiGpu:
    def test_k_of_n_busy_shrinks_to_k(self) -> None:
        f = only(evaluate_tenancy(tenancy(k_of_n(3, 8)), TH), Rule.UNDERUSED_MULTI_GPU)

        assert f.action.kind is ActionKind.RESIZE
        assert f.action.params == {
            "gpu_model": "H100-80GB",
            "gpu_milli": 1000,
            "gpus_per_node": 3,
            "node_count": 1,
        }
        assert f.title == "3 of 8 GPUs busy over 14 days: shrink to 3"
        assert f.monthly_savings == Decimal("16425.00")  # 5 x 4.50 x 730
        assert f.energy_kwh_month == Decimal("394.2")  # the 5 removed GPUs' 90 W each
        assert f.co2e_kg_month == Decimal("11.8")

    def test_nodes_keep_their_count_and_shrink_evenly(self) -> None:
        t = tenancy(k_of_n(3, 8), gpus_per_node=4, node_count=2)

        f = only(evaluate_tenancy(t, TH), Rule.UNDERUSED_MULTI_GPU)

        assert (f.action.params["gpus_per_node"], f.action.params["node_count"]) == (2, 2)
        assert f.monthly_savings == Decimal("13140.00")  # 4 removed

    def test_no_finding_when_even_nodes_cannot_shrink(self) -> None:
        t = tenancy(k_of_n(7, 8), gpus_per_node=4, node_count=2)

        assert evaluate_tenancy(t, TH) == []

    def test_a_weaker_gpu_above_the_busy_share_counts_as_used(self) -> None:
        gpus = (gpu(0), gpu(1), gpu(2), gpu(3, busy_hours=50))  # 15% of hours

        assert evaluate_tenancy(tenancy(gpus), TH) == []

    def test_gpus_without_telemetry_are_not_counted_as_unused(self) -> None:
        t = tenancy(k_of_n(3, 3), gpus_per_node=8)

        assert evaluate_tenancy(t, TH) == []

    def test_bare_metal_is_not_resized(self) -> None:
        t = tenancy(k_of_n(3, 8), kind="bare_metal", resizable=False)

        assert evaluate_tenancy(t, TH) == []


class TestOversizedGpu:
    def test_the_cheapest_card_whose_compute_carries_the_load_wins(self) -> None:
        # An L4 holds 9 GiB but has a tenth of an H100's power budget: 30% of an H100 would
        # be 290% of it. Half an H100 carries it at 60%.
        light = gpu(mem_max_mib=9318, busy_util_p95_mean=30.0, power_mean_w=200.0)

        f = only(evaluate_tenancy(tenancy((light,)), TH), Rule.OVERSIZED_GPU)

        assert f.title == "Peak memory 9.1 GiB of 80 GiB, busy p95 30%: 0.5 H100-80GB fits"
        assert f.action.params == {
            "gpu_model": "H100-80GB",
            "gpu_milli": 500,
            "gpus_per_node": 1,
            "node_count": 1,
        }
        assert f.monthly_savings == Decimal("1642.50")  # (4.50 - 2.25) x 730
        # 200 W x (1 - 350 / 700) x 730 h x 1.2 = 87.6 kWh
        assert f.energy_kwh_month == Decimal("87.6")
        assert f.co2e_kg_month == Decimal("2.6")

    def test_a_light_job_does_not_move_to_a_card_it_would_overrun(self) -> None:
        light = gpu(mem_max_mib=9318, busy_util_p95_mean=30.0)
        l4 = Alternative("L4", 1000, 24576, Decimal("0.70"), 72)
        t = tenancy((light,), gpu_model="L40S", hourly_price=Decimal("1.60"), tdp_watts=350,
                    alternatives=(l4,))  # fmt: skip

        assert evaluate_tenancy(t, TH) == []

    def test_a_slice_when_the_smaller_card_lacks_headroom(self) -> None:
        light = gpu(mem_max_mib=25000, busy_util_p95_mean=30.0)

        f = only(evaluate_tenancy(tenancy((light,)), TH), Rule.OVERSIZED_GPU)

        assert (f.action.params["gpu_model"], f.action.params["gpu_milli"]) == ("H100-80GB", 500)
        assert f.monthly_savings == Decimal("1642.50")  # (4.50 - 2.25) x 730

    def test_low_sm_but_most_memory_used_is_not_oversized(self) -> None:
        heavy = gpu(mem_max_mib=70000, busy_util_p95_mean=30.0)  # over 80% of an A100

        assert evaluate_tenancy(tenancy((heavy,)), TH) == []

    def test_small_memory_but_hot_is_not_oversized(self) -> None:
        hot = gpu(mem_max_mib=9318, busy_util_p95_mean=85.0)

        assert evaluate_tenancy(tenancy((hot,)), TH) == []

    def test_no_cheaper_alternative_no_finding(self) -> None:
        light = gpu(mem_max_mib=4000, busy_util_p95_mean=30.0)
        t = tenancy((light,), gpu_model="L4", hourly_price=Decimal("0.70"))

        assert evaluate_tenancy(t, TH) == []

    def test_with_a_shrink_it_prices_only_the_gpus_kept(self) -> None:
        busy = [gpu(i, mem_max_mib=9000, busy_util_p95_mean=30.0) for i in range(2)]
        spare = [gpu(i, busy_hours=3, mem_max_mib=1000, busy_util_p95_mean=30.0) for i in (2, 3)]

        shrink, smaller = evaluate_tenancy(tenancy((*busy, *spare)), TH)

        assert (shrink.rule, smaller.rule) == (Rule.UNDERUSED_MULTI_GPU, Rule.OVERSIZED_GPU)
        assert shrink.monthly_savings == Decimal("6570.00")  # 2 x 4.50 x 730
        # Two GPUs kept: no slices (a share is for one GPU), an L4 lacks the compute.
        assert smaller.monthly_savings == Decimal("2482.00")  # 2 x (4.50 - 2.80) x 730
        assert smaller.action.params["gpus_per_node"] == 2
        assert smaller.action.params["gpu_model"] == "A100-80GB"
        # together: 4 H100 now, 2 A100 after
        before, after = 4 * Decimal("4.50") * 730, 2 * Decimal("2.80") * 730
        assert shrink.monthly_savings + smaller.monthly_savings == before - after


def day_job(**changes: Any) -> GpuFeatures:
    base = {
        "night_idle_hours": 120,
        "day_busy_hours": 150,
        "busy_hours": 150,
        "power_mean_w": 100.0,
    }
    return gpu(**(base | changes))


class TestNightIdle:
    def test_idle_nights_busy_days_release_when_idle(self) -> None:
        f = only(evaluate_tenancy(tenancy((day_job(),)), TH), Rule.NIGHT_IDLE)

        assert f.action.kind is ActionKind.SCHEDULE
        assert f.action.params == {"idle_release_minutes": 60}
        assert f.monthly_savings == Decimal("1231.88")  # 4.50 x 730 x 9/24 = 1231.875
        assert f.energy_kwh_month == Decimal("32.8")  # 100 W x 273.75 h x 1.2 = 32.85
        assert f.co2e_kg_month == Decimal("1.0")
        assert f.wasted_gpu_hours == 120.0

    def test_busy_on_some_nights_is_not_night_idle(self) -> None:
        assert evaluate_tenancy(tenancy((day_job(night_idle_hours=80),)), TH) == []

    def test_idle_all_day_too_is_not_night_idle(self) -> None:
        assert evaluate_tenancy(tenancy((day_job(day_busy_hours=30),)), TH) == []

    def test_fewer_than_three_nights_is_not_enough(self) -> None:
        short = day_job(hours=60, night_hours=24, night_idle_hours=24, day_hours=36)

        assert evaluate_tenancy(tenancy((short,)), TH) == []

    def test_after_a_cheaper_card_nights_are_priced_on_it(self) -> None:
        light = day_job(mem_max_mib=9000, busy_util_p95_mean=30.0)

        smaller, nights = evaluate_tenancy(tenancy((light,)), TH)

        assert (smaller.rule, nights.rule) == (Rule.OVERSIZED_GPU, Rule.NIGHT_IDLE)
        assert nights.monthly_savings == Decimal("615.94")  # 2.25 (half an H100) x 273.75


class TestEndpoints:
    def test_no_tokens_for_a_day_scales_to_zero(self) -> None:
        e = endpoint(last_token_at=hours_ago(48), max_replicas=4)

        f = only(evaluate_endpoint(e, TH), Rule.IDLE_ENDPOINT)

        assert f.action.kind is ActionKind.SCALE
        assert f.action.params == {"min_replicas": 0, "max_replicas": 4}
        assert f.monthly_savings == Decimal("3504.00")  # 3 x 1.60 x 730
        assert f.energy_kwh_month == Decimal("394.2")
        assert f.co2e_kg_month == Decimal("11.8")
        assert f.title == "No tokens for 1 day 23 hours on 3 replicas: scale to zero"

    def test_quiet_for_20_hours_is_not_idle(self) -> None:
        assert evaluate_endpoint(endpoint(last_token_at=hours_ago(20)), TH) == []

    def test_never_a_token_is_idle(self) -> None:
        only(evaluate_endpoint(endpoint(last_token_at=None), TH), Rule.IDLE_ENDPOINT)

    def test_scaled_to_zero_already_is_quiet(self) -> None:
        e = endpoint(last_token_at=None, replicas=0, min_replicas=0)

        assert evaluate_endpoint(e, TH) == []

    @pytest.mark.parametrize(
        ("peak", "needed"), [(1500.0, 3), (1400.0, 2), (1400.01, 3), (10.0, 1)]
    )
    def test_fixed_size_scales_to_the_replicas_its_peak_needs(
        self, peak: float, needed: int
    ) -> None:
        e = endpoint(replicas=6, min_replicas=6, max_replicas=6, peak_tokens_per_s=peak)

        f = only(evaluate_endpoint(e, TH), Rule.OVER_REPLICATED_ENDPOINT)

        assert f.action.params == {"min_replicas": needed, "max_replicas": needed}
        assert f.monthly_savings == Decimal("1.60") * (6 - needed) * 730
        assert f.evidence["needed_replicas"] == needed

    def test_autoscaled_lowers_its_minimum_and_keeps_its_maximum(self) -> None:
        e = endpoint(replicas=6, min_replicas=6, max_replicas=8, peak_tokens_per_s=1500.0)

        f = only(evaluate_endpoint(e, TH), Rule.OVER_REPLICATED_ENDPOINT)

        assert f.action.params == {"min_replicas": 3, "max_replicas": 8}

    def test_rare_peaks_that_need_every_replica_keep_them(self) -> None:
        e = endpoint(replicas=6, peak_tokens_per_s=4000.0, mean_tokens_per_s=300.0)

        assert evaluate_endpoint(e, TH) == []

    def test_idle_supersedes_over_replicated(self) -> None:
        e = endpoint(replicas=6, peak_tokens_per_s=1500.0, last_token_at=hours_ago(48))

        only(evaluate_endpoint(e, TH), Rule.IDLE_ENDPOINT)

    def test_under_min_hours_no_finding(self) -> None:
        assert evaluate_endpoint(endpoint(hours=20, last_token_at=None), TH) == []


class TestEvaluate:
    def test_endpoint_replicas_are_left_to_the_endpoint_rules(self) -> None:
        replica = tenancy((idle_gpu(),), endpoint_id="ep-1")
        e = endpoint(last_token_at=None)

        assert rules_of(evaluate([replica], [e], TH)) == [Rule.IDLE_ENDPOINT]

    def test_findings_are_json_safe_and_confidence_grows_with_evidence(self) -> None:
        short = tuple(idle_gpu(i, hours=48, idle_hours=48) for i in range(2))
        long = tuple(idle_gpu(i) for i in range(2))
        findings = evaluate(
            [tenancy(short), tenancy(long, tenancy_id="t-2"), tenancy(k_of_n(3, 8))],
            [endpoint(last_token_at=None), endpoint(replicas=6, peak_tokens_per_s=10.0)],
            TH,
        )

        assert len(findings) == 5
        for f in findings:
            json.dumps(f.evidence)
            assert 0.0 <= f.confidence <= 1.0
            assert f.monthly_savings == f.monthly_savings.quantize(Decimal("0.01"))
        assert findings[0].confidence < findings[1].confidence

    def test_thresholds_are_honoured(self) -> None:
        gpus = tuple(idle_gpu(i, busy_hours=100, last_busy_at=hours_ago(30)) for i in range(2))

        findings = evaluate_tenancy(tenancy(gpus), replace(TH, idle_hours=48))

        assert Rule.IDLE_GPUS not in rules_of(findings)

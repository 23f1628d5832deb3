"""Refusals: why a request cannot be placed, and what would fit instead."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from control_plane.placement.model import FULL_GPU, Refusal, Request

if TYPE_CHECKING:
    from control_plane.placement.pool import Pool, _Node

__all__ = ["describe", "explain_refusal", "invalid_reason"]

_MAX_SUGGESTIONS = 6


def invalid_reason(req: Request) -> str | None:
    """What is wrong with a request that could never be placed anywhere, or None."""
    checks = (
        (req.gpu_count < 0, "gpu_count must be 0 or more"),
        (req.node_count < 1, "node_count must be 1 or more"),
        (not 1 <= req.gpu_milli <= FULL_GPU, "gpu_milli must be within 1..1000"),
        (
            req.gpu_milli < FULL_GPU and req.gpu_count != 1,
            "a share of a GPU (gpu_milli < 1000) is for exactly one GPU (gpu_count = 1)",
        ),
        (req.whole_node and req.gpu_milli < FULL_GPU, "a whole node cannot take a GPU share"),
        (req.cpu_milli < 0 or req.memory_mib < 0, "cpu_milli and memory_mib must be 0 or more"),
    )
    return next((message for failed, message in checks if failed), None)


def describe(req: Request) -> str:
    """A request in words: "2 nodes x 8 GPUs", "a 250/1000 share of one GPU" ..."""
    if req.whole_node:
        what = f"a whole node with at least {req.gpu_count} GPUs"
        return what if req.node_count == 1 else f"{req.node_count} whole nodes ({what[2:]})"
    if req.gpu_count == 0:
        per = "CPU only"
    elif req.is_share:
        per = f"a {req.gpu_milli}/1000 share of one GPU"
    else:
        per = f"{req.gpu_count} GPU{'s' if req.gpu_count > 1 else ''}"
    if req.node_count > 1:
        return f"{req.node_count} nodes x {per}"
    return per


def explain_refusal(pool: Pool, req: Request) -> Refusal:
    """The refusal for a request ``pool.find`` could not place."""
    regions = list(dict.fromkeys(req.regions))
    where = ", ".join(regions) or "(none)"
    elsewhere = _other_regions(pool, req)
    nodes = list(pool.nodes_in(regions))
    if not nodes:
        detail = f"no nodes in the allowed region(s) {where}"  # or none allowed at all
        return Refusal("no-allowed-region", detail, _cap(elsewhere))
    present = sorted({n.model for n in nodes})
    if req.gpu_models and not set(req.gpu_models) & set(present):
        wanted = "/".join(req.gpu_models)
        detail = f"no {wanted} GPUs in {where}; there are {', '.join(present)}"
        return Refusal("no-such-gpu-model", detail, _cap(_other_models(pool, req) + elsewhere))
    matching = [n for n in nodes if not req.gpu_models or n.model in req.gpu_models]
    if not any(n.schedulable for n in matching):
        detail = (
            f"all {len(matching)} matching node(s) in {where} are in maintenance, draining "
            "or offline"
        )
        return Refusal("no-schedulable-nodes", detail, _cap(_other_models(pool, req) + elsewhere))
    usable = [n for n in matching if n.schedulable and not n.whole]
    free_gpus = sum(sum(f >= FULL_GPU for f in n.free) for n in usable)
    total = sum(len(n.free) for n in matching)
    detail = (
        f"no room for {describe(req)} in {where}: {_why(pool, req, usable)}; "
        f"{free_gpus} of {total} matching GPUs are entirely free"
    )
    suggestions = _smaller(pool, req) + _other_models(pool, req) + elsewhere
    return Refusal("insufficient-capacity", detail, _cap(suggestions))


def _why(pool: Pool, req: Request, usable: list[_Node]) -> str:
    """What is missing, in words."""
    if (req.cpu_milli or req.memory_mib) and pool.find(
        replace(req, cpu_milli=0, memory_mib=0)
    ) is not None:
        return "the nodes with free GPUs lack the CPU or memory asked for"
    most = max((sum(f >= FULL_GPU for f in n.free) for n in usable), default=0)
    if req.gpu_count == 0:
        return "no node has that much CPU and memory left"
    if req.whole_node:
        return "no node big enough is entirely free"
    if req.is_share:
        return f"no GPU has {req.gpu_milli}/1000 free"
    if req.node_count > 1:
        return f"no rack or fabric has {req.node_count} nodes with {req.gpu_count} free GPUs each"
    return f"no node has {req.gpu_count} free GPUs, the most on one node is {most}"


def _cap(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))[:_MAX_SUGGESTIONS]


def _other_regions(pool: Pool, req: Request) -> list[str]:
    """Regions the policy allows that the caller did not ask for, where it fits."""
    out = []
    for region in dict.fromkeys(req.alternative_regions):
        if region in req.regions:
            continue
        found = pool.find(replace(req, regions=(region,)))
        if found is not None:
            out.append(f"region {region} has room for {describe(req)} on {found.gpu_model}")
    return out


def _other_models(pool: Pool, req: Request) -> list[str]:
    """GPU models, in the allowed regions, with room for the same request."""
    if not req.gpu_models:
        return []
    models = {n.model for n in pool.nodes_in(req.regions)} - set(req.gpu_models)
    out = []
    for model in sorted(models):
        found = pool.find(replace(req, gpu_models=(model,)))
        if found is not None:
            out.append(f"GPU model {model} has room for {describe(req)} in {found.region}")
    return out


def _smaller(pool: Pool, req: Request) -> list[str]:
    """The largest smaller request of the same kind that fits now."""
    out = []
    if req.whole_node:
        shared = replace(req, whole_node=False)
        found = pool.find(shared)
        if found is not None:
            out.append(f"{describe(shared)} on a shared node fits in {found.region}")
    for n in range(req.node_count - 1, 0, -1):
        smaller = replace(req, node_count=n)
        found = pool.find(smaller)
        if found is not None:
            out.append(f"{describe(smaller)} fits in {found.region}")
            break
    if not req.is_share and not req.whole_node:
        for k in range(req.gpu_count - 1, 0, -1):
            smaller = replace(req, gpu_count=k)
            found = pool.find(smaller)
            if found is not None:
                out.append(f"{describe(smaller)} fits in {found.region}")
                break
    if req.is_share:
        best = max(
            (
                max(n.free, default=0)
                for n in pool.nodes_in(req.regions)
                if n.schedulable
                and not n.whole
                and (not req.gpu_models or n.model in req.gpu_models)
            ),
            default=0,
        )
        if 0 < best < req.gpu_milli and pool.find(replace(req, gpu_milli=best)) is not None:
            out.append(f"a share of at most {best}/1000 of a GPU fits")
    return out

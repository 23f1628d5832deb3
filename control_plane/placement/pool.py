"""The pool: nodes and what is free on them, for fast repeated placement decisions.

Nodes in exactly the same state (region, GPU model, CPU, memory, free milli of each GPU
up to their order, NVLink layout) are kept in one *bucket*, so a decision scores each
distinct state once, not each node; the first node of the best bucket (in the order the
nodes were given) wins ties. Scores that cost more than a lookup are memoized by
(state, request).
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from typing import Any

from control_plane.placement.explain import explain_refusal, invalid_reason
from control_plane.placement.model import (
    FULL_GPU,
    GpuFree,
    NodeState,
    Placement,
    Refusal,
    Request,
    Slot,
)
from control_plane.placement.policies import NodeView, Policy, make_policy
from control_plane.placement.workload import Workload

__all__ = ["Pool"]

_MEMO_LIMIT = 200_000
_NO_TAGS: frozenset[str] = frozenset()
_BucketKey = tuple[Any, ...]


class _Node:
    __slots__ = (
        "cpu",
        "domains",
        "fabric",
        "free",
        "id",
        "indices",
        "mem",
        "model",
        "pos",
        "rack",
        "region",
        "schedulable",
        "tags",
        "whole",
    )

    def __init__(self, pos: int, state: NodeState) -> None:
        gpus = sorted(state.gpus, key=lambda g: g.index)
        self.pos = pos
        self.id = state.id
        self.region = state.region
        self.rack = state.rack
        self.fabric = state.fabric if state.fabric is not None else f"rack:{state.rack}"
        self.model = state.gpu_model
        self.indices = tuple(g.index for g in gpus)
        self.domains = tuple(g.nvlink_domain for g in gpus)
        self.free = [g.free_milli for g in gpus]
        self.cpu = state.cpu_free_milli
        self.mem = state.memory_free_mib
        self.schedulable = state.schedulable
        self.whole = False
        self.tags: dict[str, int] = {}

    def domain_signature(self) -> tuple[tuple[int, ...], ...] | None:
        if not any(self.domains):
            return None
        by_domain: dict[str, list[int]] = {}
        for domain, free in zip(self.domains, self.free, strict=True):
            if domain is not None:
                by_domain.setdefault(domain, []).append(free)
        return tuple(sorted(tuple(sorted(v)) for v in by_domain.values()))

    def state(self) -> NodeState:
        return NodeState(
            id=self.id,
            region=self.region,
            rack=self.rack,
            gpu_model=self.model,
            gpus=tuple(
                GpuFree(i, f, d)
                for i, f, d in zip(self.indices, self.free, self.domains, strict=True)
            ),
            cpu_free_milli=self.cpu,
            memory_free_mib=self.mem,
            schedulable=self.schedulable,
            fabric=None if self.fabric.startswith("rack:") else self.fabric,
        )


class _Bucket:
    """Nodes of one group in one state; ``members`` are node positions, ascending."""

    __slots__ = ("cpu", "dom_full", "key", "max_free", "mem", "members", "n_full", "n_gpus", "view")

    def __init__(self, key: _BucketKey, node: _Node, view: NodeView) -> None:
        self.key = key
        self.view = view
        self.cpu = node.cpu
        self.mem = node.mem
        self.n_gpus = len(node.free)
        self.max_free = view.frees[-1] if view.frees else 0
        self.n_full = view.n_full
        signature = key[3]
        self.dom_full = (
            max((sum(f >= FULL_GPU for f in d) for d in signature), default=0) if (signature) else 0
        )
        self.members: list[int] = []


class Pool:
    """Nodes and their free resources; ``place`` decides, ``commit``/``release`` apply.

    ``policy`` is a policy object or a name from ``POLICY_NAMES`` (default ``ours``);
    ``workload`` is the target workload fragmentation is measured against."""

    def __init__(
        self,
        nodes: Sequence[NodeState],
        policy: Policy | str = "ours",
        *,
        workload: Workload | None = None,
        seed: int = 0,
    ) -> None:
        self.policy = make_policy(policy, workload, seed) if isinstance(policy, str) else policy
        self._nodes: list[_Node] = []
        self._by_id: dict[str, _Node] = {}
        self._where: dict[int, tuple[tuple[str, str], _BucketKey]] = {}
        self._groups: dict[tuple[str, str], dict[_BucketKey, _Bucket]] = {}
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._shapes: dict[tuple[Any, ...], tuple[tuple[int, ...], Any]] = {}
        for state in nodes:
            self._add(state)

    # ---- reading -------------------------------------------------------------------
    def nodes(self) -> tuple[NodeState, ...]:
        """Every node as it stands now, in the order given."""
        return tuple(n.state() for n in self._nodes)

    def regions(self) -> set[str]:
        return {n.region for n in self._nodes}

    def nodes_in(self, regions: Sequence[str]) -> Iterator[_Node]:
        wanted = set(regions)
        return (n for n in self._nodes if n.region in wanted)

    # ---- deciding ------------------------------------------------------------------
    def place(self, request: Request) -> Placement | Refusal:
        """Where ``request`` goes (nothing is taken until :meth:`commit`), or why not."""
        problem = invalid_reason(request)
        if problem is not None:
            return Refusal("invalid-request", problem)
        found = self.find(request)
        if found is not None:
            return found
        return explain_refusal(self, request)

    def find(self, request: Request) -> Placement | None:
        """The placement in the first allowed region with room, or None."""
        seen: set[str] = set()
        for region in request.regions:
            if region in seen:
                continue
            seen.add(region)
            if request.node_count == 1:
                found = self._place_single(request, region)
            else:
                found = self._place_multi(request, region)
            if found is not None:
                return found
        return None

    def _groups_for(
        self, region: str, models: Sequence[str]
    ) -> Iterator[dict[_BucketKey, _Bucket]]:
        if models:
            for model in dict.fromkeys(models):
                group = self._groups.get((region, model))
                if group:
                    yield group
        else:
            for (r, _), group in self._groups.items():
                if r == region and group:
                    yield group

    def _feasible(self, request: Request, region: str) -> Iterator[_Bucket]:
        cpu, mem = request.cpu_milli, request.memory_mib
        k, milli = request.gpu_count, request.gpu_milli
        for group in self._groups_for(region, request.gpu_models):
            for b in group.values():
                if b.cpu < cpu or b.mem < mem:
                    continue
                if request.whole_node:
                    if b.n_full == b.n_gpus and b.n_gpus >= max(k, 1):
                        yield b
                elif k == 0 or (b.max_free >= milli if milli < FULL_GPU else b.n_full >= k):
                    yield b

    def _score(self, b: _Bucket, request: Request) -> Any:
        if request.whole_node:
            return -b.n_gpus  # the smallest node that is big enough
        policy = self.policy
        if not policy.memoize:
            return policy.score(b.view, request)
        v = b.view
        key = (
            v.cpu_free,
            v.frees,
            v.tags,
            v.model,
            request.cpu_milli,
            request.gpu_count,
            request.gpu_milli,
        )
        found = self._memo.get(key)
        if found is None:
            found = policy.score(v, request)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    def _rank(self, b: _Bucket, request: Request) -> tuple[bool, Any]:
        """NVLink first (all GPUs of the request in one domain, when that can be had),
        then the policy's score."""
        k = request.gpu_count
        in_domain = k < 2 or request.whole_node or b.dom_full >= k
        return (in_domain, self._score(b, request))

    def _place_single(self, request: Request, region: str) -> Placement | None:
        if self.policy.random_node and not request.whole_node:
            buckets = list(self._feasible(request, region))
            if not buckets:
                return None
            pick = self.policy.pick_node([len(b.members) for b in buckets])
            for b in buckets:
                if pick < len(b.members):
                    return self._build(request, region, [self._nodes[b.members[pick]]])
                pick -= len(b.members)
        best: _Bucket | None = None
        best_rank: Any = None
        for b in self._feasible(request, region):
            rank = self._rank(b, request)
            if (
                best is None
                or rank > best_rank
                or (rank == best_rank and b.members[0] < best.members[0])
            ):
                best, best_rank = b, rank
        if best is None:
            return None
        return self._build(request, region, [self._nodes[best.members[0]]])

    def _place_multi(self, request: Request, region: str) -> Placement | None:
        by_fabric: dict[tuple[str, str], list[tuple[Any, int]]] = {}
        for b in self._feasible(request, region):
            rank = self._rank(b, request)
            for pos in b.members:
                node = self._nodes[pos]
                by_fabric.setdefault((node.fabric, node.model), []).append((rank, pos))
        best: tuple[Any, ...] | None = None
        chosen: list[int] = []
        n = request.node_count
        for candidates in by_fabric.values():
            if len(candidates) < n:
                continue
            candidates.sort(key=lambda c: (_Desc(c[0]), c[1]))
            take = candidates[:n]
            # Fill the fabric with the fewest spare nodes (keep big fabrics whole), then
            # the best-scored nodes, then the first nodes.
            key = (len(candidates) - n, _Desc([c[0] for c in take]), take[0][1])
            if best is None or key < best:
                best, chosen = key, [pos for _, pos in take]
        if not chosen:
            return None
        return self._build(request, region, [self._nodes[pos] for pos in sorted(chosen)])

    def _build(self, request: Request, region: str, nodes: list[_Node]) -> Placement:
        slots: list[Slot] = []
        for node in nodes:
            for i in self._pick_gpus(node, request):
                milli = FULL_GPU if not request.is_share else request.gpu_milli
                slots.append(Slot(node.id, node.indices[i], milli))
        return Placement(
            region=region,
            gpu_model=nodes[0].model,
            slots=tuple(slots),
            node_ids=tuple(n.id for n in nodes),
            cpu_milli=request.cpu_milli,
            memory_mib=request.memory_mib,
            whole_node=request.whole_node,
        )

    def _pick_gpus(self, node: _Node, request: Request) -> list[int]:
        if request.whole_node:
            return list(range(len(node.free)))
        if request.gpu_count == 0:
            return []
        if request.is_share:
            view = self._view(node)
            return [self.policy.pick_share(node.free, view, request)]
        k = request.gpu_count
        full = [i for i, free in enumerate(node.free) if free >= FULL_GPU]
        if k >= 2 and any(node.domains):
            by_domain: dict[str, list[int]] = {}
            for i in full:
                domain = node.domains[i]
                if domain is not None:
                    by_domain.setdefault(domain, []).append(i)
            fitting = sorted((len(v), v[0], v) for v in by_domain.values() if len(v) >= k)
            if fitting:  # the tightest domain that holds the whole request
                return fitting[0][2][:k]
        return full[:k]

    # ---- applying ------------------------------------------------------------------
    def commit(self, placement: Placement) -> None:
        """Take what ``placement`` gives. Raises ValueError, changing nothing, when it no
        longer fits (another commit took the room first) or names unknown nodes/GPUs."""
        plan = self._plan(placement)
        for node, gpus in plan:
            if placement.whole_node and (node.whole or any(f < FULL_GPU for f in node.free)):
                raise ValueError(f"node {node.id} is no longer entirely free")
            if node.cpu < placement.cpu_milli or node.mem < placement.memory_mib:
                raise ValueError(f"node {node.id} has no longer the CPU or memory")
            for i, milli in gpus.items():
                if node.free[i] < milli:
                    raise ValueError(f"GPU {node.indices[i]} of node {node.id} is taken")
        for node, gpus in plan:
            node.cpu -= placement.cpu_milli
            node.mem -= placement.memory_mib
            for i, milli in gpus.items():
                node.free[i] -= milli
            node.whole = node.whole or placement.whole_node
            tag = _tag(gpus)
            if tag is not None:
                node.tags[tag] = node.tags.get(tag, 0) + 1
            self._reindex(node)

    def release(self, placement: Placement) -> None:
        """Give back what ``placement`` took. Raises ValueError, changing nothing, when it
        gives back more than was taken."""
        plan = self._plan(placement)
        for node, gpus in plan:
            if placement.whole_node and not node.whole:
                raise ValueError(f"node {node.id} is not taken whole")
            for i, milli in gpus.items():
                if node.free[i] + milli > FULL_GPU:
                    raise ValueError(f"GPU {node.indices[i]} of node {node.id} is not taken")
        for node, gpus in plan:
            node.cpu += placement.cpu_milli
            node.mem += placement.memory_mib
            for i, milli in gpus.items():
                node.free[i] += milli
            if placement.whole_node:
                node.whole = False
            tag = _tag(gpus)
            if tag is not None and node.tags.get(tag, 0) > 0:
                node.tags[tag] -= 1
                if not node.tags[tag]:
                    del node.tags[tag]
            self._reindex(node)

    def _plan(self, placement: Placement) -> list[tuple[_Node, dict[int, int]]]:
        plan: dict[str, tuple[_Node, dict[int, int]]] = {}
        for node_id in placement.node_ids:
            node = self._by_id.get(node_id)
            if node is None:
                raise ValueError(f"unknown node {node_id}")
            plan[node_id] = (node, {})
        for slot in placement.slots:
            if slot.node_id not in plan:
                raise ValueError(f"slot on node {slot.node_id} outside the placement")
            node, gpus = plan[slot.node_id]
            if slot.gpu_index not in node.indices:
                raise ValueError(f"node {node.id} has no GPU {slot.gpu_index}")
            i = node.indices.index(slot.gpu_index)
            gpus[i] = gpus.get(i, 0) + slot.milli
        return list(plan.values())

    # ---- the bucket index ----------------------------------------------------------
    def _add(self, state: NodeState) -> None:
        if state.id in self._by_id:
            raise ValueError(f"node {state.id} given twice")
        if len({g.index for g in state.gpus}) != len(state.gpus):
            raise ValueError(f"node {state.id} repeats a GPU index")
        for gpu in state.gpus:
            if not 0 <= gpu.free_milli <= FULL_GPU:
                raise ValueError(f"GPU {gpu.index} of node {state.id}: free_milli out of 0..1000")
        node = _Node(len(self._nodes), state)
        self._nodes.append(node)
        self._by_id[node.id] = node
        self._reindex(node)

    def _view(self, node: _Node) -> NodeView:
        tags = frozenset(node.tags) if self.policy.uses_tags else frozenset()
        return NodeView(node.cpu, node.mem, tuple(sorted(node.free)), tags, node.model)

    def _reindex(self, node: _Node) -> None:
        old = self._where.pop(node.pos, None)
        if old is not None:
            old_group = self._groups[old[0]]
            old_bucket = old_group[old[1]]
            del old_bucket.members[bisect_left(old_bucket.members, node.pos)]
            if not old_bucket.members:
                del old_group[old[1]]
        if not node.schedulable or node.whole:
            return
        shape = (tuple(node.free), node.domains)
        found = self._shapes.get(shape)
        if found is None:
            if len(self._shapes) >= _MEMO_LIMIT:
                self._shapes.clear()
            found = self._shapes[shape] = (tuple(sorted(node.free)), node.domain_signature())
        frees, signature = found
        tags = frozenset(node.tags) if self.policy.uses_tags and node.tags else _NO_TAGS
        key = (node.cpu, node.mem, frees, signature, tags)
        group_key = (node.region, node.model)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = {}
        bucket = group.get(key)
        if bucket is None:
            view = NodeView(node.cpu, node.mem, frees, tags, node.model)
            bucket = group[key] = _Bucket(key, node, view)
        insort(bucket.members, node.pos)
        self._where[node.pos] = (group_key, key)


def _tag(gpus: dict[int, int]) -> str | None:
    if not gpus:
        return None
    if len(gpus) == 1 and next(iter(gpus.values())) < FULL_GPU:
        return "share-gpu"
    return f"{len(gpus)}-gpu"


class _Desc:
    """Wraps a value so that sorting ascending orders it descending."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.value > other.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    def __hash__(self) -> int:
        return hash(self.value)

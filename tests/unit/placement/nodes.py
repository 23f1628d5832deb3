"""Small typed builders for placement tests."""

from __future__ import annotations

from control_plane.placement import GpuFree, NodeState

PLENTY = 1 << 40


def node(
    node_id: str,
    *,
    region: str = "ca-qc-1",
    rack: str = "r1",
    model: str = "H100",
    gpus: int = 8,
    free: tuple[int, ...] | None = None,
    domains: tuple[str | None, ...] | None = None,
    cpu: int = PLENTY,
    memory: int = PLENTY,
    schedulable: bool = True,
    fabric: str | None = None,
) -> NodeState:
    """A node with ``gpus`` GPUs, all free unless ``free`` says otherwise."""
    frees = free if free is not None else (1000,) * gpus
    doms = domains if domains is not None else (None,) * len(frees)
    return NodeState(
        id=node_id,
        region=region,
        rack=rack,
        gpu_model=model,
        gpus=tuple(GpuFree(i, f, d) for i, (f, d) in enumerate(zip(frees, doms, strict=True))),
        cpu_free_milli=cpu,
        memory_free_mib=memory,
        schedulable=schedulable,
        fabric=fabric,
    )


def two_domains(gpus: int = 8) -> tuple[str, ...]:
    """Half the GPUs in NVLink domain "a", half in "b"."""
    return tuple("a" if i < gpus // 2 else "b" for i in range(gpus))

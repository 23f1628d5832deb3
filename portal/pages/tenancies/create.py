"""The create form: a shape picker over the regions the residency policy allows, a custom
size, lease and access options, a developer workspace on Kubernetes, the shape suggestion,
and refusals explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.inventory.classes import class_code
from control_plane.inventory.schemas import GpuModelRead
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.tenancies import quotas, service, shapes
from control_plane.tenancies.drivers.sim import IMAGES
from control_plane.tenancies.schemas import (
    ANY_REGION,
    ShapeRead,
    ShapeSuggestion,
    TenancyCreate,
    WorkloadProfile,
)
from control_plane.tenancies.wiring import wake_reconciler
from portal.forms import FormState, convert, discard, read_form
from portal.pages.tenancies.common import (
    KIND_LABELS,
    LABELS,
    Filter,
    drivers_of,
    org_of,
    quota_rows,
)
from portal.templating import collect, render

_HINTS = {
    "name": "Use lower-case letters, digits and inner hyphens (at most 63 characters).",
    "kind": "Choose one of the listed kinds.",
    "region": "Choose one of the listed regions.",
    "shape": "Choose a shape, or a custom size.",
    "gpu_model": "Choose one of the listed GPU models.",
    "gpus_per_node": "Give a whole number from 1 to 64.",
    "node_count": "Give a whole number from 1 to 64.",
    "ends_at": "Give a date and time (UTC) at least 10 minutes from now.",
    "idle_release_minutes": "Give a whole number of minutes from 5 to 10080 (a week).",
    "image": "Use lower-case letters, digits and . _ : - (e.g. ubuntu-24.04).",
    "ssh_public_keys": "Paste OpenSSH public keys, one per line (ssh-ed25519 AAAA…).",
    "labels": "Write one key=value per line; letters, digits and . _ - only.",
    "workspace_idle_minutes": "Give a whole number of minutes from 5 to 1440 (a day).",
}
CREATE_FIELDS = (
    "name",
    "kind",
    "region",
    "shape",
    "gpu_model",
    "gpus_per_node",
    "node_count",
    "ends_at",
    "idle_release_minutes",
    "image",
    "ssh_public_keys",
    "labels",
    "workspace",
    "workspace_idle_minutes",
)
DEFAULT_WORKSPACE_IDLE = "60"
SUGGEST_FIELDS = ("gpu_memory_gib", "gpu_count", "interconnect")


@dataclass(frozen=True)
class ShapeOption:
    """One row of the shape picker."""

    region: str
    name: str
    description: str
    gpus: str
    gpu_model: str
    memory: str
    interconnect: str
    price: str
    value: str


def shape_option(shape: ShapeRead) -> ShapeOption:
    gpus = str(shape.gpus_per_node)
    if shape.node_count > 1:
        gpus = f"{shape.node_count} nodes x {shape.gpus_per_node}"
    if shape.gpu_milli < 1000:
        gpus = f"{shape.gpu_milli / 10:g}% of 1"
    total = shape.gpu_memory_gib * shape.gpus_per_node * shape.node_count * shape.gpu_milli // 1000
    return ShapeOption(
        region=shape.region, name=shape.name, description=shape.description, gpus=gpus,
        gpu_model=shape.gpu_model.upper(), memory=f"{total} GiB",
        interconnect="NVLink" if shape.interconnect == "nvlink" else "PCIe",
        price=f"{shape.hourly_price:.2f} {shape.currency}", value=shape.name,
    )  # fmt: skip


@get("/tenancies/new", opt=tenant(Permission.TENANCIES_WRITE), name="portal:tenancy-new")
async def tenancy_new_page(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    gpu_memory_gib: Annotated[str | None, Parameter(max_length=10)] = None,
    gpu_count: Annotated[str | None, Parameter(max_length=10)] = None,
    interconnect: Annotated[str | None, Parameter(max_length=10)] = None,
    region: Filter = None,
) -> Template:
    form = FormState(
        values={
            "kind": "slurm",
            "region": region or ANY_REGION,
            "node_count": "1",
            "workspace_idle_minutes": DEFAULT_WORKSPACE_IDLE,
        }
    )
    ask = FormState(
        values={
            "gpu_memory_gib": (gpu_memory_gib or "").strip(),
            "gpu_count": (gpu_count or "1").strip(),
            "interconnect": (interconnect or "any").strip(),
        }
    )
    return await _new_page(request, db, tenant, form, ask, suggest=gpu_memory_gib is not None)


@post("/tenancies", opt=tenant(Permission.TENANCIES_WRITE), name="portal:tenancy-create")
async def tenancy_create(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, CREATE_FIELDS)
    data = _create_data(form)
    status = 400
    problem_info: dict[str, Any] = {}
    if data is not None:
        try:
            created = await service.create(
                db, tenant, org_id, data, clock=clock, settings=settings,
                drivers=drivers_of(request),
            )  # fmt: skip
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            problem_info = problem_details(problem)
            status = problem.status
        else:
            wake_reconciler(request)
            return Redirect(
                path=f"/tenancies/{created.id}?done=created", status_code=HTTP_303_SEE_OTHER
            )
    form.message = form.message or "The tenancy was not created; check the highlighted fields."
    ask = FormState(values={"gpu_memory_gib": "", "gpu_count": "1", "interconnect": "any"})
    return await _new_page(request, db, tenant, form, ask, problem=problem_info, status_code=status)


CLASS_PREFIX = "class:"


def _model_options(models: Sequence[GpuModelRead]) -> list[tuple[str, str]]:
    """Each GPU model, then "any <generation>" for generations with several models."""
    options = [(m.code, f"{m.name} ({m.memory_gib} GiB)") for m in models]
    by_class: dict[str, list[str]] = {}
    for m in models:
        by_class.setdefault(m.generation, []).append(m.code.upper())
    for generation, codes in sorted(by_class.items()):
        if len(codes) > 1:
            label = f"Any {generation} GPU ({', '.join(sorted(codes))}): whichever has room"
            options.append((f"{CLASS_PREFIX}{class_code(generation)}", label))
    return options


def _create_data(form: FormState) -> TenancyCreate | None:
    """The form as a create request; field errors land in ``form``."""
    v = form.values
    data: dict[str, Any] = {
        "name": v["name"],
        "kind": v["kind"],
        "region": v["region"] or ANY_REGION,
    }
    if v["shape"]:
        data["shape"] = v["shape"]
    else:
        model = v["gpu_model"] or None
        if model is not None and model.startswith(CLASS_PREFIX):  # "any Hopper" and the like
            data["gpu_class"] = model.removeprefix(CLASS_PREFIX)
        else:
            data["gpu_model"] = model
        data["gpus_per_node"] = v["gpus_per_node"] or None
        data["node_count"] = v["node_count"] or 1
    for name in ("idle_release_minutes", "image"):
        if v[name]:
            data[name] = v[name]
    if v["ends_at"]:
        ends_at = _utc(v["ends_at"])
        if ends_at is None:
            form.errors["ends_at"] = _HINTS["ends_at"]
        data["ends_at"] = ends_at
    data["ssh_public_keys"] = [
        line.strip() for line in v["ssh_public_keys"].splitlines() if line.strip()
    ]
    labels: dict[str, str] = {}
    for line in filter(None, (line.strip() for line in v["labels"].splitlines())):
        key, sep, value = line.partition("=")
        if not sep:
            form.errors["labels"] = f"{line[:40]!r} is not key=value."
            break
        labels[key.strip()] = value.strip()
    data["labels"] = labels
    if v["workspace"]:
        idle = v["workspace_idle_minutes"] or DEFAULT_WORKSPACE_IDLE
        data["workspace"] = {"preset": "jupyter", "idle_minutes": idle}
    if form.errors:
        return None
    created = convert(form, TenancyCreate, data, _HINTS)
    if "workspace" in form.errors:  # the only field of it the form sets is the idle time
        form.errors.pop("workspace")
        form.errors["workspace_idle_minutes"] = _HINTS["workspace_idle_minutes"]
    return created


def _utc(value: str) -> datetime | None:
    """A ``datetime-local`` value (no zone) read as UTC, or one with a zone as given."""
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def problem_details(problem: ProblemError) -> dict[str, Any]:
    """What a refusal adds to its detail, for the page: capacity suggestions, the residency
    rule, or the quota figures."""
    extra = dict(problem.extra)
    suggestions = extra.get("suggestions")
    rule = extra.get("rule")
    return {
        "slug": problem.slug,
        "suggestions": [str(s) for s in suggestions] if isinstance(suggestions, list) else None,
        "rule": rule if isinstance(rule, str) else None,
        "quota": {k: extra.get(k) for k in ("limit", "in_use", "requested")}
        if "limit" in extra
        else None,
    }


async def _new_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    form: FormState,
    ask: FormState,
    *,
    suggest: bool = False,
    problem: Mapping[str, Any] | None = None,
    status_code: int = 200,
) -> Template:
    org_id = org_of(scope)
    context: dict[str, Any] = {
        "page_title": "New tenancy",
        "has_org": org_id is not None,
        "form": form,
        "ask": ask,
        "problem": problem or {"rule": None, "quota": None, "suggestions": None},
        "suggestion": None,
        "kind_options": list(KIND_LABELS.items()),
        "region_options": [],
        "shape_options": [],
        "model_options": [],
        "quotas": [],
        "image_options": [(image, image) for image in sorted(IMAGES)],
        "interconnect_options": [("any", "Any"), ("nvlink", "NVLink (all GPUs on one node)")],
        **LABELS,
    }
    if org_id is not None:
        scope.require(org_id, Permission.TENANCIES_WRITE)
        allowed = await residency.allowed_regions(db, org_id)
        names = {r.code: r.name for r in await collect(lambda p: inventory.list_regions(db, p))}
        offered = await shapes.list_shapes(db, allowed)
        if suggest:
            context["suggestion"] = await _suggestion(db, ask, allowed, form)
        context.update(
            region_options=[
                (ANY_REGION, "Any region my residency policy allows (cheapest first)"),
                *((code, f"{names.get(code, code)} · {code}") for code in allowed),
            ],
            shape_options=[shape_option(s) for s in offered],
            model_options=_model_options(await collect(lambda p: inventory.list_gpu_models(db, p))),
            quotas=quota_rows(await quotas.for_org(db, org_id)),
        )
    return await render(
        request, db, "tenancies/new.html", context, active="tenancies", status_code=status_code
    )


async def _suggestion(
    db: AsyncSession, ask: FormState, allowed: list[str], form: FormState
) -> ShapeSuggestion | None:
    """The shape-suggestion answer for the workload asked about; it preselects the shape."""
    values = {k: ask.values[k] for k in SUGGEST_FIELDS}
    values["region"] = form.values["region"] or ANY_REGION
    profile = convert(ask, WorkloadProfile, values, {"gpu_memory_gib": "Give GiB from 1."})
    if profile is None:
        ask.message = "Fix the workload to get a suggestion."
        return None
    regions = (
        allowed if profile.region == ANY_REGION else [r for r in allowed if r == profile.region]
    )
    suggestion = await shapes.suggest(db, profile, regions)
    if suggestion.shape is not None:
        form.values.update(shape=suggestion.shape.name, region=suggestion.shape.region)
    return suggestion


ROUTES: list[Any] = [tenancy_new_page, tenancy_create]

"""The create form: a name, a region the residency policy allows, a model from those
regions' stores (with its licence and weights hash), the GPU and replica size, the
replica range and scale to zero; refusals shown next to the field they concern."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.endpoints import service
from control_plane.endpoints.schemas import Backend, EndpointCreate
from control_plane.endpoints.stores import ModelChoice, available_models
from control_plane.errors import Conflict, ProblemError
from control_plane.identity.authz import TenantScope, tenant
from control_plane.identity.roles import Permission
from control_plane.inventory import service as inventory
from control_plane.settings import Settings
from control_plane.sovereignty.residency import service as residency
from control_plane.tenancies.wiring import wake_reconciler
from portal.forms import FormState, convert, discard, read_form
from portal.pages.endpoints.common import LABELS, deps_of, org_of
from portal.templating import collect, render

FIELDS = ("name", "region", "model", "gpu_model", "size", "min_replicas", "max_replicas",
          "scale_to_zero_after_s")  # fmt: skip
# Replica sizes: (label, gpus, thousandths of a GPU).
SIZES: dict[str, tuple[str, int, int]] = {
    "quarter": ("A quarter of a GPU", 1, 250),
    "half": ("Half a GPU", 1, 500),
    "whole": ("One whole GPU", 1, 1000),
    "two": ("Two GPUs", 2, 1000),
}
_HINTS = {
    "name": "Use lower-case letters, digits and inner hyphens (at most 63 characters).",
    "region": "Choose one of the listed regions.",
    "model": "Choose one of the listed models.",
    "gpu_model": "Choose one of the listed GPU models.",
    "size": "Choose one of the listed sizes.",
    "min_replicas": "Give a whole number from 0 to 16.",
    "max_replicas": "Give a whole number from 0 to 16.",
    "scale_to_zero_after_s": "Give a whole number of seconds from 30 to 604800 (a week).",
}
# The service's field names, as the form calls them.
_FORM_NAMES = {"model_uri": "model", "gpus": "size", "gpu_milli": "size"}


@get("/endpoints/new", opt=tenant(Permission.ENDPOINTS_WRITE), name="portal:endpoint-new")
async def endpoint_new_page(
    request: Request[Any, Any, Any], tenant: TenantScope, db: AsyncSession, settings: Settings
) -> Template:
    form = FormState(values={"size": "quarter", "min_replicas": "1", "max_replicas": "1"})
    return await _new_page(request, db, tenant, settings, form)


@post("/endpoints", opt=tenant(Permission.ENDPOINTS_WRITE), name="portal:endpoint-create")
async def endpoint_create(
    request: Request[Any, Any, Any],
    tenant: TenantScope,
    db: AsyncSession,
    clock: Clock,
    settings: Settings,
) -> Response[Any]:
    org_id = tenant.resolve_org(None)
    form = await read_form(request, FIELDS)
    models = await _models(db, org_id, settings)
    data = create_data(form, models)
    status = 400
    if data is not None:
        try:
            created = await service.create(
                db, tenant, org_id, data, deps_of(request, clock, settings)
            )
        except ProblemError as problem:
            await discard(db, problem)
            add_problem(form, problem)
            status = problem.status
        else:
            wake_reconciler(request)
            return Redirect(
                path=f"/endpoints/{created.name}?done=created", status_code=HTTP_303_SEE_OTHER
            )
    form.message = form.message or "The endpoint was not created; check the highlighted fields."
    return await _new_page(request, db, tenant, settings, form, status_code=status)


def add_problem(form: FormState, problem: ProblemError) -> None:
    """The service's refusal next to the form field it concerns."""
    form.add_problem(problem)
    for api_name, form_name in _FORM_NAMES.items():
        if api_name in form.errors:
            form.errors.setdefault(form_name, form.errors.pop(api_name))
    if isinstance(problem, Conflict) and "named" in problem.detail:
        form.errors.setdefault("name", "Another endpoint has this name: choose another.")


def create_data(form: FormState, models: list[ModelChoice]) -> EndpointCreate | None:
    """The form as a create request; field errors land in ``form``."""
    v = form.values
    model = next((m for m in models if m.uri == v["model"]), None)
    if model is None:
        form.errors["model"] = _HINTS["model"]
    size = SIZES.get(v["size"])
    if size is None:
        form.errors["size"] = _HINTS["size"]
    if form.errors or model is None or size is None:
        return None
    data: dict[str, Any] = {
        "name": v["name"], "region": v["region"], "model_uri": model.uri,
        "gpu_model": v["gpu_model"], "gpus": size[1], "gpu_milli": size[2],
        "min_replicas": v["min_replicas"] or 1, "max_replicas": v["max_replicas"] or 1,
    }  # fmt: skip
    if model.backend in set(Backend):
        data["backend"] = model.backend
    if v["scale_to_zero_after_s"]:
        data["scale_to_zero_after_s"] = v["scale_to_zero_after_s"]
    checked = FormState(values=v)
    result = convert(checked, EndpointCreate, data, _HINTS)
    for name, error in checked.errors.items():
        form.errors.setdefault(_FORM_NAMES.get(name, name), error)
    form.message = checked.message
    return result


async def _models(db: AsyncSession, org_id: str, settings: Settings) -> list[ModelChoice]:
    return available_models(settings, list(await residency.allowed_regions(db, org_id)))


def model_label(model: ModelChoice) -> str:
    return (
        f"{model.name} · store {model.region} · licence {model.license} · "
        f"weights {model.weights_sha256[:12]}"
    )


async def _new_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    scope: TenantScope,
    settings: Settings,
    form: FormState,
    *,
    status_code: int = 200,
) -> Template:
    org_id = org_of(scope)
    context: dict[str, Any] = {
        "page_title": "New endpoint",
        "has_org": org_id is not None,
        "form": form,
        "region_options": [],
        "model_options": [],
        "gpu_options": [],
        "size_options": [(key, label) for key, (label, _, _) in SIZES.items()],
        **LABELS,
    }
    if org_id is not None:
        scope.require(org_id, Permission.ENDPOINTS_WRITE)
        allowed = list(await residency.allowed_regions(db, org_id))
        names = {r.code: r.name for r in await collect(lambda p: inventory.list_regions(db, p))}
        gpus = await collect(lambda p: inventory.list_gpu_models(db, p))
        context.update(
            region_options=[(code, f"{names.get(code, code)} · {code}") for code in allowed],
            model_options=[(m.uri, model_label(m)) for m in available_models(settings, allowed)],
            gpu_options=[(g.code, f"{g.name} ({g.memory_gib} GiB)") for g in gpus],
        )
    return await render(
        request, db, "endpoints/new.html", context, active="endpoints", status_code=status_code
    )


ROUTES: list[Any] = [endpoint_new_page, endpoint_create]

"""Operator pages: the fleet by region, the node list with filters, one node's lifecycle."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import Parameter, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from sqlalchemy.ext.asyncio import AsyncSession

from control_plane.clock import Clock
from control_plane.errors import NotFound, ProblemError
from control_plane.http.pagination import PageRequest, page_request
from control_plane.identity.authz import ProviderScope, provider
from control_plane.identity.roles import ProviderPermission, provider_allows
from control_plane.inventory import service as inventory
from control_plane.inventory.lifecycle import NodeState
from control_plane.inventory.schemas import NodeRead, NodeTransition
from portal.forms import FormState, convert, discard, read_form
from portal.pages.dashboard import gpus_by_state_chart
from portal.templating import STATE_LABELS, collect, render

NodeId = Annotated[str, Parameter(max_length=40)]
Filter = Annotated[str | None, Parameter(max_length=64)]
NODES_PER_PAGE = 20
FILTER_NAMES = ("region", "state", "gpu_model", "hostname")

# What the button that moves a node into each state says.
ACTION_LABELS: dict[NodeState, str] = {
    NodeState.DRAINING: "Drain",
    NodeState.MAINTENANCE: "Mark maintenance",
    NodeState.AVAILABLE: "Return to service",
    NodeState.BURN_IN: "Start burn-in",
    NodeState.RETIRED: "Retire",
}


@get(
    "/operator/inventory",
    opt=provider(ProviderPermission.INVENTORY_READ),
    name="portal:inventory",
)
async def inventory_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    region: Filter = None,
    state_filter: Annotated[str | None, QueryParameter(name="state", max_length=64)] = None,
    gpu_model: Filter = None,
    hostname: Annotated[str | None, Parameter(max_length=253)] = None,
    limit: Annotated[int | None, Parameter(ge=1, le=200)] = None,
    cursor: Annotated[str | None, Parameter(max_length=400)] = None,
) -> Template:
    values = {"region": region, "state": state_filter, "gpu_model": gpu_model, "hostname": hostname}
    form = FormState(values={k: (v or "").strip() for k, v in values.items()})
    node_state = None
    if form.values["state"]:
        try:
            node_state = NodeState(form.values["state"])
        except ValueError:
            form.errors["state"] = "Choose one of the listed states."
    page = page_request(limit, cursor, NODES_PER_PAGE, 200)
    summary = await inventory.summary(db)
    nodes = None
    if not form.errors:
        nodes = await inventory.list_nodes(
            db,
            page,
            region=form.values["region"] or None,
            state=node_state,
            gpu_model=form.values["gpu_model"] or None,
            hostname_prefix=form.values["hostname"] or None,
        )
    filters = {k: v for k, v in form.values.items() if v}
    context = {
        "page_title": "Inventory",
        "summary": summary,
        "gpus_chart": gpus_by_state_chart(summary),
        "region_options": [(r.region_code, r.region_name) for r in summary.regions],
        "state_options": [(str(s), STATE_LABELS[s]) for s in NodeState],
        "model_options": [
            (m.code, m.name) for m in await collect(lambda p: inventory.list_gpu_models(db, p))
        ],
        "form": form,
        "nodes": nodes,
        "filtered": bool(filters),
        "first_url": _inventory_url(filters) if cursor else "",
        "next_url": _inventory_url({**filters, "cursor": nodes.next_cursor})
        if nodes and nodes.next_cursor
        else "",
    }
    return await render(
        request,
        db,
        "inventory/index.html",
        context,
        active="inventory",
        status_code=400 if form.errors else 200,
    )


def _inventory_url(params: dict[str, str]) -> str:
    return "/operator/inventory" + (f"?{urlencode(params)}" if params else "")


@get(
    "/operator/nodes/{node_id:str}",
    opt=provider(ProviderPermission.INVENTORY_READ),
    name="portal:node",
)
async def node_page(
    request: Request[Any, Any, Any],
    node_id: NodeId,
    db: AsyncSession,
    operator: ProviderScope,
    page: PageRequest,
    done: Annotated[str | None, Parameter(max_length=20)] = None,
) -> Template:
    notice = ""
    if done in STATE_LABELS:
        notice = f"The node is now {STATE_LABELS[done].lower()}."
    return await _node_page(request, db, operator, node_id, page, FormState(), notice)


@post(
    "/operator/nodes/{node_id:str}/transitions",
    opt=provider(ProviderPermission.NODES_OPERATE),
    name="portal:node-transition",
)
async def node_transition(
    request: Request[Any, Any, Any],
    node_id: NodeId,
    db: AsyncSession,
    clock: Clock,
    operator: ProviderScope,
    page: PageRequest,
) -> Response[Any]:
    form = await read_form(request, ["to", "reason"])
    data = convert(
        form,
        NodeTransition,
        form.values,
        {"to": "Choose one of the listed actions.", "reason": "Use at most 500 characters."},
    )
    status = 400
    if data is not None:
        try:
            await inventory.transition_node(db, clock, operator, node_id, data)
        except NotFound:
            raise
        except ProblemError as problem:
            await discard(db, problem)
            form.add_problem(problem)
            status = problem.status
        else:
            return Redirect(
                path=f"/operator/nodes/{node_id}?{urlencode({'done': data.to})}",
                status_code=HTTP_303_SEE_OTHER,
            )
    form.message = form.message or "The node was not changed; check the highlighted fields."
    return await _node_page(request, db, operator, node_id, page, form, status_code=status)


async def _node_page(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    operator: ProviderScope,
    node_id: str,
    page: PageRequest,
    form: FormState,
    notice: str = "",
    status_code: int = 200,
) -> Template:
    node = await inventory.get_node(db, node_id)
    region = await inventory.get_region(db, node.region_code)
    events = await inventory.node_events(db, node_id, page)
    may_operate = provider_allows(
        operator.principal.provider_role, ProviderPermission.NODES_OPERATE
    )
    context = {
        "page_title": node.hostname,
        "node": node,
        "region": region,
        "events": events,
        # Newest first by time: event ids made in the same millisecond do not sort in order.
        "timeline": sorted(events.items, key=lambda e: e.at, reverse=True),
        "may_operate": may_operate,
        "in_jurisdiction": operator.may_act_in(region.jurisdiction),
        "actions": _actions(node),
        "form": form,
        "notice": notice,
    }
    return await render(
        request, db, "inventory/node.html", context, active="inventory", status_code=status_code
    )


def _actions(node: NodeRead) -> list[tuple[str, str]]:
    """(target state, button label) for every transition allowed from the node's state."""
    labels = dict(ACTION_LABELS)
    if node.state in (NodeState.ENROLLING, NodeState.BURN_IN):
        labels[NodeState.AVAILABLE] = "Put in service"
    return [(str(s), labels[s]) for s in node.allowed_transitions]


ROUTES = [inventory_page, node_page, node_transition]

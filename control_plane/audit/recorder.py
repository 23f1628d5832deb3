"""Ledger entries for HTTP requests, written without any handler having to ask.

Every request that may change something (POST, PUT, PATCH, DELETE, and reads a route
marks as audited) gets one entry:

* on success, inside the request's own transaction just before it commits (see
  ``control_plane.http.database``), so the change and its entry land together or not at
  all;
* on failure, by :class:`FailedRequestAudit` outside the request's transaction (through
  the app's group-commit :class:`~control_plane.audit.appender.LedgerAppender`, which
  answers once the entry is committed), after the request's transaction rolled back and
  before the answer leaves: denials (401/403),
  refusals (other 4xx) and errors (5xx). Anonymous calls to protected routes are not
  recorded (nobody to attribute them to; they are counted in ``/metrics``); anonymous
  calls to public forms (sign-in, sign-up) are.

What the entry names is derived from the request and from what the transaction wrote:
the action from the route handler (``<domain>.<function>``, or ``opt["audit_action"]``),
the target from the path parameters or, for creates, the inserted row, the organization
from the path, the written rows or the caller. A service can sharpen it with
:func:`control_plane.audit.hints.hint`. The payload hashed into the entry is the method,
route template, path and query parameters, status and the list of rows written (never
the request body, which can hold passwords and secrets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import event, inspect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, UOWTransaction

from control_plane.audit.appender import LedgerAppender
from control_plane.audit.chain import ActorKind
from control_plane.audit.hints import HINT_KEY, AuditHint
from control_plane.audit.store import NewEntry, record_many

__all__ = [
    "AUDITED_READ",
    "FailedRequestAudit",
    "actor_of",
    "audited_read",
    "record_request",
    "track_changes",
]

log = structlog.get_logger("control_plane.audit")

AUDITED_READ = "audited_read"
_CHANGES_KEY = "audit_changes"
_RECORDED = "audit_recorded"
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bookkeeping tables whose rows are not what a request is about.
_NOT_TARGETS = frozenset(
    {"audit_entry", "audit_chain_head", "audit_checkpoint", "idempotency_record", "user_session"}
)
_ACTION_PART = re.compile(r"[^a-z0-9_]+")


def audited_read() -> dict[str, Any]:
    """Route ``opt`` for a read that must leave a ledger entry (e.g. an operator reading
    tenant data): it gets a write transaction and is recorded like a change."""
    return {AUDITED_READ: True}


def is_audited(method: str, opt: Mapping[str, Any]) -> bool:
    """Changes and marked reads are; data-plane calls (inference through the gateway) are
    metered as usage instead."""
    if opt.get("data_plane"):
        return False
    return method in _UNSAFE or bool(opt.get(AUDITED_READ))


@dataclass(frozen=True, slots=True)
class Change:
    op: str
    table: str
    id: str
    org_id: str | None


def track_changes(db: AsyncSession) -> None:
    """Start collecting the rows this session inserts, updates and deletes."""
    db.info[_CHANGES_KEY] = []


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _flush: UOWTransaction) -> None:
    changes: list[Change] | None = session.info.get(_CHANGES_KEY)
    if changes is None:
        return
    for op, objects in (
        ("insert", session.new),
        ("update", session.dirty),
        ("delete", session.deleted),
    ):
        for obj in objects:
            if op == "update" and not session.is_modified(obj):
                continue
            mapper = inspect(obj).mapper
            table = str(mapper.local_table.name)
            key = ",".join(str(v) for v in mapper.primary_key_from_instance(obj))
            org = key if table == "organization" else getattr(obj, "org_id", None)
            changes.append(Change(op, table, key, org if isinstance(org, str) else None))


async def record_request(
    db: AsyncSession, scope: Scope, *, status: int, decision_ref: str | None = None
) -> None:
    """Append the entry for ``scope``'s request in ``db``'s (the request's) transaction."""
    await db.flush()
    changes: list[Change] = list(db.info.get(_CHANGES_KEY) or ())
    hint: AuditHint = db.info.get(HINT_KEY) or AuditHint()
    await _append(db, scope, status, changes, hint, decision_ref)
    scope.setdefault("state", {})[_RECORDED] = True


async def _append(
    db: AsyncSession,
    scope: Scope,
    status: int,
    changes: list[Change],
    hint: AuditHint,
    decision_ref: str | None,
) -> None:
    await record_many(db, (_entry(scope, status, changes, hint, decision_ref),))


def _entry(
    scope: Scope,
    status: int,
    changes: list[Change],
    hint: AuditHint,
    decision_ref: str | None,
) -> NewEntry:
    """The ledger entry for ``scope``'s request, answered with ``status``."""
    app_state = scope["app"].state
    state: dict[str, Any] = scope.get("state", {})
    params: dict[str, Any] = {k: str(v) for k, v in (scope.get("path_params") or {}).items()}
    actor_kind, actor_id = _actor(state.get("principal"), hint)
    target_type, target_id = _target(scope, params, changes, hint)
    if status == 404:
        # The caller may not learn whether that id exists: the org's chain keeps the
        # target's kind; the id stays only inside the payload hash.
        target_id = None
    org_id = _org(state.get("principal"), params, changes, hint, status)
    client = scope.get("client")
    return NewEntry(
        org_id=org_id,
        region=app_state.settings.region,
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=_action(scope),
        target_type=target_type,
        target_id=target_id,
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
        source_address=client[0] if client else None,
        outcome=outcome_for(status),
        decision_ref=decision_ref,
        payload={
            "method": scope.get("method"),
            "route": scope.get("path_template"),
            "path_params": params,
            "query": _query(scope),
            "status": status,
            "changes": sorted([c.op, c.table, c.id] for c in changes),
        },
        at=app_state.clock.now(),
    )


def outcome_for(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403, 423, 429):
        return "denied"
    return "failed" if status >= 500 else "rejected"


def _action(scope: Scope) -> str:
    handler = scope.get("route_handler")
    explicit = getattr(handler, "opt", {}).get("audit_action")
    if isinstance(explicit, str):
        return explicit
    fn = getattr(getattr(handler, "fn", None), "__name__", None) or "request"
    module = getattr(getattr(handler, "fn", None), "__module__", "") or ""
    parts = module.split(".")
    domain = "portal" if parts[0] == "portal" else (parts[1] if len(parts) > 2 else parts[0])
    return f"{_clean(domain)}.{_clean(fn)}"


def _clean(text: str) -> str:
    cleaned = _ACTION_PART.sub("_", text.lower()).strip("_")
    return cleaned if cleaned and cleaned[0].isalpha() else f"x{cleaned}"


def actor_of(principal: Any) -> tuple[str, str | None]:
    """How the ledger names a caller: (actor kind, actor id)."""
    return _actor(principal, AuditHint())


def _actor(principal: Any, hint: AuditHint) -> tuple[str, str | None]:
    if principal is None:
        if hint.actor_kind:
            return hint.actor_kind, hint.actor_id
        return ActorKind.ANONYMOUS.value, None
    if principal.kind == "api_key":
        return ActorKind.API_KEY.value, principal.id
    if principal.provider_role is not None:
        return ActorKind.OPERATOR.value, principal.user_id or principal.id
    return ActorKind.USER.value, principal.user_id or principal.id


def _target(
    scope: Scope, params: Mapping[str, str], changes: list[Change], hint: AuditHint
) -> tuple[str | None, str | None]:
    """What the request acted on: the hint, the created row, or the last path parameter."""
    if hint.target_type:
        return hint.target_type, hint.target_id
    template = str(scope.get("path_template") or "")
    names = re.findall(r"\{([a-z_]+)(?::[a-z]+)?\}", template)
    relevant = [c for c in changes if c.table not in _NOT_TARGETS]
    created = sorted((c for c in relevant if c.op == "insert"), key=lambda c: c.table)
    ends_static = not template.rstrip("/").endswith("}")
    if scope.get("method") == "POST" and ends_static and created:
        noun = _collection_noun(template)
        chosen = next((c for c in created if c.table == noun), created[0])
        return chosen.table, chosen.id
    if names:
        last = names[-1]
        return last.removesuffix("_id").removesuffix("_code"), params.get(last)
    if relevant:
        return relevant[0].table, relevant[0].id
    return None, None


def _collection_noun(template: str) -> str:
    """``/api/v1/orgs/{org_id}/api-keys`` -> ``api_key``: the table a create inserts into."""
    segment = template.rstrip("/").rsplit("/", 1)[-1].replace("-", "_")
    return segment[:-1] if segment.endswith("s") else segment


def _org(
    principal: Any,
    params: Mapping[str, str],
    changes: list[Change],
    hint: AuditHint,
    status: int,
) -> str | None:
    """The organization whose chain gets the entry.

    A failed request names an organization only if the caller belongs to it: an outsider
    probing another tenant's ids must not be able to create chains or write into them.
    """
    memberships = getattr(principal, "memberships", None) or {}
    candidates = [
        hint.org_id,
        params.get("org_id"),
        *(c.org_id for c in changes if c.table not in _NOT_TARGETS),
    ]
    for org in candidates:
        if org and (status < 400 or org in memberships):
            return org
    if principal is not None and principal.provider_role is None:
        return principal.default_org_id  # type: ignore[no-any-return]
    return None


def _query(scope: Scope) -> str:
    raw = scope.get("query_string", b"")
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)


class FailedRequestAudit:
    """Record refused and failed requests, outside the request's transaction, before
    answering.

    The entry goes through the app's ``audit_appender`` (:class:`LedgerAppender`): it
    shares a transaction with other such entries (group commit) and the answer leaves
    only once that transaction committed. An app state without one writes the entry in a
    transaction of its own.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return

        async def send_after_recording(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                await self._record_failure(scope, message["status"])
            await send(message)

        await self.app(scope, receive, send_after_recording)

    async def _record_failure(self, scope: Scope, status: int) -> None:
        state: dict[str, Any] = scope.get("state", {})
        handler = scope.get("route_handler")
        opt: Mapping[str, Any] = getattr(handler, "opt", None) or {}
        if (
            state.get(_RECORDED)
            or handler is None
            or not is_audited(str(scope.get("method", "")), opt)
        ):
            return
        access = opt.get("access")
        if state.get("principal") is None and not getattr(access, "public", False):
            return
        app_state = scope["app"].state
        try:
            new = _entry(scope, status, [], AuditHint(), _decision_ref(state))
            appender: LedgerAppender | None = app_state.get("audit_appender")
            if appender is not None:
                # Shares a transaction with other such entries; returns once committed.
                await appender.append(new)
            else:
                factory: async_sessionmaker[AsyncSession] = app_state.sessionmaker
                async with factory() as db, db.begin():
                    await record_many(db, (new,))
            state[_RECORDED] = True
        except Exception:  # the answer still goes out; the gap is logged loudly
            log.exception("audit entry for a failed request could not be written")


def _decision_ref(state: Mapping[str, Any]) -> str | None:
    ref = state.get("audit_decision_ref")
    return ref if isinstance(ref, str) else None

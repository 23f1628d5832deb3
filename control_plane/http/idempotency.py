"""``Idempotency-Key`` on create calls: same key and body replays the first response,
same key with another body is a 422, a retry during the first attempt is a 409.

Keys are scoped to the credential that sent them and kept for ``ttl_seconds``. Answers a
retry could change are forgotten, so the retry runs again: 5xx, 401, 403, 409, 423 and 429.
Every other answer (success, 400, 404, 422 ...) is replayed as first sent.

Sign-in, sign-up and sign-out are never stored: their answers carry fresh credentials
(session cookie, CSRF token) that must not be handed out again. Nor is any answer sent with
``Cache-Control: no-store`` (a new API key's secret, a kubeconfig shown once, a console
link): the record keeps only that the request succeeded, and a retry with the same key is
a 409 saying the answer carried a secret and is not kept, so the action never runs twice
and the secret never sits in the table.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from litestar.datastructures import CacheControlHeader
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.create_once import create_once
from control_plane.errors import (
    PROBLEM_JSON,
    Conflict,
    FieldError,
    IdempotencyMismatch,
    InvalidInput,
    PayloadTooLarge,
    ProblemError,
)
from control_plane.http.models import IdempotencyRecord
from control_plane.ids import new_id

if TYPE_CHECKING:
    from litestar.types import HTTPScope

HEADER = b"idempotency-key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_NOT_STORED = frozenset({401, 403, 409, 423, 429})
MAX_BODY = 10_000_000
_NEVER_STORED_PREFIX = "/api/v1/auth/"
_WITHHELD = "x-cp-answer-withheld"  # marks a record whose secret-bearing answer is not kept
# For handlers whose answer carries a secret: no cache keeps it, nor the idempotency table.
SECRET_ANSWER = CacheControlHeader(no_store=True)


def digest_key(key_dir: Path) -> bytes:
    """The deployment's key for request digests, created on first use (``idempotency.key``,
    mode 0600). Stored digests are HMACs under it, so a leaked table does not let anyone
    confirm a guess of a request body (a secret's value) offline."""
    file = key_dir / "idempotency.key"
    if file.exists():
        return file.read_bytes()
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return create_once(file, secrets.token_bytes(32))  # replicas starting together agree


class IdempotencyMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
        clock: Clock,
        ttl_seconds: int,
        key: bytes,
    ) -> None:
        self.app = app
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_seconds)
        self._key = key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, HEADER) if scope["type"] == ScopeType.HTTP else None
        if (
            key is None
            or scope.get("method") != "POST"
            or str(scope.get("path", "")).startswith(_NEVER_STORED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        http_scope = cast("HTTPScope", scope)
        try:
            await self._handle(http_scope, receive, send, key)
        except ProblemError as problem:
            await _send_problem(send, problem, scope)

    async def _handle(self, scope: HTTPScope, receive: Receive, send: Send, key: str) -> None:
        if not _VALID_KEY.match(key):
            raise InvalidInput(
                detail="Idempotency-Key must be 1-255 visible ASCII characters.",
                errors=[FieldError("header.Idempotency-Key", "invalid format")],
            )
        body = await _read_body(receive)
        principal = _principal_key(scope)
        message = b"\0".join(
            [scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body]
        )
        digest = hmac.new(self._key, message, hashlib.sha256).hexdigest()
        record_id = await self._reserve(principal, key, digest, scope)
        if record_id is None:
            return await self._replay(principal, key, digest, send)
        captured: dict[str, Any] = {"body": bytearray()}

        async def replay_receive() -> Any:
            if not captured.get("sent"):
                captured["sent"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def capture_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                headers = message.get("headers", [])
                captured["headers"] = {
                    k.decode("latin-1"): v.decode("latin-1")
                    for k, v in headers
                    if k.lower() in (b"content-type", b"location")
                }
                captured["no_store"] = any(
                    k.lower() == b"cache-control" and b"no-store" in v.lower() for k, v in headers
                )
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture_send)
        finally:
            await self._complete(record_id, captured)

    async def _reserve(self, principal: str, key: str, digest: str, scope: HTTPScope) -> str | None:
        """Insert an in-progress record; None when one already exists for this key."""
        now = self._clock.now()
        async with self._sessionmaker()() as db:
            await db.execute(
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.principal_key == principal,
                    IdempotencyRecord.key == key,
                    IdempotencyRecord.created_at < now - self._ttl,
                )
            )
            record = IdempotencyRecord(
                id=new_id("idem"),
                principal_key=principal,
                key=key,
                method=scope["method"],
                path=scope["path"][:2000],
                request_hash=digest,
                created_at=now,
            )
            db.add(record)
            try:
                await db.commit()
            except IntegrityError:
                await db.rollback()
                return None
            return record.id

    async def _replay(self, principal: str, key: str, digest: str, send: Send) -> None:
        async with self._sessionmaker()() as db:
            record = (
                await db.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.principal_key == principal, IdempotencyRecord.key == key
                    )
                )
            ).scalar_one_or_none()
        if record is None:
            raise Conflict(detail="A request with this Idempotency-Key just finished; retry.")
        if record.request_hash != digest:
            raise IdempotencyMismatch(
                detail="This Idempotency-Key was used with a different request.",
                errors=[FieldError("header.Idempotency-Key", "reused with another body")],
            )
        if record.status_code is None:
            raise Conflict(
                detail="A request with this Idempotency-Key is still in progress.",
                headers={"Retry-After": "1"},
            )
        if (record.response_headers or {}).get(_WITHHELD):
            raise Conflict(
                detail=(
                    "A request with this Idempotency-Key already succeeded; its answer carried "
                    "a secret and is not kept, so it is not replayed (nor run again)."
                )
            )
        headers = [(k.encode(), v.encode()) for k, v in (record.response_headers or {}).items()]
        headers.append((b"idempotent-replayed", b"true"))
        await _send_raw(send, record.status_code, headers, record.response_body or b"")

    async def _complete(self, record_id: str, captured: dict[str, Any]) -> None:
        status = captured.get("status")
        async with self._sessionmaker()() as db:
            if status is None or status >= 500 or status in _NOT_STORED:
                await db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
            elif captured.get("no_store"):
                await db.execute(
                    update(IdempotencyRecord)
                    .where(IdempotencyRecord.id == record_id)
                    .values(status_code=status, response_body=b"",
                            response_headers={_WITHHELD: "true"})
                )  # fmt: skip
            else:
                await db.execute(
                    update(IdempotencyRecord)
                    .where(IdempotencyRecord.id == record_id)
                    .values(
                        status_code=status,
                        response_body=bytes(captured["body"]),
                        response_headers=captured.get("headers", {}),
                    )
                )
            await db.commit()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _principal_key(scope: Scope) -> str:
    """Keys are per credential: the API key, else the session cookie, else the address."""
    credential = _header(scope, b"authorization")
    if credential is None:
        cookies = _header(scope, b"cookie") or ""
        match = re.search(r"(?:^|;\s*)cp_session=([^;]+)", cookies)
        credential = match.group(1) if match else None
    if credential is None:
        client = scope.get("client")
        credential = f"anonymous:{client[0] if client else ''}"
    return hashlib.sha256(credential.encode()).hexdigest()


async def _read_body(receive: Receive) -> bytes:
    chunks = bytearray()
    while True:
        message: Any = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.extend(message.get("body", b""))
        if len(chunks) > MAX_BODY:
            raise PayloadTooLarge(detail="The request body exceeds the size limit.")
        if not message.get("more_body"):
            break
    return bytes(chunks)


async def _send_problem(send: Send, problem: ProblemError, scope: Scope) -> None:
    body = json.dumps(problem.to_dict(instance=scope.get("path"))).encode()
    headers = [(b"content-type", PROBLEM_JSON.encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
    await _send_raw(send, problem.status, headers, body)


async def _send_raw(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    start: Any = {"type": "http.response.start", "status": status, "headers": headers}
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)

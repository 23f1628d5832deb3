"""Resolve the caller from an ``Authorization: Bearer`` API key or the session cookie."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from control_plane.clock import Clock
from control_plane.errors import Unauthenticated
from control_plane.identity.models import ApiKey, Membership, Organization, User, WebSession
from control_plane.identity.principal import Principal
from control_plane.identity.roles import Permission, ProviderRole, TenantRole
from control_plane.identity.secrets import digests_match, split_api_key, token_digest

log = structlog.get_logger("control_plane.identity")

SESSION_COOKIE = "cp_session"
_LAST_USED_GRANULARITY = timedelta(seconds=60)


@dataclass
class _CachedKey:
    principal: Principal
    secret_hash: str
    last_used_write: datetime | None
    cached_at: datetime


class Authenticator:
    """Looks callers up with a short-lived cache so the hot path rarely touches the database.

    Revocation and role changes take effect within ``cache_seconds`` on every replica, and
    at once on the replica that made the change. Cache ages are read from the injected clock
    (so tests can move time); an entry from the future, after the clock went back, is stale.

    An API key in use is reloaded in the background once its entry is half its age (the
    entry still answers meanwhile), and a key that must be loaded now is loaded once for
    every request waiting on it: a busy key never stalls requests on the database.
    """

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, cache_seconds: float
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._ttl = timedelta(seconds=cache_seconds)
        self._keys: dict[str, _CachedKey] = {}
        self._loading: dict[str, asyncio.Task[_CachedKey | None]] = {}
        # Bumped by every forget_*: a load that began before it must not store what it read.
        self._generation = 0
        self._sessions: dict[str, tuple[Principal, datetime]] = {}

    def _fresh(self, cached_at: datetime, now: datetime) -> bool:
        return timedelta(0) <= now - cached_at < self._ttl

    def forget_api_key(self, prefix: str) -> None:
        self._generation += 1
        self._keys.pop(prefix, None)

    def forget_session(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def forget_org(self, org_id: str) -> None:
        """Drop cached sessions and keys that name the organization (its name changed)."""
        for sid, (principal, _) in list(self._sessions.items()):
            if org_id in principal.memberships:
                self._sessions.pop(sid, None)
        self._generation += 1
        for prefix, entry in list(self._keys.items()):
            if org_id in entry.principal.memberships:
                self._keys.pop(prefix, None)

    def forget_project(self, project_id: str) -> None:
        """Drop cached keys of a deleted project (its keys went with it)."""
        self._generation += 1
        for prefix, entry in list(self._keys.items()):
            if entry.principal.project_id == project_id:
                self._keys.pop(prefix, None)

    def forget_user(self, user_id: str) -> None:
        """Drop cached sessions and keys of a user whose roles changed."""
        for sid, (principal, _) in list(self._sessions.items()):
            if principal.user_id == user_id:
                self._sessions.pop(sid, None)
        self._generation += 1
        self._keys.clear()

    async def from_authorization(self, header: str) -> Principal:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated(detail="Use 'Authorization: Bearer <API key>'.")
        principal = await self._api_key_principal(token)
        if principal is None:
            raise Unauthenticated(detail="The API key is invalid, expired or revoked.")
        return principal

    async def from_session_cookie(self, token: str) -> Principal | None:
        session_id = token_digest(token)
        now = self._clock.now()
        cached = self._sessions.get(session_id)
        if cached and self._fresh(cached[1], now):
            principal = cached[0]
        else:
            loaded = await self._load_session(session_id)
            if loaded is None:
                self._sessions.pop(session_id, None)
                return None
            principal = loaded
            self._sessions[session_id] = (principal, now)
        if principal.expires_at and principal.expires_at <= now:
            self._sessions.pop(session_id, None)
            return None
        return principal

    async def _api_key_principal(self, key: str) -> Principal | None:
        prefix = split_api_key(key)
        if prefix is None or len(key) > 200:
            return None
        now = self._clock.now()
        entry = self._keys.get(prefix)
        if entry is None or not self._fresh(entry.cached_at, now):
            entry = await asyncio.shield(self._reload_api_key(prefix, now))
            if entry is None:
                return None
        elif now - entry.cached_at >= self._ttl / 2:
            self._reload_api_key(prefix, now)  # in the background; this entry answers now
        if not digests_match(entry.secret_hash, token_digest(key)):
            return None
        principal = entry.principal
        if principal.expires_at and principal.expires_at <= now:
            return None
        if entry.last_used_write is None or not (
            timedelta(0) <= now - entry.last_used_write < _LAST_USED_GRANULARITY
        ):
            entry.last_used_write = now
            await self._touch_key(principal.id)
        return principal

    def _reload_api_key(self, prefix: str, now: datetime) -> asyncio.Task[_CachedKey | None]:
        """The load of ``prefix`` under way, or a new one; it replaces the cached entry."""
        loading = self._loading.get(prefix)
        if loading is None:
            loading = asyncio.create_task(self._store_api_key(prefix, now))
            self._loading[prefix] = loading
            loading.add_done_callback(self._loaded)
        return loading

    def _loaded(self, task: asyncio.Task[_CachedKey | None]) -> None:
        for prefix, loading in list(self._loading.items()):
            if loading is task:
                del self._loading[prefix]
        if not task.cancelled():
            task.exception()  # a background reload's failure is logged, not raised again

    async def _store_api_key(self, prefix: str, now: datetime) -> _CachedKey | None:
        generation = self._generation
        try:
            entry = await self._load_api_key(prefix, now)
        except Exception:
            log.exception("API key lookup failed", prefix=prefix)
            raise
        if generation != self._generation:
            return entry  # forgotten meanwhile: answer this request, cache nothing
        previous = self._keys.get(prefix)
        if entry is None:
            self._keys.pop(prefix, None)
            return None
        if previous is not None:  # keeps the once-a-minute last_used_at write
            entry.last_used_write = previous.last_used_write
        self._keys[prefix] = entry
        return entry

    async def _load_api_key(self, prefix: str, now: datetime) -> _CachedKey | None:
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(ApiKey, Organization.name)
                    .outerjoin(Organization, Organization.id == ApiKey.org_id)
                    .where(ApiKey.prefix == prefix)
                )
            ).one_or_none()
            if row is None or row[0].revoked_at is not None:
                return None
            key, org_name = row
        principal = Principal(
            kind="api_key",
            id=key.id,
            display=f"{key.name} ({key.prefix})",
            memberships={key.org_id: TenantRole(key.role)},
            scopes=frozenset(
                Permission(s) for s in key.scopes if s in Permission._value2member_map_
            ),
            project_id=key.project_id,
            current_org_id=key.org_id,
            expires_at=key.expires_at,
            requests_per_second=key.requests_per_second,
            tokens_per_minute=key.tokens_per_minute,
            org_names={key.org_id: org_name} if org_name is not None else {},
        )
        return _CachedKey(principal, key.secret_hash, last_used_write=None, cached_at=now)

    async def _touch_key(self, key_id: str) -> None:
        async with self._sessionmaker() as db:
            await db.execute(
                update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=self._clock.now())
            )
            await db.commit()

    async def _load_session(self, session_id: str) -> Principal | None:
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(WebSession, User)
                    .join(User, User.id == WebSession.user_id)
                    .where(WebSession.id == session_id)
                )
            ).one_or_none()
            if row is None:
                return None
            web_session, user = row
            if not user.is_active or web_session.expires_at <= self._clock.now():
                return None
            memberships, org_names = await _memberships_named(db, user.id)
        return Principal(
            kind="user",
            id=user.id,
            user_id=user.id,
            display=user.email,
            memberships=memberships,
            provider_role=ProviderRole(user.provider_role) if user.provider_role else None,
            home_country=user.home_country,
            session_id=session_id,
            csrf_token=web_session.csrf_token,
            current_org_id=web_session.current_org_id,
            expires_at=web_session.expires_at,
            org_names=org_names,
        )


async def _memberships_named(
    db: AsyncSession, user_id: str
) -> tuple[dict[str, TenantRole], dict[str, str]]:
    """The user's role in each organization, and the organizations' names (one query)."""
    rows = await db.execute(
        select(Membership.org_id, Membership.role, Organization.name)
        .outerjoin(Organization, Organization.id == Membership.org_id)
        .where(Membership.user_id == user_id)
    )
    roles: dict[str, TenantRole] = {}
    names: dict[str, str] = {}
    for org_id, role, name in rows:
        roles[org_id] = TenantRole(role)
        if name is not None:
            names[org_id] = name
    return roles, names

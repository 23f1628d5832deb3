"""The ``webhook`` sender: a budget's event POSTed as signed JSON to the budget's URL.

The body is the same on every retry; the signature header is made per attempt:
``Cp-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the budget's
secret>``, and ``Idempotency-Key`` carries the outbox key so a receiver can drop a
delivery it already has. Any 2xx answer is done; anything else is retried. The secret is
revealed through the key service (which ledgers the use) and committed before the call.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.budgets.models import Budget
from billing.outbox.dispatch import Claimed, PermanentError, WriteBack
from control_plane.clock import Clock
from control_plane.settings import Settings
from control_plane.sovereignty.keys import service as secrets

__all__ = ["SIGNATURE_HEADER", "WebhookSender", "sign"]

SIGNATURE_HEADER = "Cp-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``Cp-Signature`` value for ``body`` sent at ``timestamp``."""
    signed = str(timestamp).encode() + b"." + body
    return f"t={timestamp},v1={hmac.new(secret, signed, hashlib.sha256).hexdigest()}"


class WebhookSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        settings: Settings,
        *,
        timeout_seconds: float = 10.0,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.settings = settings
        self.timeout = timeout_seconds

    async def __call__(self, message: Claimed) -> WriteBack | None:
        url, org_id, secret = await self._target(message)
        body = json.dumps(
            {
                "id": message.key,
                "type": "budget.alert",
                "org_id": org_id,
                "budget_id": message.payload["budget_id"],
                "event": message.payload.get("event"),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body, int(self.clock.now().timestamp())),
            "Idempotency-Key": message.key,
            "User-Agent": "sovereign-control-plane-webhooks",
        }
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=headers)
        if not response.is_success:
            raise RuntimeError(f"{url} answered {response.status_code}")
        return None

    async def _target(self, message: Claimed) -> tuple[str, str, bytes]:
        """The budget's URL, organization and revealed secret (the use is committed)."""
        budget_id = message.payload.get("budget_id")
        async with self.sessionmaker() as db:
            budget = await db.get(Budget, budget_id) if isinstance(budget_id, str) else None
            if budget is None or not budget.webhook_url:
                raise PermanentError(f"budget {budget_id!r} gone or without a webhook URL")
            url, org_id = budget.webhook_url, budget.org_id
            secret = b""
            if budget.webhook_secret:
                secret = await secrets.reveal(
                    db,
                    org_id=org_id,
                    secret_id=budget.webhook_secret,
                    justification=f"sign budget webhook {message.key}"[:200],
                    actor=secrets.Actor.system("billing.webhooks"),
                    clock=self.clock,
                    settings=self.settings,
                )
            await db.commit()
        if not secret:
            raise PermanentError(f"budget {budget_id!r} has no webhook secret to sign with")
        return url, org_id, secret

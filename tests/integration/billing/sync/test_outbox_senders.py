"""The webhook and e-mail senders against real receivers on loopback: an HTTP server that
checks the signature as a customer would, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.outbox.dispatch import Dispatcher
from billing.outbox.models import OutboxMessage
from billing.outbox.service import enqueue
from billing.outbox.wiring import senders
from control_plane.audit.models import AuditEntryRow
from control_plane.clock import FrozenClock
from control_plane.settings import Settings
from tests.fixtures.peers.oidc import free_port
from tests.integration.billing.sync.conftest import make_budget, make_customer

Sessions = async_sessionmaker[AsyncSession]
SECRET = b"whsec-budget-0123456789abcdef"


def verify(secret: bytes, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What docs/billing.md tells a receiver to do with ``Cp-Signature``."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"]) and abs(now - timestamp) <= tolerance


class Receiver(ThreadingHTTPServer):
    """A customer's endpoint: answers ``status`` and keeps every request."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 204
        super().__init__(("127.0.0.1", free_port()), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/budget"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class Mailbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.mails: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.mails.append(message)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, mailbox
    controller.stop()


def _dispatcher(sessions: Sessions, clock: FrozenClock, settings: Settings) -> Dispatcher:
    return Dispatcher(sessions, clock, senders(sessions, clock, settings), base_delay_seconds=5)


class TestWebhook:
    async def test_the_receiver_gets_a_signed_body_it_can_verify(
        self, sessions: Sessions, frozen: FrozenClock, settings: Settings, receiver: Receiver
    ) -> None:
        async with sessions() as db:
            customer = await make_customer(db)
            budget = await make_budget(db, settings, customer.org_id, receiver.url, SECRET)
            event = {"threshold": 80, "spent_minor": 80_500, "currency": "CAD"}
            await enqueue(db, key=f"budget:{budget.id}:2026-11:80", topic="webhook",
                          org_id=customer.org_id, payload={"budget_id": budget.id, "event": event},
                          now=frozen.now())  # fmt: skip
            await db.commit()

        assert await _dispatcher(sessions, frozen, settings).drain() == {"done": 1}

        [(headers, body)] = receiver.received
        assert verify(SECRET, headers["cp-signature"], body, int(frozen.now().timestamp()))
        assert not verify(
            b"another secret", headers["cp-signature"], body, int(frozen.now().timestamp())
        )
        assert headers["idempotency-key"] == f"budget:{budget.id}:2026-11:80"
        assert json.loads(body)["event"] == event
        async with sessions() as db:  # the secret's use is in the organization's ledger
            uses = await db.execute(
                select(AuditEntryRow.decision_ref).where(
                    AuditEntryRow.action == "keys.use", AuditEntryRow.org_id == customer.org_id
                )
            )
            assert list(uses.scalars()) == [f"sign budget webhook budget:{budget.id}:2026-11:80"]

    async def test_a_refusing_receiver_gets_the_same_body_again_later(
        self, sessions: Sessions, frozen: FrozenClock, settings: Settings, receiver: Receiver
    ) -> None:
        async with sessions() as db:
            customer = await make_customer(db)
            budget = await make_budget(db, settings, customer.org_id, receiver.url, SECRET)
            await enqueue(db, key="budget-alert-retry", topic="webhook", org_id=customer.org_id,
                          payload={"budget_id": budget.id, "event": {"threshold": 100}},
                          now=frozen.now())  # fmt: skip
            await db.commit()
        dispatcher = _dispatcher(sessions, frozen, settings)

        receiver.status = 503
        assert await dispatcher.drain() == {"retry": 1}
        frozen.advance(3600)
        receiver.status = 200
        assert await dispatcher.drain() == {"done": 1}

        [(first, first_body), (second, second_body)] = receiver.received
        assert first_body == second_body
        assert first["idempotency-key"] == second["idempotency-key"] == "budget-alert-retry"
        assert verify(SECRET, second["cp-signature"], second_body, int(frozen.now().timestamp()))


class TestEmail:
    async def test_the_mail_arrives_with_a_message_id_from_the_outbox_key(
        self,
        sessions: Sessions,
        frozen: FrozenClock,
        settings: Settings,
        smtp_server: tuple[Controller, Mailbox],
    ) -> None:
        controller, mailbox = smtp_server
        settings = settings.model_copy(
            update={
                "smtp_url": f"smtp://127.0.0.1:{controller.port}",
                "smtp_from": "billing@cloud.test",
            }
        )
        async with sessions() as db:
            await enqueue(db, key="budget-mail-1", topic="email", org_id=None,
                          payload={"to": "ops@erable.test", "subject": "Budget at 80 %",
                                   "text": "Your budget for November is 80 % spent."},
                          now=frozen.now())  # fmt: skip
            await enqueue(db, key="budget-mail-2", topic="email", org_id=None,
                          payload={"to": "ops@erable.test"}, now=frozen.now())  # fmt: skip
            await db.commit()

        outcomes = await _dispatcher(sessions, frozen, settings).drain()

        assert outcomes == {"done": 1, "dead": 1}
        [mail] = mailbox.mails
        parsed = message_from_bytes(mail.as_bytes())
        assert parsed["To"] == "ops@erable.test"
        assert parsed["Subject"] == "Budget at 80 %"
        assert parsed["Message-ID"].endswith("@cloud.test>")
        assert "80 % spent" in parsed.get_payload()
        async with sessions() as db:
            dead = await db.get(OutboxMessage, (await _id(db, "budget-mail-2")))
            assert dead is not None
            assert dead.last_error == "PermanentError: an email needs to, subject and text"


async def _id(db: AsyncSession, key: str) -> str:
    return (await db.execute(select(OutboxMessage.id).where(OutboxMessage.key == key))).scalar_one()

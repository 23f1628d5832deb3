"""The ``email`` sender: plain-text mail over SMTP (smtplib, in a worker thread).

``smtp_url`` is ``smtp://host:port`` (no auth; STARTTLS when the server offers it) or
``smtps://user:password@host:port`` (TLS from the first byte, then login). The
``Message-ID`` is derived from the outbox key, so a retry after a lost answer carries the
same id and mail clients and archives show it once.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from billing.outbox.dispatch import Claimed, PermanentError, WriteBack
from control_plane.settings import Settings

__all__ = ["EmailSender", "message_id"]


def message_id(key: str, sender: str) -> str:
    """``<hash of the outbox key>@<the sender's domain>``."""
    domain = sender.rpartition("@")[2] or "localhost"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


class EmailSender:
    def __init__(self, settings: Settings, *, timeout_seconds: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout_seconds

    async def __call__(self, message: Claimed) -> WriteBack | None:
        if not self.settings.smtp_url:
            raise PermanentError("no SMTP server configured (CP_SMTP_URL)")
        to, subject, text = (message.payload.get(k) for k in ("to", "subject", "text"))
        if not (isinstance(to, str) and isinstance(subject, str) and isinstance(text, str)):
            raise PermanentError("an email needs to, subject and text")
        mail = EmailMessage()
        mail["From"] = self.settings.smtp_from
        mail["To"] = to
        mail["Subject"] = subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.key, self.settings.smtp_from)
        mail.set_content(text)
        await asyncio.to_thread(self._send, self.settings.smtp_url, mail)
        return None

    def _send(self, url: str, mail: EmailMessage) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise PermanentError("CP_SMTP_URL must be smtp://host:port or smtps://...")
        host, context = parts.hostname, ssl.create_default_context()
        smtp: smtplib.SMTP
        if parts.scheme == "smtps":
            smtp = smtplib.SMTP_SSL(host, parts.port or 465, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, parts.port or 25, timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if parts.scheme == "smtp" and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            if parts.username:
                smtp.login(unquote(parts.username), unquote(parts.password or ""))
            smtp.send_message(mail)

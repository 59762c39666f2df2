"""The SMTP adapter: sends an `email.message.EmailMessage` through the server in `SURGE_SMTP_URL`.

URL forms: `smtp://[user:password@]host[:port]` (plain, port 25), `smtp://…?starttls=true` (upgrade,
port 587 typical), `smtps://…` (implicit TLS, port 465). The stdlib `smtplib` is blocking, so each
send runs in a worker thread with a timeout and never stalls the caller's event loop.
"""
from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit


class SmtpSender:
    transport = "smtp"

    def __init__(self, url: str, timeout_s: float = 10.0):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(f"SURGE_SMTP_URL must be smtp://host[:port] or smtps://host[:port], got {url!r}")
        self.host = parts.hostname
        self.implicit_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        query = parse_qs(parts.query)
        self.starttls = query.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")
        self.timeout_s = timeout_s

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        context = ssl.create_default_context()
        if self.implicit_tls:
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.starttls:
                client.starttls(context=context)
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)

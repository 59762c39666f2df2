"""The local mailbox: every customer notification as a row of `notifications` and, when a directory
is given, an RFC 5322 `.eml` file (stdlib `email`) named by its event id under `<data dir>/mailbox/`.

One notification per outbox event: `event_id` is unique, so a redelivered event finds its row
instead of making another. A row whose `sent_at` is null was recorded but not yet delivered (a crash
between the insert and the send): the consumer sends it again on the next delivery, so sending is
at least once and recording exactly once. The `.eml` file is rewritten whole under the same name
(atomically), so it too exists once per event.
"""
from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import asyncpg

DEFAULT_SENDER = "Surge <orders@surge.local>"


@dataclass(frozen=True)
class MailboxEntry:
    id: int
    event_id: uuid.UUID
    kind: str
    to_email: str
    subject: str
    body: str
    order_number: str | None
    transport: str
    created_at: datetime
    sent_at: datetime | None

    @property
    def sent(self) -> bool:
        return self.sent_at is not None

    def as_dict(self) -> dict:
        return {"id": self.id, "event_id": str(self.event_id), "kind": self.kind, "to_email": self.to_email,
                "subject": self.subject, "body": self.body, "order_number": self.order_number,
                "transport": self.transport, "created_at": self.created_at.isoformat(),
                "sent_at": self.sent_at.isoformat() if self.sent_at else None}


_COLUMNS = "id, event_id, kind, to_email, subject, body, order_number, transport, created_at, sent_at"


def build_message(entry: MailboxEntry, sender: str = DEFAULT_SENDER) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = entry.to_email
    msg["Subject"] = entry.subject
    msg["Date"] = format_datetime(entry.created_at)
    msg["Message-ID"] = make_msgid(idstring=str(entry.event_id), domain="surge.local")
    msg["X-Surge-Event-Id"] = str(entry.event_id)
    msg["X-Surge-Kind"] = entry.kind
    if entry.order_number:
        msg["X-Surge-Order"] = entry.order_number
    msg.set_content(entry.body)
    return msg


class Mailbox:
    def __init__(self, pool: asyncpg.Pool, directory: str | Path | None, sender: str = DEFAULT_SENDER):
        self.pool = pool
        self.directory = Path(directory) if directory else None
        self.sender = sender

    async def record(self, event_id: uuid.UUID | str, kind: str, to_email: str, subject: str, body: str,
                     order_number: str | None, transport: str) -> MailboxEntry:
        """The notification for this event: inserted now, or the one an earlier delivery inserted."""
        row = await self.pool.fetchrow(
            f"""with ins as (
                    insert into notifications (event_id, kind, to_email, subject, body, order_number, transport)
                    values ($1, $2, $3, $4, $5, $6, $7)
                    on conflict (event_id) do nothing
                    returning {_COLUMNS})
                select {_COLUMNS} from ins
                union all
                select {_COLUMNS} from notifications where event_id = $1 and not exists (select 1 from ins)""",
            uuid.UUID(str(event_id)), kind, to_email, subject, body, order_number, transport)
        if row is None:  # a concurrent delivery inserted it after this statement's snapshot was taken
            row = await self.pool.fetchrow(f"select {_COLUMNS} from notifications where event_id = $1",
                                           uuid.UUID(str(event_id)))
        return MailboxEntry(**dict(row))

    def message(self, entry: MailboxEntry) -> EmailMessage:
        return build_message(entry, self.sender)

    async def write_file(self, entry: MailboxEntry) -> Path | None:
        """Write `<dir>/<event_id>.eml` (atomically; the same name on every delivery)."""
        if self.directory is None:
            return None
        data = bytes(self.message(entry))
        return await asyncio.to_thread(self._write, self.directory / f"{entry.event_id}.eml", data)

    @staticmethod
    def _write(path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".eml.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path

    async def deliver(self, entry: MailboxEntry, sender=None) -> bool:
        """Write the entry's .eml and send it (through `sender`, an SmtpSender, when configured) unless
        an earlier delivery did; True when it was delivered now."""
        if entry.sent:
            return False
        await self.write_file(entry)
        if sender is not None:
            await sender.send(self.message(entry))
        await self.mark_sent(entry.id, transport_of(sender))
        return True

    async def mark_sent(self, entry_id: int, transport: str) -> None:
        await self.pool.execute("update notifications set sent_at = now(), transport = $2 where id = $1 and sent_at is null",
                                entry_id, transport)


def transport_of(sender) -> str:
    return sender.transport if sender is not None else "mailbox"


async def list_notifications(pool: asyncpg.Pool, order_number: str | None = None, kind: str | None = None,
                             limit: int = 100, before_id: int | None = None) -> list[MailboxEntry]:
    """Newest first, optionally for one order and/or one kind; `before_id` pages further back."""
    rows = await pool.fetch(
        f"""select {_COLUMNS} from notifications
            where ($1::text is null or order_number = $1) and ($2::text is null or kind = $2)
              and ($3::bigint is null or id < $3)
            order by id desc limit $4""",
        order_number, kind, before_id, limit)
    return [MailboxEntry(**dict(r)) for r in rows]

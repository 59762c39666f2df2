"""The SMTP adapter against a minimal SMTP server on loopback (no stack needed)."""
from __future__ import annotations

import socketserver
import threading
import uuid
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest

from storage.mailbox import MailboxEntry, build_message
from storage.smtp import SmtpSender

pytestmark = pytest.mark.integration


class _Smtp(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 test ESMTP\r\n")
        envelope: dict = {"rcpt": []}
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"MAIL":
                envelope["from"] = line[10:].strip()
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"RCPT":
                envelope["rcpt"].append(line[8:].strip())
                self.wfile.write(b"250 ok\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                envelope["data"] = data
                self.server.received.append(envelope)
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


async def test_a_notification_is_sent_as_a_mail_to_the_customer(smtp_server):
    event_id = uuid.uuid4()
    entry = MailboxEntry(id=1, event_id=event_id, kind="order_paid", to_email="shopper@example.com",
                         subject="Payment received for order ORD-1", body="We have received your payment of $25.99.\n",
                         order_number="ORD-1", transport="smtp", created_at=datetime.now(timezone.utc), sent_at=None)
    await SmtpSender(f"smtp://127.0.0.1:{smtp_server.server_address[1]}").send(build_message(entry))
    [mail] = smtp_server.received
    assert mail["rcpt"] == [b"<shopper@example.com>"]
    msg = message_from_bytes(mail["data"], policy=policy.default)
    assert msg["Subject"] == "Payment received for order ORD-1" and msg["X-Surge-Event-Id"] == str(event_id)
    assert "$25.99" in msg.get_content()


async def test_an_unreachable_smtp_server_raises_so_the_entry_stays_pending():
    from tests.conftest import free_port

    with pytest.raises(OSError):
        await SmtpSender(f"smtp://127.0.0.1:{free_port()}", timeout_s=2).send(build_message(MailboxEntry(
            id=1, event_id=uuid.uuid4(), kind="order_paid", to_email="a@example.com", subject="s", body="b\n",
            order_number=None, transport="smtp", created_at=datetime.now(timezone.utc), sent_at=None)))

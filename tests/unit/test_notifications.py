import pytest

from actors.domain.notifications import KINDS, format_money, render
from storage.smtp import SmtpSender

pytestmark = pytest.mark.unit

BASE = {"number": "ORD-100042", "email": "shopper@example.com", "total_minor": 123456, "currency": "usd"}


@pytest.mark.parametrize("minor,currency,text", [
    (2599, "USD", "$25.99"), (5, "USD", "$0.05"), (0, "EUR", "€0.00"), (123456789, "EUR", "€1,234,567.89"),
    (500, "JPY", "¥500"), (1234, "KWD", "1.234 KWD"), (-150, "GBP", "-£1.50"), (100000, "SEK", "1,000.00 SEK"),
])
def test_money_is_formatted_from_integer_minor_units(minor, currency, text):
    assert format_money(minor, currency) == text


def test_money_refuses_floats():
    with pytest.raises(TypeError):
        format_money(25.99, "USD")


@pytest.mark.parametrize("event_type", sorted(KINDS))
def test_every_order_event_notifies_the_customer_about_that_order(event_type):
    note = render(event_type, {**BASE, "carrier": "UPS", "tracking_number": "1Z999"})
    assert note.kind == KINDS[event_type] and note.to_email == "shopper@example.com"
    assert note.order_number == "ORD-100042" and "ORD-100042" in note.subject and "ORD-100042" in note.body


def test_placed_and_paid_quote_the_total():
    assert "$1,234.56" in render("OrderPlaced", BASE).body
    assert "$1,234.56" in render("OrderPaid", BASE).body


def test_shipped_gives_carrier_and_tracking_number():
    body = render("OrderShipped", {**BASE, "carrier": "DHL", "tracking_number": "JD0140"}).body
    assert "Carrier: DHL" in body and "Tracking number: JD0140" in body


def test_refunded_quotes_the_refund_when_given_else_the_total():
    assert "$10.00" in render("OrderRefunded", {**BASE, "refunded_minor": 1000}).body
    assert "$1,234.56" in render("OrderRefunded", BASE).body


def test_other_events_notify_nobody():
    assert render("StockReserved", BASE) is None and render("OrderFulfilling", BASE) is None


def test_a_notifying_event_without_its_fields_is_an_error():
    with pytest.raises(KeyError):
        render("OrderShipped", BASE)  # no carrier
    with pytest.raises(KeyError):
        render("OrderPaid", {"number": "ORD-1"})


@pytest.mark.parametrize("url,host,port,tls,starttls,user", [
    ("smtp://mail.example.com", "mail.example.com", 25, False, False, None),
    ("smtp://u%40x:p@mail:587?starttls=true", "mail", 587, False, True, "u@x"),
    ("smtps://mail", "mail", 465, True, False, None),
])
def test_smtp_urls(url, host, port, tls, starttls, user):
    s = SmtpSender(url)
    assert (s.host, s.port, s.implicit_tls, s.starttls, s.username) == (host, port, tls, starttls, user)


def test_a_non_smtp_url_is_refused():
    with pytest.raises(ValueError):
        SmtpSender("http://mail.example.com")

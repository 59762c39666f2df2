"""Test-mode card fields (UI_CONTRACT: `card-number`, `card-expiry` MM/YY, `card-cvc`), checked
before any call to the payment provider.

These fields exist only while the provider is the local test server; with live keys the page uses
Stripe's own element and no card number reaches Surge. Pure: no I/O, `today` is passed in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from actors.domain.errors import InvalidCard

_EXPIRY = re.compile(r"^\s*(\d{1,2})\s*/\s*(\d{2}|\d{4})\s*$")
_CVC = re.compile(r"^\d{3,4}$")


@dataclass(frozen=True)
class CardDetails:
    number: str  # digits only
    exp_month: int
    exp_year: int  # four digits
    cvc: str

    @property
    def last4(self) -> str:
        return self.number[-4:]


def luhn_valid(number: str) -> bool:
    """The Luhn check digit of a digits-only string of 12–19 digits."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalize_number(raw: str) -> str:
    """Digits of a card number as typed (spaces and dashes allowed between groups)."""
    return re.sub(r"[\s-]", "", raw or "")


def parse_expiry(raw: str) -> tuple[int, int]:
    """MM/YY (or MM/YYYY) → (month, four-digit year); raises InvalidCard."""
    m = _EXPIRY.match(raw or "")
    if not m:
        raise InvalidCard("The expiry date must read MM/YY.", field="card-expiry")
    month, year = int(m.group(1)), int(m.group(2))
    if len(m.group(2)) == 2:
        year += 2000
    if not 1 <= month <= 12:
        raise InvalidCard("The expiry month must be between 01 and 12.", field="card-expiry")
    return month, year


def validate_card(number: str, expiry: str, cvc: str, today: date) -> CardDetails:
    """The card fields as typed → CardDetails, or InvalidCard naming the first bad field.

    A card is valid through the last day of its expiry month, so MM/YY of the current month passes."""
    digits = normalize_number(number)
    if not digits.isdigit() or not luhn_valid(digits):
        raise InvalidCard("The card number is not valid.", field="card-number")
    month, year = parse_expiry(expiry)
    if (year, month) < (today.year, today.month):
        raise InvalidCard("The card has expired.", field="card-expiry")
    cvc = (cvc or "").strip()
    if not cvc:
        raise InvalidCard("The security code (CVC) is missing.", field="card-cvc")
    if not _CVC.match(cvc):
        raise InvalidCard("The security code (CVC) must be 3 or 4 digits.", field="card-cvc")
    return CardDetails(number=digits, exp_month=month, exp_year=year, cvc=cvc)

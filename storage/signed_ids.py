"""Signed ids that grant a guest access to one cart or one order, and the secrets that sign them.

The API issues them (`serve_app/cart_session.py`, `serve_app/orders_access.py`) and the realtime hub
verifies them, so they live here: the hub may import only `storage/`. Each purpose has its own key,
derived from the deployment's root secret (the JWT key), so a cart token never opens an order.
"""
from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, URLSafeSerializer

CART_PURPOSE = b"surge-cart:"
ORDER_PURPOSE = b"surge-order:"
WAITING_ROOM_PURPOSE = b"surge-waiting-room:"
MAX_TOKEN_LEN = 200


def derived_secret(root: str | None, purpose: bytes) -> str:
    """A signing secret per purpose, derived from the deployment's secret (the JWT key)."""
    if not root:
        raise ValueError("no secret to sign cart and order tokens with: set SURGE_JWT_SECRET")
    return hmac.new(root.encode(), purpose, hashlib.sha256).hexdigest()


class CartTokens:
    def __init__(self, secret: str):
        self._s = URLSafeSerializer(secret, salt="surge-cart")

    def dumps(self, cart_id: str) -> str:
        return self._s.dumps(cart_id)

    def loads(self, token: str | None) -> str | None:
        if not token or len(token) > MAX_TOKEN_LEN:
            return None
        try:
            value = self._s.loads(token)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None


class OrderTokens:
    def __init__(self, secret: str):
        self._s = URLSafeSerializer(secret, salt="surge-order")

    def dumps(self, number: str) -> str:
        return self._s.dumps(number)

    def grants(self, token: str | None, number: str) -> bool:
        if not token or len(token) > MAX_TOKEN_LEN:
            return False
        try:
            return self._s.loads(token) == number
        except BadSignature:
            return False

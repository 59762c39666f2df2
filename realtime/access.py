"""Who may watch a private topic: the hub's authorisation, decided once per subscription.

Credentials (see the protocol in `server.py`):
- an access JWT, sent in the socket's first messages (`{"op": "auth", "token": …}`) by API clients,
  or the `surge_access` session cookie a page's socket carries by itself (cookies ignore ports, so
  the hub on :8765 gets the cookie the API on :8000 set). Never in the URL: query strings end up in
  access logs, proxies and browser history, and a long-lived socket can re-authenticate with a fresh
  token in a message without reconnecting;
- the service token (`SURGE_ADMIN_TOKEN`) counts as an admin, as on the API;
- guests prove a cart or an order with the signed token the API gave them (`grants` in subscribe,
  or the `surge_cart` cookie), verified with the same derived secret (`storage/signed_ids.py`).

Rules: `admin` → admins; `user` → any signed-in user (their own carts and orders); `cart:{id}` and
`order:{number}` → an admin, the customer who owns it, or, for a guest's cart or order only, the
holder of its signed token. Like the API, a deactivated user is refused even with an unexpired
token, and roles come from the database, not from the token.
"""
from __future__ import annotations

import logging
import secrets
import time
import uuid
from dataclasses import dataclass

from storage import live_views
from storage.signed_ids import CartTokens, OrderTokens
from storage.tokens import InvalidToken, TokenConfig, verify_access

log = logging.getLogger("surge.hub")

ACCESS_COOKIE = "surge_access"  # the names serve_app/auth.py and serve_app/cart_session.py set
CART_COOKIE = "surge_cart"
MAX_ID_LEN = 80
IDENTITY, GRANT = "identity", "grant"


@dataclass(frozen=True)
class Identity:
    user_id: str | None  # None: the service token
    role: str
    expires_at: float | None  # when the credential stops being valid (None: the service token)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Gatekeeper:
    def __init__(self, pool, tokens: TokenConfig | None, *, service_token: str | None = None,
                 cart_tokens: CartTokens | None = None, order_tokens: OrderTokens | None = None):
        self.pool = pool
        self.tokens = tokens
        self.service_token = service_token
        self.cart_tokens = cart_tokens
        self.order_tokens = order_tokens

    async def identify(self, token: str | None) -> Identity | None:
        """The caller behind a bearer token, or None when it is not valid (now)."""
        if not token or len(token) > 4096:
            return None
        if self.service_token and secrets.compare_digest(token.encode(), self.service_token.encode()):
            return Identity(None, "admin", None)
        if self.tokens is None or self.pool is None:
            return None
        try:
            claims = verify_access(self.tokens, token)
        except InvalidToken as exc:
            log.info("hub refused a token", extra={"error": str(exc)})
            return None
        state = await live_views.user_auth_state(self.pool, claims.user_id)
        if state is None or state["status"] != "active":
            return None
        return Identity(str(claims.user_id), state["role"], float(claims.expires_at))

    def cart_from_cookie(self, cookie_value: str | None) -> str | None:
        return self.cart_tokens.loads(cookie_value) if self.cart_tokens and cookie_value else None

    async def allows(self, who: Identity | None, topic: str, grant: str | None = None,
                     guest_cart: str | None = None) -> str | None:
        """May `who` (None: anonymous) watch this private topic? `grant` is a signed cart/order token
        sent for this topic; `guest_cart` the cart id of the socket's `surge_cart` cookie. Answers
        IDENTITY (allowed for who they are, until their token expires), GRANT (allowed by a signed
        cart/order token, which does not expire) or None (refused)."""
        if who is not None and who.expires_at is not None and who.expires_at < time.time():
            who = None
        by_identity = IDENTITY if who is not None else None
        if topic == "admin":
            return by_identity if who is not None and who.is_admin else None
        if topic == "user":
            return by_identity if who is not None and who.user_id is not None else None
        kind, _, key = topic.partition(":")
        if kind not in ("cart", "order") or not key or len(key) > MAX_ID_LEN or self.pool is None:
            return None
        if who is not None and who.is_admin:
            return IDENTITY
        exists, owner = await (live_views.cart_owner(self.pool, key) if kind == "cart"
                               else live_views.order_owner(self.pool, key))
        if owner is not None:
            return by_identity if who is not None and who.user_id == owner else None
        if kind == "cart":
            # a guest cart may not be in Postgres yet (no line added); its signed id still proves it
            return GRANT if key in (guest_cart, self.cart_from_cookie(grant)) else None
        granted = exists and self.order_tokens is not None and self.order_tokens.grants(grant, key)
        return GRANT if granted else None


def user_topic(user_id: str) -> str:
    """The hub's internal topic behind a user's `user` subscription."""
    return f"user:{uuid.UUID(user_id)}"

"""Who may watch a private hub topic (realtime/access.py), with the database answers faked."""
import time
import uuid

import pytest

from realtime import access
from realtime.access import GRANT, IDENTITY, Gatekeeper, Identity
from storage.signed_ids import CART_PURPOSE, ORDER_PURPOSE, CartTokens, OrderTokens, derived_secret
from storage.tokens import TokenConfig, encode_access

pytestmark = pytest.mark.unit

ROOT = "unit-test-root-secret-0123456789abcdefXYZ"
SERVICE = "service-token-0123456789abcdef"
OWNER, OTHER = str(uuid.uuid4()), str(uuid.uuid4())
CARTS = {"c_mine": OWNER, "c_guest": None}
ORDERS = {"ORD-1": OWNER, "ORD-2": None}
USERS = {OWNER: ("customer", "active"), OTHER: ("customer", "deactivated")}


@pytest.fixture
def gate(monkeypatch):
    async def cart_owner(_pool, cart_id):
        return cart_id in CARTS, CARTS.get(cart_id)

    async def order_owner(_pool, number):
        return number in ORDERS, ORDERS.get(number)

    async def user_auth_state(_pool, user_id):
        role_status = USERS.get(str(user_id))
        return None if role_status is None else {"role": role_status[0], "status": role_status[1]}

    monkeypatch.setattr(access.live_views, "cart_owner", cart_owner)
    monkeypatch.setattr(access.live_views, "order_owner", order_owner)
    monkeypatch.setattr(access.live_views, "user_auth_state", user_auth_state)
    tokens = TokenConfig(signing_key=ROOT, verification_key=ROOT, issuer="surge", audience="surge-api")
    return Gatekeeper(object(), tokens, service_token=SERVICE,
                      cart_tokens=CartTokens(derived_secret(ROOT, CART_PURPOSE)),
                      order_tokens=OrderTokens(derived_secret(ROOT, ORDER_PURPOSE)))


def customer(user_id=OWNER, expires_in: float = 300) -> Identity:
    return Identity(user_id, "customer", time.time() + expires_in)


async def test_anonymous_callers_get_no_private_topic(gate):
    for topic in ("admin", "user", "cart:c_mine", "cart:c_guest", "order:ORD-1", "order:ORD-2", "nonsense:x"):
        assert await gate.allows(None, topic) is None


async def test_owners_get_their_own_and_strangers_nothing(gate):
    assert await gate.allows(customer(), "cart:c_mine") == IDENTITY
    assert await gate.allows(customer(), "order:ORD-1") == IDENTITY
    assert await gate.allows(customer(OTHER), "cart:c_mine") is None
    assert await gate.allows(customer(OTHER), "order:ORD-1") is None
    assert await gate.allows(customer(), "admin") is None


async def test_admins_and_the_service_token_see_everything(gate):
    service = await gate.identify(SERVICE)
    assert service.is_admin and service.user_id is None
    for topic in ("admin", "cart:c_mine", "order:ORD-2"):
        assert await gate.allows(service, topic) == IDENTITY
    assert await gate.allows(service, "user") is None  # the service token has no carts or orders


async def test_an_expired_identity_is_anonymous(gate):
    assert await gate.allows(customer(expires_in=-1), "order:ORD-1") is None


async def test_signed_ids_open_guest_carts_and_orders_only(gate):
    cart_token, order_token = gate.cart_tokens.dumps("c_guest"), gate.order_tokens.dumps("ORD-2")
    assert await gate.allows(None, "cart:c_guest", grant=cart_token) == GRANT
    assert await gate.allows(None, "cart:c_guest", guest_cart="c_guest") == GRANT
    assert await gate.allows(None, "order:ORD-2", grant=order_token) == GRANT
    assert await gate.allows(None, "order:ORD-1", grant=gate.order_tokens.dumps("ORD-1")) is None  # a customer's order
    assert await gate.allows(None, "cart:c_mine", grant=gate.cart_tokens.dumps("c_mine")) is None  # a customer's cart
    assert await gate.allows(None, "order:ORD-2", grant=cart_token) is None  # a cart token never opens an order
    forged = CartTokens(derived_secret("another-root-secret-0123456789abcdef", CART_PURPOSE)).dumps("c_guest")
    assert await gate.allows(None, "cart:c_guest", grant=forged) is None


async def test_tokens_of_deactivated_or_unknown_users_identify_no_one(gate):
    config = gate.tokens
    assert (await gate.identify(encode_access(config, uuid.UUID(OWNER), "customer"))).user_id == OWNER
    assert (await gate.identify(encode_access(config, uuid.UUID(OWNER), "admin"))).role == "customer"  # the database's role
    assert await gate.identify(encode_access(config, uuid.UUID(OTHER), "customer")) is None
    assert await gate.identify(encode_access(config, uuid.uuid4(), "admin")) is None
    forged = TokenConfig(signing_key="x" * 40, verification_key="x" * 40, issuer="surge", audience="surge-api")
    assert await gate.identify(encode_access(forged, uuid.UUID(OWNER), "admin")) is None

"""The flash-sale waiting room, kept in Valkey so every API replica shares one FIFO queue per SKU.

A shopper turned away by an overloaded replica gets a ticket (the next number of the SKU's queue)
inside a signed token. Tickets are admitted strictly in order: a replica with free capacity moves
the SKU's `admitted` mark forward, never past the last ticket issued. An admitted ticket may
reserve once without counting against the in-flight limit. The moment the SKU sells out, every
waiting ticket's status reads `sold_out`, so nobody waits for stock that is gone.

Keys per SKU: wr:{sku}:issued (last ticket), wr:{sku}:admitted (highest admitted ticket),
wr:{sku}:sold_out (flag), wr:{sku}:used:{n} (ticket n has had its pass). They expire after a day
of inactivity.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import redis.asyncio as aioredis

KEY_TTL_S = 86_400

# Move `admitted` forward by up to ARGV[1] tickets, never past `issued`; returns the new mark.
_ADMIT = """
local issued = tonumber(redis.call('GET', KEYS[1]) or '0')
local admitted = tonumber(redis.call('GET', KEYS[2]) or '0')
local target = math.min(issued, admitted + tonumber(ARGV[1]))
if target > admitted then
  redis.call('SET', KEYS[2], target, 'EX', ARGV[2])
end
return math.max(target, admitted)
"""


@dataclass(frozen=True)
class Ticket:
    sku: str
    number: int
    token: str


@dataclass(frozen=True)
class TicketStatus:
    status: str  # waiting | admitted | sold_out
    position: int  # tickets ahead of this one (0 once admitted)


class InvalidTicket(ValueError):
    pass


class WaitingRoom:
    def __init__(self, redis: aioredis.Redis, secret: str):
        self.redis = redis
        self._secret = secret.encode()
        self._admit = redis.register_script(_ADMIT)

    # --- tokens: "sku.number.signature", verifiable by any replica without a lookup -------------
    def _sign(self, sku: str, number: int) -> str:
        return hmac.new(self._secret, f"{sku}.{number}".encode(), hashlib.sha256).hexdigest()[:32]

    def parse(self, token: str) -> tuple[str, int]:
        try:
            sku, number, sig = token.rsplit(".", 2)
            n = int(number)
        except ValueError:
            raise InvalidTicket("malformed queue token") from None
        if not hmac.compare_digest(sig, self._sign(sku, n)):
            raise InvalidTicket("queue token signature does not match")
        return sku, n

    # --- queue -----------------------------------------------------------------------------------
    async def join(self, sku: str) -> Ticket:
        number = await self.redis.incr(f"wr:{sku}:issued")
        await self.redis.expire(f"wr:{sku}:issued", KEY_TTL_S)
        return Ticket(sku, number, f"{sku}.{number}.{self._sign(sku, number)}")

    async def admit(self, sku: str, slots: int) -> int:
        """Admit up to `slots` more tickets in order; returns the admitted mark."""
        if slots <= 0:
            return int(await self.redis.get(f"wr:{sku}:admitted") or 0)
        return int(await self._admit(keys=[f"wr:{sku}:issued", f"wr:{sku}:admitted"], args=[slots, KEY_TTL_S]))

    async def status(self, token: str) -> TicketStatus:
        return await self._status(*self.parse(token))

    async def _status(self, sku: str, number: int) -> TicketStatus:
        sold_out, admitted = await self.redis.mget(f"wr:{sku}:sold_out", f"wr:{sku}:admitted")
        if sold_out:
            return TicketStatus("sold_out", 0)
        admitted = int(admitted or 0)
        if number <= admitted:
            return TicketStatus("admitted", 0)
        return TicketStatus("waiting", number - admitted - 1)

    async def claim(self, token: str, sku: str) -> bool:
        """True once per admitted ticket for `sku`: the pass past the in-flight limit is single-use,
        so an admitted token replayed (or shared) is an ordinary request again."""
        try:
            ticket_sku, number = self.parse(token)
        except InvalidTicket:
            return False
        if ticket_sku != sku or (await self._status(sku, number)).status != "admitted":
            return False
        return bool(await self.redis.set(f"wr:{sku}:used:{number}", 1, nx=True, ex=KEY_TTL_S))

    async def set_sold_out(self, sku: str, sold_out: bool) -> None:
        if sold_out:
            await self.redis.set(f"wr:{sku}:sold_out", 1, ex=KEY_TTL_S)
        else:
            await self.redis.delete(f"wr:{sku}:sold_out")

"""Account actions behind the auth routes: register, sign in, refresh, sign out, password change
and reset. Handlers call one of these; SQL lives in `storage/`, hashing and tokens too.

Secrets never leave here in the clear except to their owner: refresh and reset tokens are stored
as hashes, and a reset token travels only in the mailbox row (the email)."""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg

from actors.domain.errors import AccountDeactivated, EmailTaken, InvalidCredentials, InvalidToken
from serve_app.ratelimit import RateLimiter, account_key
from serve_app.user_states import UserStates
from storage import session_store, user_store
from storage.crypto import PiiCipher
from storage.mailbox import Mailbox, transport_of
from storage.passwords import PasswordHasher
from storage.settings import AuthSettings
from storage.smtp import SmtpSender
from storage.tokens import TokenConfig, encode_access, hash_token, new_opaque_token

log = logging.getLogger("surge.accounts")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: uuid.UUID
    role: str


class Accounts:
    def __init__(self, pool: asyncpg.Pool, settings: AuthSettings, limiter: RateLimiter, mailbox: Mailbox,
                 sender: SmtpSender | None = None):
        settings.require_secrets()
        self.pool = pool
        self.settings = settings
        self.limiter = limiter
        self.tokens = TokenConfig.from_settings(settings)
        self.hasher = PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)
        self.cipher = PiiCipher.from_spec(settings.pii_keys)
        self.states = UserStates(pool)
        self._background: set[asyncio.Task] = set()
        self.mailbox, self.sender = mailbox, sender  # the reset mail goes out the way order mail does

    # --- registration and sign-in ----------------------------------------------------------
    async def register(self, email: str, password: str, name: str, address: str) -> asyncpg.Record:
        await self.limiter.hit("register", address)
        row = await user_store.create(self.pool, email.strip(), await self.hasher.hash(password), name.strip())
        if row is None:
            raise EmailTaken()
        log.info("user registered", extra={"user_id": str(row["id"])})
        return row

    async def sign_in(self, email: str, password: str, address: str) -> TokenPair:
        """Same work for known and unknown emails: one lookup, one Argon2id verification (against a
        dummy hash when there is no account). Only failures count against the account's limit."""
        await self.limiter.hit("signin_address", address)
        acct = account_key(email)
        await self.limiter.check("signin_account", acct)
        cred = await self._credentials(email)
        verified = await self.hasher.verify(cred["password_hash"] if cred else None, password)
        if not verified.ok:
            await self.limiter.hit("signin_account", acct)
            # the account digest, never the email or password: enough to correlate an attack in logs
            log.info("sign-in refused", extra={"account": acct, "address": address, "known": cred is not None})
            raise InvalidCredentials()
        if cred["status"] != "active":
            raise AccountDeactivated()
        if verified.new_hash:  # parameters changed since this hash was made: upgrade it now
            await user_store.set_password(self.pool, cred["id"], verified.new_hash)
        return await self.issue(cred["id"], cred["role"])

    async def _credentials(self, email: str) -> asyncpg.Record | None:
        # the OAuth2 form's username is free text: what cannot be an email finds no account
        email = email.strip()
        if not email or len(email) > 254 or any(ord(c) < 32 or ord(c) == 127 for c in email):
            return None
        return await user_store.credentials(self.pool, email)

    async def issue(self, user_id: uuid.UUID, role: str, conn=None) -> TokenPair:
        """A new session: an access token and the first refresh token of a new family."""
        refresh = new_opaque_token()
        await session_store.issue(conn or self.pool, user_id, hash_token(refresh), self.settings.refresh_ttl_s)
        return TokenPair(encode_access(self.tokens, user_id, role), refresh, self.tokens.access_ttl_s, user_id, role)

    async def refresh(self, raw_token: str) -> TokenPair:
        new = new_opaque_token()
        rotation = await session_store.rotate(self.pool, hash_token(raw_token), hash_token(new),
                                              self.settings.refresh_ttl_s)
        if rotation.outcome == "reused":
            log.warning("refresh token reused: family revoked",
                        extra={"user_id": str(rotation.user_id), "family_id": str(rotation.family_id)})
        if rotation.outcome != "rotated":
            raise InvalidToken("The refresh token is invalid, expired or revoked.")
        state = await self.states.get(rotation.user_id, fresh=True)
        if state is None or state.status != "active":
            await session_store.revoke_family(self.pool, rotation.family_id)
            raise AccountDeactivated()
        return TokenPair(encode_access(self.tokens, rotation.user_id, state.role), new, self.tokens.access_ttl_s,
                         rotation.user_id, state.role)

    async def sign_out(self, raw_token: str | None) -> None:
        if raw_token:
            await session_store.revoke_by_token(self.pool, hash_token(raw_token))

    # --- passwords -------------------------------------------------------------------------
    async def change_password(self, user_id: uuid.UUID, current: str, new: str) -> TokenPair:
        """Signs out every session (all refresh families) and starts a fresh one."""
        verified = await self.hasher.verify(await user_store.password_hash(self.pool, user_id), current)
        if not verified.ok:
            raise InvalidCredentials("The current password is incorrect.")
        new_hash = await self.hasher.hash(new)
        async with self.pool.acquire() as conn, conn.transaction():
            await user_store.set_password(conn, user_id, new_hash)
            await session_store.revoke_user(conn, user_id)
            state = await user_store.auth_state(conn, user_id)
            return await self.issue(user_id, state["role"], conn)

    async def request_reset(self, email: str, address: str) -> None:
        """Never says whether the email has an account, not even by how long it takes: the caller
        is answered after the rate limits, and the lookup and the mailbox row (kind
        `password_reset`, a single-use token, for a known and active account) happen after."""
        await self.limiter.hit("reset_address", address)
        await self.limiter.hit("reset_account", account_key(email))
        task = asyncio.create_task(self._send_reset(email))
        self._background.add(task)  # held until done, so it is not collected mid-flight
        task.add_done_callback(self._background.discard)

    async def _send_reset(self, email: str) -> None:
        try:
            cred = await self._credentials(email)
            if cred is None or cred["status"] != "active":
                return
            token = new_opaque_token()
            minutes = self.settings.reset_ttl_s // 60
            async with self.pool.acquire() as conn:
                await user_store.create_reset_token(conn, cred["id"], hash_token(token), self.settings.reset_ttl_s)
            # a failure from here on leaves an unused token that expires; the shopper asks again
            entry = await self.mailbox.record(
                uuid.uuid4(), "password_reset", cred["email"], "Reset your Surge password",
                f"Someone asked to reset the password of this account. If it was you, use this code within "
                f"{minutes} minutes:\n\n{token}\n\nor open /reset-password?token={token}\n\n"
                f"If it was not you, ignore this email; your password is unchanged.", None, transport_of(self.sender))
            await self.mailbox.deliver(entry, self.sender)
        except Exception:  # nobody awaits this task: say it here
            log.exception("password reset email not sent")

    async def confirm_reset(self, token: str, new_password: str) -> None:
        new_hash = await self.hasher.hash(new_password)
        async with self.pool.acquire() as conn, conn.transaction():
            user_id = await user_store.consume_reset_token(conn, hash_token(token))
            if user_id is None:
                raise InvalidToken("The reset token is invalid, expired or already used.")
            await user_store.set_password(conn, user_id, new_hash)
            await session_store.revoke_user(conn, user_id)

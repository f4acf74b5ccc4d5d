"""Named ingest tokens in the `ingest_tokens` table: only the SHA-256 of each is stored.

The token itself is printed once, by `queuepulse tokens create`; the service keeps the digests of those not
revoked in memory (app/api/auth.py) and reloads them every few seconds (app/api/queues.py).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db.tables import ingest_tokens

# The name the QUEUEPULSE_INGEST_TOKEN (or the generated data-dir token) goes by, and the one events get
# when sent with the admin token; neither can be a stored token's name.
DEFAULT_TOKEN_NAME = "default"
ADMIN_SOURCE_NAME = "admin"
RESERVED_NAMES = frozenset({DEFAULT_TOKEN_NAME, ADMIN_SOURCE_NAME})
TOKEN_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
# 32 random bytes: as strong as the digest that stands for them.
TOKEN_BYTES = 32


class TokenError(ValueError):
    """A token name that cannot be created or revoked; the message says why."""


class TokenNameTaken(TokenError):
    pass


@dataclass(frozen=True, slots=True)
class TokenRecord:
    name: str
    created_at: datetime
    revoked_at: datetime | None


def token_digest(token: str) -> bytes:
    # surrogatepass: a header decoded as latin-1 never fails to encode, whatever bytes the client sent.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def check_name(name: str) -> None:
    if not TOKEN_NAME_PATTERN.fullmatch(name):
        raise TokenError(
            f"token name {name!r}: use 1 to 64 lowercase letters, digits, '-' or '_', starting with a "
            "letter or digit"
        )
    if name in RESERVED_NAMES:
        raise TokenError(f"token name {name!r} is reserved")


async def create_token(engine: AsyncEngine, name: str) -> str:
    """Store a new token's digest under `name` and return the token (it is not kept anywhere).

    A name is never used twice, revoked or not, so `events.ingested_by` always names one token.
    """
    check_name(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        async with engine.begin() as connection:
            await connection.execute(ingest_tokens.insert().values(name=name, digest=token_digest(token)))
    except IntegrityError as error:
        raise TokenNameTaken(f"a token named {name!r} exists already (names are not reused)") from error
    return token


async def list_tokens(engine: AsyncEngine) -> list[TokenRecord]:
    statement = select(ingest_tokens.c.name, ingest_tokens.c.created_at, ingest_tokens.c.revoked_at)
    async with engine.connect() as connection:
        rows = (await connection.execute(statement.order_by(ingest_tokens.c.name))).all()
    return [TokenRecord(row.name, row.created_at, row.revoked_at) for row in rows]


async def revoke_token(engine: AsyncEngine, name: str) -> TokenRecord:
    """Revoke the named token (revoking it again changes nothing); TokenError if there is none."""
    if name == DEFAULT_TOKEN_NAME:
        raise TokenError(
            "the default token is QUEUEPULSE_INGEST_TOKEN (or the data directory's ingest_token file): "
            "change it there and restart"
        )
    statement = (
        update(ingest_tokens)
        .where(ingest_tokens.c.name == name)
        .values(revoked_at=func.coalesce(ingest_tokens.c.revoked_at, func.now()))
        .returning(ingest_tokens.c.name, ingest_tokens.c.created_at, ingest_tokens.c.revoked_at)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    if row is None:
        raise TokenError(f"no token named {name!r}")
    return TokenRecord(row.name, row.created_at, row.revoked_at)


async def active_digests(engine: AsyncEngine) -> dict[bytes, str]:
    """Digest -> name of every stored token not revoked."""
    statement = select(ingest_tokens.c.digest, ingest_tokens.c.name).where(
        ingest_tokens.c.revoked_at.is_(None)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    return {bytes(row.digest): row.name for row in rows}

"""Named ingest tokens over HTTP (admin scope), the same as `queuepulse tokens`:

  GET  /v1/ingest-tokens                 every token's name and dates (never the token)
  POST /v1/ingest-tokens                 {"name": ...}: a new token, shown in this answer only
  POST /v1/ingest-tokens/{name}/revoke   refuse it from now on (403); the name is not used again

A change made here applies at once; one made by the CLI within app/api/queues.py's REFRESH_SECONDS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import RequireAdmin
from app.api.deps import RequireReady, ServicesDep
from app.db.tokens import (
    DEFAULT_TOKEN_NAME,
    TOKEN_NAME_PATTERN,
    TokenError,
    TokenNameTaken,
    TokenRecord,
    active_digests,
    create_token,
    list_tokens,
    revoke_token,
)
from app.services import Services

router = APIRouter(prefix="/v1", tags=["ingest tokens"])


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=f"^{TOKEN_NAME_PATTERN.pattern}$")


class TokenOut(BaseModel):
    name: str
    created_at: datetime | None = Field(description="null for the default (configured) token")
    revoked_at: datetime | None


class TokensOut(BaseModel):
    tokens: list[TokenOut]


class CreatedToken(TokenOut):
    token: str = Field(description="the secret: shown only here, stored only as its SHA-256")


def _out(record: TokenRecord) -> TokenOut:
    return TokenOut(name=record.name, created_at=record.created_at, revoked_at=record.revoked_at)


async def _reload(services: Services) -> None:
    services.tokens.use_stored(await active_digests(services.engine))


@router.get(
    "/ingest-tokens",
    dependencies=[RequireAdmin, RequireReady],
    response_model=TokensOut,
    responses={401: {}, 403: {}, 503: {}},
)
async def get_tokens(services: ServicesDep) -> TokensOut:
    """The default token (QUEUEPULSE_INGEST_TOKEN or the generated one) and every stored one."""
    stored = [_out(record) for record in await list_tokens(services.engine)]
    return TokensOut(tokens=[TokenOut(name=DEFAULT_TOKEN_NAME, created_at=None, revoked_at=None), *stored])


@router.post(
    "/ingest-tokens",
    dependencies=[RequireAdmin, RequireReady],
    status_code=201,
    response_model=CreatedToken,
    responses={401: {}, 403: {}, 409: {}, 422: {}, 503: {}},
)
async def post_token(body: TokenIn, services: ServicesDep) -> Response:
    """Create a named ingest token; its events are stored with `ingested_by` set to the name."""
    try:
        token = await create_token(services.engine, body.name)
    except TokenNameTaken as error:
        raise HTTPException(409, str(error)) from None
    except TokenError as error:
        raise HTTPException(422, str(error)) from None
    await _reload(services)
    record = next(record for record in await list_tokens(services.engine) if record.name == body.name)
    created = CreatedToken(**_out(record).model_dump(), token=token)
    # The secret must not sit in a shared cache.
    return JSONResponse(
        created.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.post(
    "/ingest-tokens/{name}/revoke",
    dependencies=[RequireAdmin, RequireReady],
    response_model=TokenOut,
    responses={401: {}, 403: {}, 404: {}, 422: {}, 503: {}},
)
async def post_revoke(name: Annotated[str, Path()], services: ServicesDep) -> TokenOut:
    """Revoke a stored token: requests with it get 403 from now on. Revoking twice changes nothing."""
    try:
        record = await revoke_token(services.engine, name)
    except TokenError as error:
        status = 422 if name == DEFAULT_TOKEN_NAME else 404
        raise HTTPException(status, str(error)) from None
    await _reload(services)
    return _out(record)

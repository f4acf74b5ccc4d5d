"""Bearer tokens by scope: ingest, read, admin. Compared by SHA-256 digest in constant time, never logged."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException, Request, status

from app.api.deps import ServicesDep, check_ready
from app.db.tokens import ADMIN_SOURCE_NAME, token_digest
from app.services import Services, Tokens

Scope = Literal["ingest", "read", "admin"]


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _same_digest(presented: bytes, expected: bytes | None) -> bool:
    # Digests of equal length, so the comparison takes the same time whatever the token's length.
    return expected is not None and secrets.compare_digest(presented, expected)


def _matches(presented: str, expected: str | None) -> bool:
    return expected is not None and _same_digest(token_digest(presented), token_digest(expected))


def authorize(tokens: Tokens, scope: Scope, authorization: str | None) -> str | None:
    """Raise 401 without a bearer token, 403 when it does not grant `scope` (the admin token grants all).

    Returns the name of the token that granted an ingest request: the stored token's name, "default" for
    the configured ingest token, "admin" for the admin token. That name is the events' source.
    """
    if scope == "read" and tokens.read is None:
        return None
    presented = _bearer(authorization)
    if presented is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    digest = token_digest(presented)
    # Both digests compared every time, so timing does not tell which token nearly matched; ingest tokens
    # are found by their digest, which says nothing of how close a wrong token came.
    admin = _same_digest(digest, tokens.admin_digest)
    if scope == "ingest":
        name = tokens.named.get(digest)
        if name is not None:
            return name
    elif scope == "read" and _same_digest(digest, tokens.read_digest):
        return scope
    if admin:
        return ADMIN_SOURCE_NAME
    if scope == "ingest" and not tokens.stored_loaded:
        # The database was not read yet (start-up): a source's token must not look revoked meanwhile.
        raise HTTPException(503, "starting: loading the ingest tokens", headers={"Retry-After": "1"})
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"token does not grant the {scope} scope")


def ingest_source(request: Request) -> str:
    """The name of the token an ingest request was granted by (see authorize)."""
    source: str = request.state.ingest_source
    return source


def require(scope: Scope) -> Any:
    async def check(
        request: Request, services: ServicesDep, authorization: Annotated[str | None, Header()] = None
    ) -> None:
        name = authorize(services.tokens, scope, authorization)
        if scope == "ingest":
            request.state.ingest_source = name

    return Depends(check)


def granted(scope: Scope) -> Any:
    """One dependency for the hot routes: the scope's token, then readiness; gives the services.

    FastAPI resolves each dependency and header parameter per request; on the routes that wall screens
    and telephony feeds hit thousands of times a second, one plain function reading the request is
    measurably cheaper than the three separate ones.
    """

    async def services_for(request: Request) -> Services:
        services: Services = request.app.state.services
        name = authorize(services.tokens, scope, request.headers.get("authorization"))
        if scope == "ingest":
            request.state.ingest_source = name
        check_ready(services)
        return services

    return Depends(services_for)


RequireIngest = require("ingest")
RequireRead = require("read")
RequireAdmin = require("admin")
ReadyReader = Annotated[Services, granted("read")]
ReadyIngest = Annotated[Services, granted("ingest")]

"""Bearer tokens by scope: ingest, read, admin. Compared in constant time, never logged."""

from __future__ import annotations

import hashlib
import secrets
from typing import Annotated, Any, Literal

from fastapi import Depends, Header, HTTPException, Request, status

from app.api.deps import Services, ServicesDep, Tokens

Scope = Literal["ingest", "read", "admin"]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def _matches(presented: str, expected: str | None) -> bool:
    # Digests of equal length, so the comparison takes the same time whatever the token's length.
    return expected is not None and secrets.compare_digest(_digest(presented), _digest(expected))


def _bearer(authorization: str | None) -> str | None:
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorize(tokens: Tokens, scope: Scope, authorization: str | None) -> None:
    """Raise 401 without a bearer token, 403 when it does not grant `scope` (the admin token grants all)."""
    if scope == "read" and tokens.read is None:
        return
    presented = _bearer(authorization)
    if presented is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    allowed = (getattr(tokens, scope), tokens.admin)
    # Every candidate is compared, so timing does not tell which token nearly matched.
    if not any([_matches(presented, expected) for expected in allowed]):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token does not grant the {scope} scope")


def require(scope: Scope) -> Any:
    async def check(services: ServicesDep, authorization: Annotated[str | None, Header()] = None) -> None:
        authorize(services.tokens, scope, authorization)

    return Depends(check)


def granted(scope: Scope) -> Any:
    """One dependency for the hot routes: the scope's token, then readiness; gives the services.

    FastAPI resolves each dependency and header parameter per request; on the routes that wall screens
    and telephony feeds hit thousands of times a second, one plain function reading the request is
    measurably cheaper than the three separate ones.
    """

    async def services_for(request: Request) -> Services:
        services: Services = request.app.state.services
        authorize(services.tokens, scope, request.headers.get("authorization"))
        if not services.ready:
            raise HTTPException(503, "starting: replaying today's events", headers={"Retry-After": "1"})
        return services

    return Depends(services_for)


RequireIngest = require("ingest")
RequireRead = require("read")
RequireAdmin = require("admin")
ReadyReader = Annotated[Services, granted("read")]
ReadyIngest = Annotated[Services, granted("ingest")]

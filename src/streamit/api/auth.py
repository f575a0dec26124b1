"""Bearer-token authentication of owner requests (RFC 6750), against :class:`~streamit.db.TokenRepository`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from streamit.db import Database, TokenRecord

SECURITY_SCHEME = "BearerToken"
# Marks an operation whose token is optional in OpenAPI: "{}" is the alternative of no credentials.
OPTIONAL_TOKEN_OPENAPI: dict[str, object] = {"security": [{}]}

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name=SECURITY_SCHEME,
    description="An API token from `streamit tokens create --name NAME`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def missing_token() -> HTTPException:
    """The 401 for a request without a token (RFC 6750 §3: challenge without an error code)."""
    return HTTPException(401, "This endpoint needs an API token.", headers={"WWW-Authenticate": "Bearer"})


def invalid_token() -> HTTPException:
    """The 401 for an unknown or revoked token (RFC 6750 §3.1 ``invalid_token``)."""
    return HTTPException(
        401,
        "The API token is not valid (unknown or revoked).",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def token_dependencies(
    db: Database,
) -> tuple[Callable[..., Awaitable[TokenRecord | None]], Callable[..., Awaitable[TokenRecord]]]:
    """FastAPI dependencies ``(optional_token, required_token)`` checking tokens against ``db``.

    A request that sends a token must send a valid one, also where the token is optional: a client that
    means to act as owner learns about its bad token instead of silently getting the public view.
    """

    async def optional_token(credentials: Credentials) -> TokenRecord | None:
        if credentials is None:
            return None
        record = await db.tokens.verify(credentials.credentials)
        if record is None:
            raise invalid_token()
        return record

    async def required_token(credentials: Credentials) -> TokenRecord:
        if credentials is None:
            raise missing_token()
        record = await optional_token(credentials)
        assert record is not None
        return record

    return optional_token, required_token

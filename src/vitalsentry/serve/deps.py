"""Route dependencies as ``Annotated`` aliases: the scoring service, API-key scopes, limits."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Depends, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.security import APIKeyHeader

from vitalsentry.serve.security import KeyEntry, RateLimiter, find_key, retry_after_header
from vitalsentry.serve.service import ScoringService
from vitalsentry.serve.settings import Settings

API_KEY_HEADER = "X-API-Key"

api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="API key; the server holds its sha256 and scopes in VITALSENTRY_API_KEYS",
)


async def get_service(request: Request) -> ScoringService:
    """Return the app's scoring service; 503 until the bundle is loaded."""
    service: ScoringService | None = request.app.state.service
    if service is None:
        raise HTTPException(status_code=503, detail="the model is not loaded")
    return service


_CHECKED: Final = "vitalsentry.api_key"
"""Scope key holding a request's checked key entry (the check runs once per request)."""


def failed_key_wait(request: Request) -> float:
    """Count a failed key from the request's client; seconds it must wait (0: not limited yet)."""
    limiter: RateLimiter = request.app.state.failed_key_limiter
    return limiter.acquire(request.client.host if request.client else "?")


def _refuse_key(request: Request, detail: str) -> HTTPException:
    """401 for a missing or unknown key, or 429 once the client has failed too often."""
    wait = failed_key_wait(request)
    if wait > 0:
        return HTTPException(
            status_code=429,
            detail="too many requests with a missing or unknown API key",
            headers={"Retry-After": retry_after_header(wait)},
        )
    return HTTPException(status_code=401, detail=detail)


class KeyCheck:
    """Dependency checking the ``X-API-Key`` header, its scope and its rate limit.

    Routes with a body run it before the body is read
    (:class:`~vitalsentry.serve.routes.RustJsonRoute`); it checks a request once.

    Parameters
    ----------
    scope : str or None
        Scope the key must hold; None accepts any valid key.
    """

    def __init__(self, scope: str | None) -> None:
        self.scope = scope

    async def __call__(
        self, request: Request, key: Annotated[str | None, Security(api_key_header)]
    ) -> KeyEntry | None:
        """Return the key's entry (None when keys are not required).

        Raises
        ------
        HTTPException
            401 (no or unknown key; 429 after too many from one client), 403 (scope
            missing) or 429 (the key's rate limit, with Retry-After).
        """
        if _CHECKED in request.scope:
            checked: KeyEntry | None = request.scope[_CHECKED]
            return checked
        settings: Settings = request.app.state.settings
        entry = await self._check(request, key, settings) if settings.require_api_key else None
        request.scope[_CHECKED] = entry
        return entry

    async def _check(self, request: Request, key: str | None, settings: Settings) -> KeyEntry:
        if not key:
            raise _refuse_key(request, f"missing API key (header {API_KEY_HEADER})")
        entry = find_key(key, settings.api_keys)
        if entry is None:
            raise _refuse_key(request, "unknown API key")
        if self.scope is not None and self.scope not in entry.scopes:
            raise HTTPException(
                status_code=403, detail=f"this API key lacks the '{self.scope}' scope"
            )
        limiter: RateLimiter = request.app.state.limiter
        wait = limiter.acquire(entry.key_id)
        if wait > 0:
            raise HTTPException(
                status_code=429,
                detail="rate limit exceeded for this API key",
                headers={"Retry-After": retry_after_header(wait)},
            )
        return entry


def require(scope: str | None) -> KeyCheck:
    """Return the key check for ``scope`` (see :class:`KeyCheck`)."""
    return KeyCheck(scope)


Service = Annotated[ScoringService, Depends(get_service)]
ScoreKey = Annotated[KeyEntry | None, Depends(require("score"))]
AdminKey = Annotated[KeyEntry | None, Depends(require("admin"))]
AnyKey = Annotated[KeyEntry | None, Depends(require(None))]


async def _mc_passes(
    request: Request,
    mc_passes: Annotated[
        int,
        Query(
            ge=0,
            le=1000,
            description="Monte Carlo dropout passes: 0 = off, else ≥ 2 (capped by the server)",
            json_schema_extra={"not": {"const": 1}},  # a spread needs two passes
        ),
    ] = 0,
) -> int:
    """Return the ``mc_passes`` query parameter: one plain whole number, else a 422."""
    given = request.query_params.getlist("mc_passes")
    if len(given) > 1 or (given and not given[0].isdigit()):
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "mc_passes"),
                    "msg": "mc_passes must be given once, as a whole number",
                    "type": "value_error",
                }
            ]
        )
    return mc_passes


McPasses = Annotated[int, Depends(_mc_passes)]

"""HTTP routes: thin wrappers over :class:`~vitalsentry.serve.service.ScoringService`.

Scoring routes await the service's model thread, so the event loop keeps answering
(health checks, other requests) while a model runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, Final

import pydantic_core
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST

from vitalsentry.serve.deps import (
    API_KEY_HEADER,
    AdminKey,
    AnyKey,
    KeyCheck,
    McPasses,
    ScoreKey,
    Service,
)
from vitalsentry.serve.fhir import FhirBundle
from vitalsentry.serve.guard import dependants, reject_unknown_query
from vitalsentry.serve.metrics import ServiceMetrics
from vitalsentry.serve.schemas import (
    BatchRequest,
    BatchResult,
    ErrorMessage,
    Health,
    ModelCard,
    Ready,
    ScoreRequest,
    ScoreResult,
)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "The body could not be read",
        401: "Missing or unknown API key",
        403: "The API key lacks the scope",
        413: "Request body too large",
        415: "The body is not JSON (Content-Type)",
        429: "Rate limit exceeded (see Retry-After)",
        503: "The model is not loaded",
    }
    return {code: {"model": ErrorMessage, "description": text[code]} for code in codes}


KEYED: Final = _errors(401, 403, 429, 503)
WITH_BODY: Final = _errors(400, 401, 403, 413, 415, 429, 503)


class _RustJsonRequest(Request):
    """A request whose JSON body is parsed by pydantic-core (faster than the stdlib's).

    It reads what :func:`json.loads` reads, ``NaN`` and ``±Infinity`` included (pydantic
    then refuses them by field), and fails with :class:`json.JSONDecodeError` as it does.
    """

    async def json(self) -> Any:
        """Return the parsed body (parsed once)."""
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body, allow_inf_nan=True)
            except ValueError as exc:
                raise json.JSONDecodeError(str(exc), body.decode(errors="replace"), 0) from None
        return self._json


def _is_json(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` is JSON (``application/json`` or ``application/*+json``)."""
    media = (content_type or "").partition(";")[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


class RustJsonRoute(APIRoute):
    """Route that checks the API key and the content type first, then reads JSON bodies.

    Its key check (:class:`~vitalsentry.serve.deps.KeyCheck`) runs before the body is
    read, so a request without a valid key gets 401 whatever its body; a body that is
    not JSON gets 415. The body is parsed by :class:`_RustJsonRequest`.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler: key check, content type, then pydantic-core's JSON."""
        handler = super().get_route_handler()
        checks = [dep.call for dep in dependants(self.dependant) if isinstance(dep.call, KeyCheck)]

        async def route(request: Request) -> Response:
            for check in checks:
                await check(request, request.headers.get(API_KEY_HEADER))
            if self.body_field is not None and not _is_json(request.headers.get("content-type")):
                raise HTTPException(
                    status_code=415,
                    detail="Content-Type must be application/json (or application/fhir+json)",
                )
            return await handler(_RustJsonRequest(request.scope, request.receive))

        return route


NO_UNKNOWN_QUERY: Final = [Depends(reject_unknown_query)]
v1 = APIRouter(prefix="/v1", route_class=RustJsonRoute, dependencies=NO_UNKNOWN_QUERY)
ops = APIRouter(tags=["operations"], dependencies=NO_UNKNOWN_QUERY)


@v1.post("/score", responses=WITH_BODY, tags=["scoring"])
async def score(
    _: ScoreKey, service: Service, body: ScoreRequest, mc_passes: McPasses
) -> ScoreResult:
    """Risk of one patient's latest complete window (as ``vitalsentry score`` gives it)."""
    return await service.score(body, mc_passes)


@v1.post("/score/batch", responses=WITH_BODY, tags=["scoring"])
async def score_batch(
    _: ScoreKey, service: Service, body: BatchRequest, mc_passes: McPasses
) -> BatchResult:
    """Risk of several patients, scored in one batched forward pass."""
    return await service.score_batch(body, mc_passes)


@v1.post("/fhir/score", responses=WITH_BODY, tags=["scoring"])
async def score_fhir(
    _: ScoreKey, service: Service, body: FhirBundle, mc_passes: McPasses
) -> BatchResult:
    """Risk of every patient in a FHIR R4 Bundle of vital-sign Observations."""
    return await service.score_fhir(body, mc_passes)


@v1.get("/model", responses=KEYED, tags=["model"])
async def model_card(_: AnyKey, service: Service) -> ModelCard:
    """Model card: version, training data fingerprint, metrics, channels and window."""
    return service.card


@ops.get("/healthz")
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health()


@ops.get("/readyz", responses=_errors(503))
async def readyz(service: Service) -> Ready:
    """Readiness: the bundle is loaded and verified."""
    return Ready(model_version=service.model_version)


@ops.get(
    "/metrics",
    response_model=None,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"},
        **_errors(401, 403, 429),
    },
)
async def metrics(_: AdminKey, request: Request) -> Response:
    """Prometheus metrics in the text format (needs the ``admin`` scope)."""
    collected: ServiceMetrics = request.app.state.metrics
    return Response(collected.exposition(), media_type=CONTENT_TYPE_LATEST)

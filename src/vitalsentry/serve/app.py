"""The FastAPI app: start-up (bundle loaded and verified once), error handlers, middleware.

Every error answer is JSON: ``{"detail": "..."}``, or for 422 ``{"detail": [{"loc",
"msg", "type"}]}`` where ``msg`` starts with the field, e.g.
``readings[12].heart_rate: 900 is outside 20–300 /min``. Inputs are never echoed and
stack traces never leave the server; server logs name patients by keyed hash only.
An unexpected error is a JSON 500 without details (:mod:`vitalsentry.serve.guard`).
"""

from __future__ import annotations

import copy
import gc
import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from uvicorn.config import LOGGING_CONFIG

from vitalsentry import __version__
from vitalsentry.data.schema import CHANNELS, plausible_range_text
from vitalsentry.errors import VitalSentryError
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.combine import self_check
from vitalsentry.serve.guard import CrashGuardMiddleware, QueryRedactingFilter
from vitalsentry.serve.inputs import RequestError, clip, format_loc
from vitalsentry.serve.metrics import MetricsMiddleware, ServiceMetrics
from vitalsentry.serve.monitor_routes import monitor as monitor_routes
from vitalsentry.serve.monitor_service import MonitorMetrics, MonitorService
from vitalsentry.serve.routes import ops, v1
from vitalsentry.serve.security import BodyLimitMiddleware, RateLimiter
from vitalsentry.serve.service import ScoringService
from vitalsentry.serve.settings import ENV_PREFIX, Settings, load_settings
from vitalsentry.web import mount_web

logger = logging.getLogger("vitalsentry.serve")

MAX_REPORTED_ERRORS: Final = 20
"""422 answers list at most this many field errors (plus a count of the rest)."""

MAX_MESSAGE_CHARS: Final = 200
"""Longest error message sent (a longer one is cut): no input is echoed at length."""

_RANGE_ERRORS: Final = frozenset({"greater_than_equal", "less_than_equal"})
NO_BUNDLE: Final = f"no model bundle: set {ENV_PREFIX}BUNDLE or pass --bundle"


def _field_message(error: dict[str, Any]) -> str:
    """Return pydantic's message, or ``900 is outside 20–300 /min`` for a vital out of range."""
    loc, value = error.get("loc", ()), error.get("input")
    name = loc[-1] if loc else None
    if error["type"] in _RANGE_ERRORS and name in CHANNELS and isinstance(value, int | float):
        return f"{value:g} is outside {plausible_range_text(str(name))}"
    if error["type"] == "json_invalid":
        return f"invalid JSON ({error.get('ctx', {}).get('error', 'decode error')})"
    return str(error["msg"]).removeprefix("Value error, ")


def validation_detail(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """422 detail items (no input echoed): ``loc``, ``msg`` prefixed by the field, ``type``."""
    out = []
    for error in errors[:MAX_REPORTED_ERRORS]:
        loc = tuple(clip(p) if isinstance(p, str) else p for p in error.get("loc", ()))
        where = (
            ()
            if error["type"] == "json_invalid"
            else (loc[1:] if loc[:1] == ("body",) and len(loc) > 1 else loc)
        )
        message = _field_message(error)
        out.append(
            {
                "loc": list(loc),
                "msg": clip(
                    f"{format_loc(where)}: {message}" if where else message, MAX_MESSAGE_CHARS
                ),
                "type": error["type"],
            }
        )
    if len(errors) > MAX_REPORTED_ERRORS:
        more = len(errors) - MAX_REPORTED_ERRORS
        out.append({"loc": ["body"], "msg": f"… and {more} more errors", "type": "too_many_errors"})
    return out


def _unprocessable(loc: Sequence[str | int], message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        status_code=422,
        content={
            "detail": [{"loc": list(loc), "msg": clip(message, MAX_MESSAGE_CHARS), "type": kind}]
        },
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": validation_detail(exc.errors())})


async def _on_request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    prefix = () if exc.loc[:1] == ("query",) else ("body",)
    return _unprocessable((*prefix, *exc.loc), str(exc), "value_error")


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    """Bad input found by the pipeline (DataError) or a request the model cannot serve."""
    return _unprocessable(("body",), str(exc), "data_error")


def _load(settings: Settings) -> VitalRiskPipeline:
    if settings.bundle is None:
        raise VitalSentryError(NO_BUNDLE)
    trusted = settings.signing_public_keys if settings.require_signature else None
    return VitalRiskPipeline.from_bundle(settings.bundle, trusted_keys=trusted)


def freeze_loaded_objects() -> None:
    """Keep what is loaded at start-up out of the garbage collector's full passes.

    The model, libraries and stores live as long as the app; a full pass over them (about
    0.4 M objects) stalled every in-flight request for 0.2–0.3 s now and then: the p99 of
    ``benchmarks/bench_api.py`` and ``bench_stream.py``. The app hands them back
    (``gc.unfreeze``) at shutdown.
    """
    gc.collect()
    gc.freeze()


def create_app(
    settings: Settings | None = None, *, pipeline: VitalRiskPipeline | None = None
) -> FastAPI:
    """Build the service.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`load_settings` (the environment).
    pipeline : VitalRiskPipeline, optional
        An already loaded pipeline; otherwise the bundle at ``settings.bundle`` is loaded
        and verified once, at start-up (the app's lifespan).

    Returns
    -------
    FastAPI
        The app; use it as an ASGI app or with ``uvicorn``.

    Raises
    ------
    VitalSentryError
        API keys are required but none is configured, or no bundle is given.
    """
    settings = settings if settings is not None else load_settings()
    if settings.require_api_key and not settings.api_keys:
        raise VitalSentryError(
            f"no API key configured: set {ENV_PREFIX}API_KEYS (entries from `vitalsentry keygen`), "
            f"or {ENV_PREFIX}REQUIRE_API_KEY=false to serve without keys"
        )
    if pipeline is None and settings.bundle is None:
        raise VitalSentryError(NO_BUNDLE)
    metrics = ServiceMetrics()
    monitor_metrics = MonitorMetrics(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            loaded = pipeline if pipeline is not None else await run_in_threadpool(_load, settings)
            await run_in_threadpool(self_check, loaded)  # ready only once it scores
        except VitalSentryError as exc:
            logger.error("cannot start: %s", exc)
            raise
        service = app.state.service = ScoringService(loaded, settings, metrics)
        monitor = app.state.monitor = MonitorService(
            settings, loaded, service.combiner, monitor_metrics, service.pseudonym_key
        )
        monitor.start()
        freeze_loaded_objects()
        logger.info("serving model %s (%s)", loaded.model_version, loaded.bundle.path)
        yield
        gc.unfreeze()
        app.state.service = app.state.monitor = None
        monitor.close()
        service.close()

    app = FastAPI(
        title="vitalsentry",
        version=__version__,
        summary="Calibrated, explained deterioration risk from vital signs",
        lifespan=lifespan,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.failed_key_limiter = RateLimiter(settings.failed_key_limit_per_minute)
    app.state.service = None
    app.include_router(v1)
    app.include_router(monitor_routes)
    app.include_router(ops)
    mount_web(app, settings)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(RequestError, _on_request_error)
    app.add_exception_handler(VitalSentryError, _on_domain_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(CrashGuardMiddleware)
    return app


def log_config() -> dict[str, Any]:
    """Return uvicorn's logging config plus the ``vitalsentry`` logger at INFO.

    The access log never shows query strings (they could carry keys or identifiers).
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"no_query": {"()": QueryRedactingFilter}}
    config["handlers"]["access"]["filters"] = ["no_query"]
    config["loggers"]["vitalsentry"] = {
        "handlers": ["default"],
        "level": "INFO",
        "propagate": False,
    }
    return config


def run(
    bundle: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    trusted_keys: Sequence[Path] | None = None,
) -> None:
    """Serve a bundle with uvicorn (what ``vitalsentry serve`` calls).

    The bundle is verified and the settings checked before the server starts, so a
    missing or tampered bundle or a malformed variable fails here with one line. The
    process (and every worker, through ``OMP_NUM_THREADS``) runs torch with
    ``torch_threads`` intra-op threads.

    Parameters
    ----------
    bundle : path-like
        Model bundle directory (overrides ``VITALSENTRY_BUNDLE``).
    host : str, default "127.0.0.1"
        Interface to listen on.
    port : int, default 8000
        TCP port.
    workers : int, default 1
        Worker processes; each loads the bundle once.
    trusted_keys : sequence of path, optional
        Require a bundle signed by one of these Ed25519 public keys (overrides
        ``VITALSENTRY_REQUIRE_SIGNATURE`` and ``VITALSENTRY_SIGNING_PUBLIC_KEYS``).

    Raises
    ------
    VitalSentryError
        Bad settings, no API key configured, a missing, tampered or unsigned bundle, or
        one that fails the scoring self-check.
    """
    os.environ[f"{ENV_PREFIX}BUNDLE"] = str(Path(bundle).resolve())
    if trusted_keys is not None:
        os.environ[f"{ENV_PREFIX}REQUIRE_SIGNATURE"] = "true"
        keys = ",".join(str(Path(key).resolve()) for key in trusted_keys)
        os.environ[f"{ENV_PREFIX}SIGNING_PUBLIC_KEYS"] = keys
    settings = load_settings()
    if settings.torch_threads:
        os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)
        torch.set_num_threads(settings.torch_threads)
    loaded = _load(settings)
    self_check(loaded)  # a bundle that cannot score fails here, in one line
    app = create_app(settings, pipeline=loaded)
    target: Any = app if workers == 1 else f"{__name__}:create_app"
    uvicorn.run(
        target,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(),
        server_header=False,
    )

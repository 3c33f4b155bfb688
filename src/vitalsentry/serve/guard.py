"""Last-line defences of the service: unexpected errors, the access log, unknown queries.

* :class:`CrashGuardMiddleware` turns any exception that escapes a route into a JSON 500
  without details, closes the connection properly (``Connection: close``) and logs the
  exception's type and frames only, never its message, source lines or locals, which
  could quote input values. Nothing reaches the server's own traceback logging.
* :class:`QueryRedactingFilter` drops query strings and patient ids in paths from
  uvicorn's access log.
* :func:`reject_unknown_query` refuses query parameters a route does not declare.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterator
from typing import Final

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitalsentry.serve.inputs import clip

logger = logging.getLogger("vitalsentry.serve")

INTERNAL_ERROR: Final = "internal server error"


def frames_only(exc: BaseException) -> str:
    """Return the exception's type and where it was raised: ``file:line in function`` per frame."""
    frames = traceback.extract_tb(exc.__traceback__)
    return type(exc).__name__ + "".join(f"\n  {f.filename}:{f.lineno} in {f.name}" for f in frames)


class CrashGuardMiddleware:
    """ASGI middleware answering 500 to anything a route lets escape.

    Parameters
    ----------
    app : ASGI app
        The wrapped app.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; on an escaped exception log it (type, frames) and answer 500."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            logger.error("unhandled %s %s: %s", scope["method"], scope["path"], frames_only(exc))
            if started:  # too late for a status: end the body, the server closes the connection
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            response = JSONResponse(
                {"detail": INTERNAL_ERROR}, status_code=500, headers={"Connection": "close"}
            )
            await response(scope, receive, send)


PATIENT_IN_PATH: Final = re.compile(r"(/patients/)[^/]+")
"""A patient id in a path (``/v1/patients/{id}…``, ``/patients/{id}…``)."""


class QueryRedactingFilter(logging.Filter):
    """Logging filter for uvicorn's access records: no query string, no patient id in the path."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's path argument (``(client, method, path, version, status)``)."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = PATIENT_IN_PATH.sub(r"\1{patient_id}", args[2].partition("?")[0])
            record.args = (args[0], args[1], path, *args[3:])
        return True


def dependants(dependant: Dependant) -> Iterator[Dependant]:
    """Yield ``dependant`` and all its sub-dependencies, depth first."""
    yield dependant
    for sub in dependant.dependencies:
        yield from dependants(sub)


async def reject_unknown_query(request: Request) -> None:
    """Refuse query parameters that the route does not declare (422 naming the first one)."""
    route = request.scope.get("route")
    declared = (
        {param.alias for dep in dependants(route.dependant) for param in dep.query_params}
        if isinstance(route, APIRoute)
        else set()
    )
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", clip(unknown[0])),
                    "msg": "unknown query parameter"
                    + (f" (accepted: {', '.join(sorted(declared))})" if declared else ""),
                    "type": "extra_forbidden",
                }
            ]
        )

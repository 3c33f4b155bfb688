"""Clinician web view: ward overview and patient timeline, served by the service's app.

Server-rendered Jinja2 pages with uPlot (vendored, MIT) for the charts; every asset is
served from the package, nothing from a CDN and no build step. :func:`mount_web` adds it
to the FastAPI app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from vitalsentry.serve.settings import Settings
from vitalsentry.web.pages import router
from vitalsentry.web.session import LoginRequiredError, session_secret

STATIC: Final = Path(__file__).parent / "static"


async def _to_login(request: Request, exc: Exception) -> RedirectResponse:
    return RedirectResponse(request.url_for("web_login_form"), status_code=303)


def mount_web(app: FastAPI, settings: Settings) -> None:
    """Add the web view's pages, its data endpoints and its static files to ``app``."""
    app.state.session_secret = session_secret(settings)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="web-static")
    app.add_exception_handler(LoginRequiredError, _to_login)

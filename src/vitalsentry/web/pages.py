"""Routes of the web view: login, logout, ward overview, patient page, acknowledgement.

Thin: each route reads the monitoring store through :mod:`vitalsentry.web.views` and
renders a template.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from vitalsentry.monitor.db import DatabaseUnavailableError
from vitalsentry.monitor.store import MonitorStore
from vitalsentry.serve.deps import failed_key_wait
from vitalsentry.serve.monitor_routes import AlarmPath, PatientPath
from vitalsentry.serve.monitor_service import RETRY_AFTER_S, MonitorService
from vitalsentry.serve.routes import NO_UNKNOWN_QUERY
from vitalsentry.serve.schemas import LAST_YEAR
from vitalsentry.serve.security import retry_after_header
from vitalsentry.serve.settings import Settings
from vitalsentry.web.session import (
    ApiSession,
    PageSession,
    Session,
    check_csrf,
    check_login_token,
    end_session,
    login_key_id,
    read_session,
    set_login_token,
    start_session,
)
from vitalsentry.web.views import (
    RANGES,
    iso,
    patient_page,
    patient_version,
    timeline_json,
    ward_version,
    ward_view,
)

templates: Final = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False, dependencies=NO_UNKNOWN_QUERY)
T = TypeVar("T")
LAST_EPOCH_S: Final = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()
"""Chart ranges end by then (readings are refused after ``LAST_YEAR``)."""


def EpochQuery(description: str) -> Any:  # noqa: N802 (stands for a Query)
    """Return a finite epoch-seconds query parameter, 1970 to :data:`LAST_EPOCH_S`."""
    return Query(ge=0, le=LAST_EPOCH_S, allow_inf_nan=False, description=description)


def render(
    request: Request, name: str, session: Session | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page; every page gets the session (None before login)."""
    return templates.TemplateResponse(
        request, name, {"session": session, **context}, status_code=status
    )


@router.get("/login", response_class=HTMLResponse, name="web_login_form")
async def login_form(request: Request) -> Response:
    """Show the login form (the ward when a session is already open)."""
    if read_session(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _login_page(request, status=200, error=None)


def _login_page(request: Request, status: int, error: str | None) -> Response:
    """Render the login form with a fresh double-submit token (in the form and a strict cookie)."""
    settings: Settings = request.app.state.settings
    token = secrets.token_urlsafe(24)
    page = render(
        request,
        "login.html",
        None,
        status=status,
        error=error,
        token=token,
        minutes=settings.session_minutes,
    )
    set_login_token(page, token)
    return page


@router.post("/login", response_class=HTMLResponse, name="web_login")
async def login(
    request: Request,
    key: Annotated[str, Form(max_length=256)] = "",
    login_token: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Exchange a key with the ``view`` scope for a session cookie; 401 and the form otherwise.

    A post without the login form's token (from another site, or a stale form) gets 403
    and a fresh form; too many unknown keys from one client get 429, as on the API.
    """
    if not check_login_token(request, login_token):
        return _login_page(request, 403, "The form expired or came from elsewhere: log in again.")
    key_id = login_key_id(request.app.state.settings, key)
    if key_id is None:
        wait = failed_key_wait(request)
        if wait > 0:
            page = _login_page(request, 429, "Too many failed keys: wait, then log in again.")
            page.headers["Retry-After"] = retry_after_header(wait)
            return page
        return _login_page(request, 401, "Unknown key, or the key lacks the view scope.")
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, key_id)
    return response


@router.post("/logout", name="web_logout")
async def logout(
    request: Request, session: PageSession, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """End the session (CSRF-protected) and go back to the login form."""
    check_csrf(session, csrf_token)
    response = RedirectResponse(request.url_for("web_login_form"), status_code=303)
    end_session(response)
    return response


def _monitor(request: Request) -> MonitorService:
    monitor: MonitorService | None = getattr(request.app.state, "monitor", None)
    if monitor is None:
        raise HTTPException(status_code=503, detail="the monitoring mode is not running")
    return monitor


async def _read(request: Request, work: Callable[[MonitorStore], T]) -> T:
    """Run ``work`` on the monitoring store in the threadpool; 503 when the database is down."""
    monitor = _monitor(request)
    try:
        return await run_in_threadpool(lambda: work(monitor.stream().store))
    except DatabaseUnavailableError as exc:
        raise HTTPException(
            status_code=503,
            detail=str(exc),
            headers={"Retry-After": retry_after_header(RETRY_AFTER_S)},
        ) from None


@router.get("/", response_class=HTMLResponse, name="web_ward")
async def ward(request: Request, session: PageSession) -> Response:
    """Show the ward overview: every monitored patient, active alarms first, then by risk."""
    view = await _read(request, ward_view)
    return render(request, "ward.html", session, view=view, rows=view.rows, now_iso=iso(view.now_s))


async def _polled(
    request: Request, version: str, build: Callable[[], Awaitable[Response]]
) -> Response:
    """Answer a polled fragment: 304 while ``version`` matches the client's, else ``build()``."""
    if request.headers.get("if-none-match") == version:
        return Response(status_code=304, headers={"ETag": version})
    page = await build()
    page.headers["ETag"] = version
    page.headers["Cache-Control"] = "private, no-cache"
    return page


@router.get("/ward/rows", response_class=HTMLResponse, name="web_ward_rows")
async def ward_rows_fragment(request: Request, session: ApiSession) -> Response:
    """Render the ward's table rows alone (what the page polls; 304 while nothing changed)."""

    async def build() -> Response:
        view = await _read(request, ward_view)
        return render(request, "_ward_rows.html", session, rows=view.rows)

    return await _polled(request, await _read(request, ward_version), build)


@router.get("/patients/{patient_id}", response_class=HTMLResponse, name="web_patient_page")
async def patient(request: Request, session: PageSession, patient_id: PatientPath) -> Response:
    """Show a patient's state, alarm episodes (with acknowledgement) and timeline charts."""
    page = await _read(request, lambda store: patient_page(store, patient_id))
    if page is None:
        raise HTTPException(status_code=404, detail="patient_id: no readings of this patient")
    return render(request, "patient.html", session, patient_id=patient_id, page=page, ranges=RANGES)


@router.get("/patients/{patient_id}/live", response_class=HTMLResponse, name="web_patient_live")
async def patient_live(request: Request, session: ApiSession, patient_id: PatientPath) -> Response:
    """Render a patient's state and alarm episodes alone (what the patient page polls; 304 idem)."""

    async def build() -> Response:
        page = await _read(request, lambda store: patient_page(store, patient_id))
        if page is None:
            raise HTTPException(status_code=404, detail="patient_id: no readings of this patient")
        return render(request, "_patient_live.html", session, patient_id=patient_id, page=page)

    version = await _read(request, lambda store: patient_version(store, patient_id))
    return await _polled(request, version, build)


@router.get("/patients/{patient_id}/data", name="web_patient_data")
async def patient_data(
    request: Request,
    _: ApiSession,
    patient_id: PatientPath,
    start: Annotated[float, EpochQuery(description="epoch seconds")],
    end: Annotated[float, EpochQuery(description="epoch seconds, after start")],
    columns: Annotated[int, Query(ge=10, le=4000, description="chart width in pixels")] = 1000,
) -> dict[str, Any]:
    """Return the chart data of a range: readings as min/max per pixel column when denser than that."""
    if not end > start:
        raise HTTPException(status_code=422, detail="end: must be after start")
    timeline = await _read(request, lambda store: store.timeline(patient_id, start, end, columns))
    return timeline_json(timeline)


@router.post("/alarms/{alarm_id}/ack", name="web_ack_alarm")
async def ack_alarm(
    request: Request,
    session: PageSession,
    alarm_id: AlarmPath,
    csrf_token: Annotated[str, Form()] = "",
    patient_id: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Acknowledge an alarm episode as the session's key (CSRF-protected), back to the patient."""
    check_csrf(session, csrf_token)
    episode = await _monitor(request).ack(alarm_id, session.key_id)
    target = request.url_for("web_patient_page", patient_id=episode.patient_id)
    return RedirectResponse(f"{target}#alarms-h", status_code=303)

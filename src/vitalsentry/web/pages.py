"""Routes of the web view: login, logout, ward overview, patient page, acknowledgement.

Thin: each route reads the monitoring store through :mod:`vitalsentry.web.views` and
renders a template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from vitalsentry.monitor.store import MonitorStore, UnknownAlarmError
from vitalsentry.serve.settings import Settings
from vitalsentry.web.session import (
    ApiSession,
    PageSession,
    Session,
    check_csrf,
    end_session,
    login_key_id,
    read_session,
    start_session,
)
from vitalsentry.web.views import (
    RANGES,
    iso,
    patient_page,
    timeline_json,
    ward_view,
)

templates: Final = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


def render(
    request: Request, name: str, session: Session | None, status: int = 200, **context: Any
) -> HTMLResponse:
    """Render a page; every page gets the session (None before login)."""
    return templates.TemplateResponse(
        request, name, {"session": session, **context}, status_code=status
    )


@router.get("/login", response_class=HTMLResponse, name="login_form")
async def login_form(request: Request) -> Response:
    """Show the login form (the ward when a session is already open)."""
    if read_session(request) is not None:
        return RedirectResponse("/", status_code=303)
    settings: Settings = request.app.state.settings
    return render(request, "login.html", None, minutes=settings.session_minutes)


@router.post("/login", response_class=HTMLResponse, name="login")
async def login(request: Request, key: Annotated[str, Form(max_length=256)] = "") -> Response:
    """Exchange a key with the ``view`` scope for a session cookie; 401 and the form otherwise."""
    settings: Settings = request.app.state.settings
    key_id = login_key_id(settings, key)
    if key_id is None:
        return render(
            request,
            "login.html",
            None,
            status=401,
            error="Unknown key, or the key lacks the view scope.",
            minutes=settings.session_minutes,
        )
    response = RedirectResponse("/", status_code=303)
    start_session(request, response, key_id)
    return response


@router.post("/logout", name="logout")
async def logout(
    request: Request, session: PageSession, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    """End the session (CSRF-protected) and go back to the login form."""
    check_csrf(session, csrf_token)
    response = RedirectResponse(request.url_for("login_form"), status_code=303)
    end_session(response)
    return response


def _store(request: Request) -> MonitorStore:
    store: MonitorStore | None = getattr(request.app.state, "monitor", None)
    if store is None:
        raise HTTPException(status_code=503, detail="the monitoring store is not open")
    return store


@router.get("/", response_class=HTMLResponse, name="ward")
async def ward(request: Request, session: PageSession) -> Response:
    """Show the ward overview: every monitored patient, active alarms first, then by risk."""
    view = await run_in_threadpool(ward_view, _store(request))
    return render(request, "ward.html", session, view=view, rows=view.rows, now_iso=iso(view.now_s))


@router.get("/ward/rows", response_class=HTMLResponse, name="ward_rows")
async def ward_rows_fragment(request: Request, session: ApiSession) -> Response:
    """Render the ward's table rows alone (what the page polls to update itself)."""
    view = await run_in_threadpool(ward_view, _store(request))
    return render(request, "_ward_rows.html", session, rows=view.rows)


@router.get("/patients/{patient_id}", response_class=HTMLResponse, name="patient_page")
async def patient(request: Request, session: PageSession, patient_id: str) -> Response:
    """Show a patient's state, alarm episodes (with acknowledgement) and timeline charts."""
    page = await run_in_threadpool(patient_page, _store(request), patient_id)
    if page is None:
        raise HTTPException(status_code=404, detail="patient_id: no readings of this patient")
    return render(request, "patient.html", session, patient_id=patient_id, page=page, ranges=RANGES)


@router.get("/patients/{patient_id}/data", name="patient_data")
async def patient_data(
    request: Request,
    _: ApiSession,
    patient_id: str,
    start: Annotated[float, Query(allow_inf_nan=False, description="epoch seconds")],
    end: Annotated[float, Query(allow_inf_nan=False, description="epoch seconds, after start")],
    columns: Annotated[int, Query(ge=10, le=4000, description="chart width in pixels")] = 1000,
) -> dict[str, Any]:
    """Return the chart data of a range: readings as min/max per pixel column when denser than that."""
    if not end > start:
        raise HTTPException(status_code=422, detail="end: must be after start")
    timeline = await run_in_threadpool(_store(request).timeline, patient_id, start, end, columns)
    return timeline_json(timeline)


@router.post("/alarms/{alarm_id}/ack", name="ack_alarm")
async def ack_alarm(
    request: Request,
    session: PageSession,
    alarm_id: int,
    csrf_token: Annotated[str, Form()] = "",
    patient_id: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Acknowledge an alarm episode as the session's key (CSRF-protected), back to the patient."""
    check_csrf(session, csrf_token)
    try:
        episode = await run_in_threadpool(_store(request).ack, alarm_id, session.key_id)
    except UnknownAlarmError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    target = request.url_for("patient_page", patient_id=episode.patient_id)
    return RedirectResponse(f"{target}#alarms-h", status_code=303)

"""Browser sessions of the web view: a signed, expiring cookie in exchange for a ``view`` key.

The cookie holds the key's public id (never the key) and a CSRF token, signed with
:mod:`itsdangerous` under the server's session secret; its age is checked on the server
at every request (``VITALSENTRY_SESSION_MINUTES``), and the key must still be configured
with the ``view`` scope, so removing a key from ``VITALSENTRY_API_KEYS`` ends its sessions.
The cookie is ``HttpOnly`` and ``SameSite=Strict`` (``Secure`` over HTTPS). Every
state-changing form carries the session's CSRF token, compared in constant time; the
login form, before any session, a double-submit token (hidden field + strict cookie).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from vitalsentry.serve.security import find_key
from vitalsentry.serve.settings import Settings

COOKIE: Final = "vitalsentry_session"
LOGIN_COOKIE: Final = "vitalsentry_login"
"""Double-submit token of the login form (a cross-site page cannot log a browser in)."""
VIEW_SCOPE: Final = "view"
OPEN_SESSION: Final = "open"
"""Key id recorded when the service runs without API keys (``REQUIRE_API_KEY=false``)."""


@dataclass(frozen=True)
class Session:
    """An authenticated browser session.

    Attributes
    ----------
    key_id : str
        Public id of the key that logged in (recorded on acknowledgements).
    csrf : str
        Token every state-changing form must send back.
    """

    key_id: str
    csrf: str


class LoginRequiredError(Exception):
    """No valid session: the page answers with the login form (303 to ``/login``)."""


def _serializer(request: Request) -> URLSafeTimedSerializer:
    secret: bytes = request.app.state.session_secret
    return URLSafeTimedSerializer(secret, salt="vitalsentry-web-session")


def session_secret(settings: Settings) -> bytes:
    """Return the configured session secret, or a random one for this process.

    A random secret ends every session at a restart and is not shared between workers:
    set ``VITALSENTRY_SESSION_SECRET`` when running several.
    """
    if settings.session_secret:
        return settings.session_secret.encode()
    return secrets.token_bytes(32)


def login_key_id(settings: Settings, presented: str) -> str | None:
    """Return the public id of a presented key that may open the view, else None.

    The key must hold the ``view`` scope; without required keys every login opens the view.
    """
    if not settings.require_api_key:
        return OPEN_SESSION
    entry = find_key(presented, settings.api_keys)
    if entry is None or VIEW_SCOPE not in entry.scopes:
        return None
    return entry.key_id


def start_session(request: Request, response: Response, key_id: str) -> None:
    """Set the session cookie for ``key_id`` with a fresh CSRF token."""
    settings: Settings = request.app.state.settings
    token = _serializer(request).dumps({"k": key_id, "c": secrets.token_urlsafe(24)})
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.session_minutes * 60,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def set_login_token(response: Response, token: str) -> None:
    """Put the login form's token in a short-lived strict cookie (the form holds it too)."""
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=600, httponly=True, samesite="strict", path="/login"
    )


def check_login_token(request: Request, token: str) -> bool:
    """Whether the form's token is the one in the login cookie (constant-time comparison)."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), token.encode())


def end_session(response: Response) -> None:
    """Delete the session cookie."""
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def _still_allowed(settings: Settings, key_id: str) -> bool:
    if not settings.require_api_key:
        return key_id == OPEN_SESSION
    return any(e.key_id == key_id and VIEW_SCOPE in e.scopes for e in settings.api_keys)


def read_session(request: Request) -> Session | None:
    """Return the request's valid session, or None (no cookie, bad signature, expired, key revoked)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    settings: Settings = request.app.state.settings
    try:
        data = _serializer(request).loads(token, max_age=settings.session_minutes * 60)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not _still_allowed(settings, str(data.get("k"))):
        return None
    return Session(key_id=str(data["k"]), csrf=str(data["c"]))


async def require_session(request: Request) -> Session:
    """Return the session (a dependency), else raise :class:`LoginRequiredError`."""
    session = read_session(request)
    if session is None:
        raise LoginRequiredError
    return session


async def require_api_session(request: Request) -> Session:
    """Return the session (a dependency of the data endpoints), else raise 401 (JSON)."""
    session = read_session(request)
    if session is None:
        raise HTTPException(status_code=401, detail="no valid session: log in at /login")
    return session


def check_csrf(session: Session, token: str) -> None:
    """Raise 403 unless ``token`` is the session's CSRF token (constant-time comparison)."""
    if not hmac.compare_digest(session.csrf.encode(), token.encode()):
        raise HTTPException(status_code=403, detail="csrf_token: missing or does not match")


PageSession = Annotated[Session, Depends(require_session)]
ApiSession = Annotated[Session, Depends(require_api_session)]

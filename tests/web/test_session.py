from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from web_seed import log_in

from vitalsentry.serve.security import parse_key_entries
from vitalsentry.web.session import COOKIE


def _login(client: TestClient, key: str) -> TestClient:
    answer = log_in(client, key)
    assert answer.status_code == 303, answer.text
    return client


def _csrf(client: TestClient) -> str:
    page = client.get("/login", follow_redirects=True)
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def test_login_form_is_served_without_a_session(make_web_client: Callable[..., TestClient]) -> None:
    answer = make_web_client().get("/login")
    assert answer.status_code == 200
    assert 'type="password"' in answer.text and COOKIE not in answer.headers.get("set-cookie", "")


def test_a_view_key_opens_a_strict_httponly_session(
    make_web_client: Callable[..., TestClient], web_keys: dict[str, tuple[str, str]]
) -> None:
    client = make_web_client()
    answer = log_in(client, web_keys["view"][0])
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=43200" in cookie
    assert web_keys["view"][0] not in cookie


@pytest.mark.parametrize("key", ["score", "nonsense"])
def test_keys_without_the_view_scope_are_refused(
    make_web_client: Callable[..., TestClient], web_keys: dict[str, tuple[str, str]], key: str
) -> None:
    presented = web_keys[key][0] if key in web_keys else key
    answer = log_in(make_web_client(), presented)
    assert answer.status_code == 401
    assert "view scope" in answer.text and COOKIE not in answer.headers.get("set-cookie", "")


def test_logout_needs_the_csrf_token(web_client: TestClient) -> None:
    client = web_client
    token = _csrf(client)
    assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"].endswith("/login")
    assert f'{COOKIE}=""' in answer.headers["set-cookie"]


def test_a_tampered_cookie_is_no_session(
    make_web_client: Callable[..., TestClient], web_keys: dict[str, tuple[str, str]]
) -> None:
    client = _login(make_web_client(), web_keys["view"][0])
    client.cookies.set(COOKIE, client.cookies[COOKIE][:-2] + "xx")
    assert client.post("/logout", data={"csrf_token": "x"}).headers["location"].endswith("/login")


def test_removing_the_key_ends_its_sessions(
    make_web_client: Callable[..., TestClient], web_keys: dict[str, tuple[str, str]]
) -> None:
    secret = "s" * 32
    client = _login(make_web_client(session_secret=secret), web_keys["view"][0])
    other = make_web_client(session_secret=secret, api_keys=parse_key_entries(web_keys["score"][1]))
    other.cookies.set(COOKIE, client.cookies[COOKIE])
    assert other.get("/login").status_code == 200  # the form again: no valid session
    assert client.get("/login").status_code == 303  # the original app still accepts it


def test_sessions_expire_on_the_server(
    make_web_client: Callable[..., TestClient],
    web_keys: dict[str, tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import itsdangerous.timed

    client = _login(make_web_client(session_minutes=1), web_keys["view"][0])
    assert client.get("/login").status_code == 303
    now = itsdangerous.timed.TimestampSigner.get_timestamp
    monkeypatch.setattr(
        itsdangerous.timed.TimestampSigner, "get_timestamp", lambda self: now(self) + 61
    )
    assert client.get("/login").status_code == 200


def test_a_login_posted_without_the_forms_token_is_refused(
    make_web_client: Callable[..., TestClient], web_keys: dict[str, tuple[str, str]]
) -> None:
    client = make_web_client()
    answer = client.post("/login", data={"key": web_keys["view"][0], "login_token": "forged"})
    assert answer.status_code == 403 and COOKIE not in answer.headers.get("set-cookie", "")

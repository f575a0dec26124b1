"""Studio sign-in: right, wrong and unknown passwords, cookie flags, login CSRF, the limiter, redirects."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update
from starlette.requests import Request

from streamit.api import create_api_app
from streamit.config import Settings
from streamit.db import Database
from streamit.db.models import WebSessionRow
from streamit.web import install_web
from streamit.web.auth import LoginLimiter, cookie_secure, origin_allowed, safe_next
from streamit.web.studio import BAD_CREDENTIALS, TOO_MANY_ATTEMPTS
from tests.web.test_studio import FAST_HASHER, PASSWORD, Studio, csrf_of, database_url, sign_in, studio

__all__ = ["database_url", "studio"]


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]


def cookie_attributes(header: str) -> dict[str, str]:
    parsed = SimpleCookie()
    parsed.load(header)
    (morsel,) = parsed.values()
    return {key: str(value) for key, value in morsel.items() if value}


async def test_sign_in_sets_a_hardened_session_cookie(studio: Studio) -> None:
    async with studio.client() as client:
        response = await sign_in(client, "Alice")
        assert response.status_code == 303 and response.headers["location"] == "/studio"
        (header,) = set_cookie_headers(response, "streamit_session")
        attributes = cookie_attributes(header)
        assert attributes["httponly"] and attributes["samesite"] == "lax" and attributes["path"] == "/"
        assert "secure" not in attributes  # plain http://: a Secure cookie would never come back
        assert int(attributes["max-age"]) == 7 * 24 * 3600
        token = client.cookies["streamit_session"]
        assert len(token) >= 43
        found = await studio.db.web_sessions.lookup(token)
        assert found is not None and found[1].id == studio.alice.id
        page = await client.get("/studio")
        assert page.status_code == 200 and "Signed in as <strong>alice</strong>" in page.text
        again = await client.get("/studio/login?next=/studio/new")
        assert again.status_code == 303 and again.headers["location"] == "/studio/new"
    user = await studio.db.users.get(studio.alice.id)
    assert user is not None and user.last_login_at is not None


@pytest.mark.parametrize(
    ("settings_url", "base_url"),
    [("https://live.example.com", "http://test"), (None, "https://test")],
)
async def test_cookie_is_secure_over_https_or_behind_an_https_public_url(
    studio: Studio, settings_url: str | None, base_url: str
) -> None:
    studio.settings.public_url = settings_url
    async with studio.client(base_url) as client:
        form = await client.get("/studio/login")
        (login_cookie,) = set_cookie_headers(form, "streamit_login_csrf")
        assert cookie_attributes(login_cookie)["secure"]
        # httpx keeps Secure cookies from http:// responses but does not send them back: copy by hand.
        token = form.cookies["streamit_login_csrf"]
        response = await client.post(
            "/studio/login",
            data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(form.text)},
            headers={"Cookie": f"streamit_login_csrf={token}"},
        )
        assert response.status_code == 303, response.text
        (header,) = set_cookie_headers(response, "streamit_session")
        assert cookie_attributes(header)["secure"]


async def test_wrong_password_and_unknown_user_get_the_same_401(studio: Studio) -> None:
    async with studio.client() as client:
        wrong = await sign_in(client, "alice", "not the password")
        unknown = await sign_in(client, "mallory", PASSWORD)
        for response in (wrong, unknown):
            assert response.status_code == 401
            assert BAD_CREDENTIALS in response.text and 'role="alert"' in response.text
            assert set_cookie_headers(response, "streamit_session") == []
            assert 'name="password"' in response.text  # the form again, to retry
            assert PASSWORD not in response.text and "not the password" not in response.text
        assert 'value="mallory"' in unknown.text
        assert "streamit_session" not in client.cookies
        assert (await client.get("/studio")).status_code == 303


async def test_sign_in_form_needs_its_csrf_cookie_and_token(studio: Studio) -> None:
    async with studio.client() as client:
        form = await client.get("/studio/login")
        token = csrf_of(form.text)
        good = {"username": "alice", "password": PASSWORD, "csrf_token": token}
        # Another site's form: no cookie (SameSite=Strict keeps it home) or a token it had to guess.
        async with studio.client() as stranger:
            assert (await stranger.post("/studio/login", data=good)).status_code == 403
        for data in ({**good, "csrf_token": ""}, {**good, "csrf_token": token + "x"}):
            response = await client.post("/studio/login", data=data)
            assert response.status_code == 403 and "expired or came from another site" in response.text
            form = response  # every refusal hands out a fresh form and cookie
        foreign = await client.post(
            "/studio/login",
            data={**good, "csrf_token": csrf_of(form.text)},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        assert "streamit_session" not in client.cookies
        ok = await client.post("/studio/login", data={**good, "csrf_token": csrf_of(foreign.text)})
        assert ok.status_code == 303
        # The one-use form cookie is dropped after signing in.
        (cleared,) = set_cookie_headers(ok, "streamit_login_csrf")
        assert cookie_attributes(cleared)["max-age"] == "0"


async def test_guessing_is_limited_per_address_and_username(studio: Studio) -> None:
    async with studio.client() as client:
        for _ in range(10):
            assert (await sign_in(client, "alice", "guess guess")).status_code == 401
        blocked = await sign_in(client, "alice", PASSWORD)  # even the right password now
        assert blocked.status_code == 429 and TOO_MANY_ATTEMPTS in blocked.text
        assert 1 <= int(blocked.headers["retry-after"]) <= 301
        assert "streamit_session" not in client.cookies
        assert (await sign_in(client, "ALICE ", PASSWORD)).status_code == 429  # same name, other spelling
        other = await sign_in(client, "root", PASSWORD)
        assert other.status_code == 303


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/studio",
        "/\\evil.example",
        "\\\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        " /studio",
        "/studio\r\nSet-Cookie: x=1",
        "/\tevil",
        "studio",
        "",
    ],
)
async def test_next_never_leaves_the_site(studio: Studio, target: str) -> None:
    async with studio.client() as client:
        form = await client.get("/studio/login", params={"next": target})
        assert form.status_code == 200
        response = await sign_in(client, "alice", next_path=target)
        assert response.status_code == 303
        assert response.headers["location"] == "/studio"


async def test_next_brings_the_user_back_where_they_were(studio: Studio) -> None:
    async with studio.client() as client:
        redirect = await client.get("/studio/new")
        login_url = redirect.headers["location"]
        assert login_url == "/studio/login?next=/studio/new"
        form = await client.get(login_url)
        assert 'name="next" value="/studio/new"' in form.text
        response = await client.post(
            "/studio/login",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrf_token": csrf_of(form.text),
                "next": "/studio/new",
            },
        )
        assert response.headers["location"] == "/studio/new"


async def test_sign_out_ends_the_session(studio: Studio) -> None:
    async with studio.client() as client:
        await sign_in(client, "alice")
        token = client.cookies["streamit_session"]
        csrf = csrf_of((await client.get("/studio")).text)
        response = await client.post("/studio/logout", data={"csrf_token": csrf})
        assert response.status_code == 303 and response.headers["location"] == "/studio/login"
        (cleared,) = set_cookie_headers(response, "streamit_session")
        assert cookie_attributes(cleared)["max-age"] == "0"
        assert await studio.db.web_sessions.lookup(token) is None
        # Replaying the old cookie does not bring the session back.
        async with studio.client(cookies={"streamit_session": token}) as replay:
            assert (await replay.get("/studio")).status_code == 303


async def test_expired_sessions_and_deleted_users_are_signed_out(studio: Studio) -> None:
    async with studio.client() as client:
        await sign_in(client, "alice")
        token = client.cookies["streamit_session"]
        async with studio.db.engine.begin() as conn:
            await conn.execute(
                update(WebSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        assert (await client.get("/studio")).status_code == 303
        await sign_in(client, "alice")
        assert client.cookies["streamit_session"] != token
        assert len(await studio.db.web_sessions.list_for_user(studio.alice.id)) == 1  # expired one purged
        assert (await client.get("/studio")).status_code == 200
        assert await studio.db.users.delete("alice")
        assert (await client.get("/studio")).status_code == 303


async def test_password_change_signs_out_every_browser(studio: Studio) -> None:
    async with studio.client() as client:
        await sign_in(client, "alice")
        assert (await client.get("/studio")).status_code == 200
        assert await studio.db.users.set_password("alice", "a new password")
        assert (await client.get("/studio")).status_code == 303
        assert (await sign_in(client, "alice")).status_code == 401
        assert (await sign_in(client, "alice", "a new password")).status_code == 303


# ---- the pieces on their own -------------------------------------------------------------------------


def test_limiter_window_and_reset() -> None:
    limiter = LoginLimiter(max_failures=3, window=60.0)
    key = ("203.0.113.1", "alice")
    for moment in (0.0, 10.0, 20.0):
        assert limiter.retry_after(key, moment) is None
        limiter.record_failure(key, moment)
    assert limiter.retry_after(key, 21.0) == pytest.approx(39.0)
    assert limiter.retry_after(("203.0.113.2", "alice"), 21.0) is None
    assert limiter.retry_after(key, 60.5) is None  # the first failure left the window
    limiter.record_failure(key, 61.0)
    assert limiter.retry_after(key, 61.0) == pytest.approx(9.0)
    limiter.reset(key)
    assert limiter.retry_after(key, 61.0) is None and len(limiter) == 0


def test_limiter_memory_is_bounded() -> None:
    limiter = LoginLimiter(max_failures=2, window=60.0, max_entries=100)
    for n in range(10_000):
        limiter.record_failure((f"198.51.100.{n % 250}", f"user{n}"), float(n) / 1000)
    assert len(limiter) == 100
    newest = ("198.51.100.249", "user9999")
    limiter.record_failure(newest, 10.0)
    assert limiter.retry_after(newest, 10.0) is not None
    assert limiter.retry_after(("198.51.100.0", "user0"), 10.0) is None
    # Expired entries are dropped when looked at.
    assert limiter.retry_after(newest, 100.0) is None and len(limiter) == 99


def _request(url: str, headers: dict[str, str] | None = None) -> Request:
    parts = urlsplit(url)
    raw = [(b"host", parts.netloc.encode())] + [
        (k.lower().encode(), v.encode()) for k, v in (headers or {}).items()
    ]
    return Request(
        {
            "type": "http",
            "method": "POST",
            "scheme": parts.scheme,
            "server": (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
            "path": parts.path or "/",
            "query_string": b"",
            "headers": raw,
        }
    )


def test_origin_check() -> None:
    plain = Settings()
    proxied = Settings(public_url="https://live.example.com/")
    local = "http://127.0.0.1:8080/studio/new"
    assert origin_allowed(_request(local), plain)  # no Origin header: the token decides
    assert origin_allowed(_request(local, {"Origin": "http://127.0.0.1:8080"}), plain)
    for origin in (
        "http://127.0.0.1:8081",
        "https://127.0.0.1:8080",
        "http://localhost:8080",
        "null",
        "garbage",
    ):
        assert not origin_allowed(_request(local, {"Origin": origin}), plain), origin
    behind_proxy = _request("http://10.0.0.5:8080/studio/new", {"Origin": "https://live.example.com"})
    assert origin_allowed(behind_proxy, proxied)
    assert not origin_allowed(behind_proxy, plain)
    assert origin_allowed(
        _request("https://live.example.com/x", {"Origin": "https://LIVE.example.com:443"}), plain
    )


def test_cookie_secure_rule() -> None:
    assert not cookie_secure(_request("http://localhost:8080/"), Settings())
    assert cookie_secure(_request("https://localhost:8443/"), Settings())
    assert cookie_secure(_request("http://10.0.0.5:8080/"), Settings(public_url="https://live.example.com"))
    assert not cookie_secure(
        _request("http://10.0.0.5:8080/"), Settings(public_url="http://live.example.com")
    )


def test_safe_next_keeps_local_paths() -> None:
    for path in ("/studio", "/studio/streams/a-b?rotated=1", "/watch/x#frag", "/"):
        assert safe_next(path) == path
    assert safe_next(None) == "/studio"
    assert safe_next("/" + "a" * 3000) == "/studio"


@given(st.text(max_size=200))
def test_safe_next_never_names_another_host(value: str) -> None:
    result = safe_next(value)
    assert result == "/studio" or result == value
    parts = urlsplit(result)
    assert result.startswith("/") and not result.startswith("//")
    assert not parts.scheme and not parts.netloc and "\\" not in result
    assert all(ord(ch) > 0x20 and ord(ch) != 0x7F for ch in result)


_FORM_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)


def test_any_sign_in_form_is_refused_cleanly(tmp_path: Path) -> None:
    """Whatever a client posts to the sign-in form, the answer is a refusal, never a server error."""
    with asyncio.Runner() as runner:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}", password_hasher=FAST_HASHER)
        runner.run(db.upgrade())
        runner.run(db.users.create("alice", PASSWORD))
        app = create_api_app(db, Settings(data_dir=tmp_path))
        install_web(app, db, Settings(data_dir=tmp_path))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        token = csrf_of(runner.run(client.get("/studio/login")).text)

        @given(username=_FORM_TEXT, password=_FORM_TEXT, next_path=_FORM_TEXT, use_token=st.booleans())
        @settings(max_examples=60, deadline=None)
        def post(username: str, password: str, next_path: str, use_token: bool) -> None:
            nonlocal token
            data = {"username": username, "password": password, "next": next_path}
            data["csrf_token"] = token if use_token else username
            response = runner.run(client.post("/studio/login", data=data))
            assert response.status_code in {401, 403, 422, 429}, response.text
            assert "streamit_session" not in client.cookies
            if response.status_code != 422:
                token = csrf_of(response.text)
                location = response.headers.get("location")
                assert location is None

        try:
            post()
        finally:
            runner.run(client.aclose())
            runner.run(db.close())

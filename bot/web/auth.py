"""Staff console authentication for the sub-app mounted at `/console`.

* Session cookie `console_session` (HttpOnly, SameSite=Strict, Path=/ so one sign-in
  serves the console, the dashboard and the JSON API; Secure over https) holding a random
  token; the database keeps only its SHA-256 (bot.domain.staff).
* `auth_middleware` lets through the login page, the login API and `/console/static/`;
  everything else needs a live session: API paths (`/console/api/...`, `/console/ws`)
  answer 401 JSON, pages redirect to the login page.
* CSRF: unsafe methods must send `X-CSRF-Token` equal to the session's CSRF token (the
  login and `/api/me` responses carry it). The login API itself, which has no session yet,
  needs `Content-Type: application/json` and `X-Requested-With: console`, which a
  cross-site form cannot send.
* `require_roles(...)` checks the role on every request (the user is re-read from the
  database by the middleware each time, so a role change or deactivation applies at once).
* Issue #22: a session unused for `STAFF_IDLE_MINUTES` (30) ends; `GET /console/api/sessions`
  lists the user's own sessions and `DELETE /console/api/sessions/{id}` ends one. Console
  API calls naming a conversation answer 404 for one outside the user's work
  (bot/domain/staff_access.py); `/console/ws` refuses a foreign `Origin`.
"""

from __future__ import annotations

import functools
import hmac
import json
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from html import escape
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.ext.asyncio import AsyncSession
from yarl import URL

from bot.domain import safe_json, staff, staff_access, two_factor
from bot.domain.enums import StaffRole
from bot.storage.models import StaffSession, StaffUser, utcnow
from bot.web import pages
from bot.web.errors import json_error, read_json, read_json_object
from bot.web.keys import SESSIONS, SETTINGS

CONSOLE_PREFIX = "/console"
LOGIN_PAGE_PATH = f"{CONSOLE_PREFIX}/login"
LOGIN_API_PATH = f"{CONSOLE_PREFIX}/api/login"
API_PREFIX = f"{CONSOLE_PREFIX}/api/"
WS_PATH = f"{CONSOLE_PREFIX}/ws"
STATIC_PREFIX = f"{CONSOLE_PREFIX}/static/"
LOGIN_PAGE_FILE = Path(__file__).parent / "static" / "console" / "login.html"

COOKIE_NAME = "console_session"
# One staff sign-in for the console, the dashboard and the JSON API.
COOKIE_PATH = "/"
CSRF_HEADER = "X-CSRF-Token"
REQUESTED_WITH = "console"  # value of X-Requested-With the login API requires
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The middleware refreshes presence at most this often (each refresh is one UPDATE).
PRESENCE_REFRESH = timedelta(seconds=15)
NO_STORE = {"Cache-Control": "no-store"}

STAFF = web.RequestKey("staff", StaffUser)
STAFF_SESSION = web.RequestKey("staff_session", StaffSession)


class LoginThrottle:
    """Failed sign-ins in the last `window_seconds`, in memory, counted three ways:

    * per (client address, email): after `max_failures` that pair gets 429;
    * per email from any address: after `account_max_failures` the account is locked for
      the rest of the window, even for the right password (bounds guessing spread over
      many addresses; counted for unknown emails too, so it reveals no account);
    * per client address over all emails: after `client_max_failures` that address gets
      429 (one address trying many accounts).

    The client address is the TCP peer (`request.remote`), never a header a client could
    forge (X-Forwarded-For). Behind a reverse proxy every peer is the proxy, so the
    per-address limits become global ones (docs/security.md). Per process; with several
    web replicas each keeps its own count.
    """

    def __init__(
        self,
        max_failures: int = 10,
        window_seconds: float = 900.0,
        account_max_failures: int = 50,
        client_max_failures: int = 30,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.account_max_failures = account_max_failures
        self.client_max_failures = client_max_failures
        self._failures: dict[str, deque[float]] = {}

    @staticmethod
    def _keys(client: str | None, email: str) -> tuple[str, str, str]:
        return f"pair:{client}|{email}", f"account:{email}", f"client:{client}"

    def refusal(self, client: str | None, email: str) -> str | None:
        """Why a sign-in from `client` for `email` is refused now, or None."""
        pair, account, address = self._keys(client, email)
        now = time.monotonic()
        if len(self._recent(pair, now)) >= self.max_failures:
            return "Too many failed sign-ins. Please wait a few minutes."
        if len(self._recent(account, now)) >= self.account_max_failures:
            return "Too many failed sign-ins for this account: it is locked for a few minutes."
        if len(self._recent(address, now)) >= self.client_max_failures:
            return "Too many failed sign-ins from your network. Please wait a few minutes."
        return None

    def failed_login(self, client: str | None, email: str) -> None:
        for key in self._keys(client, email):
            self.failed(key)

    def succeeded(self, client: str | None, email: str) -> None:
        self.reset(self._keys(client, email)[0])

    def _recent(self, key: str, now: float) -> deque[float]:
        failures = self._failures.get(key, deque())
        while failures and failures[0] <= now - self.window_seconds:
            failures.popleft()
        return failures

    def blocked(self, key: str) -> bool:
        return len(self._recent(key, time.monotonic())) >= self.max_failures

    def failed(self, key: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 10_000:  # forget stale keys so memory stays bounded
            self._failures = {k: v for k, v in self._failures.items() if self._recent(k, now)}
        failures = self._recent(key, now)
        failures.append(now)
        self._failures[key] = failures

    def reset(self, key: str) -> None:
        self._failures.pop(key, None)


LOGIN_THROTTLE = web.AppKey("login_throttle", LoginThrottle)


# ---- helpers -----------------------------------------------------------------------------


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == WS_PATH or path.startswith(WS_PATH + "/")


def _is_public(path: str) -> bool:
    return path in (LOGIN_PAGE_PATH, LOGIN_API_PATH) or path.startswith(STATIC_PREFIX)


def is_https(request: web.Request) -> bool:
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return request.secure or forwarded == "https"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        url = URL.build(scheme=scheme, authority=netloc)
    except (TypeError, ValueError):
        return None
    if url.host is None or url.user is not None or url.path not in ("", "/"):
        return None
    port = url.explicit_port or _DEFAULT_PORTS.get(scheme)
    return (scheme, url.host.lower(), port) if port else None


def is_same_origin(request: web.Request, origin: str) -> bool:
    """Whether a browser's `Origin` is this service itself: same scheme (http, or https
    directly or behind a proxy saying so), host and port. `ftp://`, `null`, another port or
    a host that merely ends like ours are not (issue #22)."""
    scheme, sep, netloc = origin.strip().partition("://")
    if not sep or scheme.lower() != ("https" if is_https(request) else "http"):
        return False
    theirs = _origin_key(scheme.lower(), netloc)
    ours = _origin_key(scheme.lower(), request.host)
    return theirs is not None and theirs == ours


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, token: str, ttl: timedelta
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=int(ttl.total_seconds()),
        path=COOKIE_PATH,
        secure=is_https(request),
        httponly=True,
        samesite="Strict",
    )


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.del_cookie(
        COOKIE_NAME,
        path=COOKIE_PATH,
        secure=is_https(request),
        httponly=True,
        samesite="Strict",
    )


def staff_json(user: StaffUser, csrf_token: str) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "role": user.role.value,
        "csrf_token": csrf_token,
    }


def _csrf_failed() -> web.Response:
    return json_error(
        403, "csrf_failed", "The request was refused (CSRF check). Reload the page and try again."
    )


def current_staff(request: web.Request) -> StaffUser:
    """The signed-in user of this request (set by auth_middleware); 401 if there is none."""
    if STAFF not in request:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": {"code": "unauthorized", "message": "Please sign in."}}),
            content_type="application/json",
        )
    return request[STAFF]


def current_session(request: web.Request) -> StaffSession:
    """The console session of this request (its `csrf_token`, `expires_at`); 401 if none."""
    current_staff(request)
    return request[STAFF_SESSION]


def has_role(request: web.Request, *roles: StaffRole) -> bool:
    return STAFF in request and request[STAFF].role in roles


def forbidden_response(request: web.Request, user: StaffUser) -> web.Response:
    message = f"Your role ({user.role.value}) cannot do this."
    if is_api_path(request.path):
        return json_error(403, "forbidden", message)
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not allowed</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>'
        f"<h1>Not allowed</h1><p>Your role ({escape(user.role.value)}) cannot open this page.</p>"
        f'<p><a href="{CONSOLE_PREFIX}/">Back to the console</a></p></body></html>'
    )
    return web.Response(status=403, text=page, content_type="text/html")


def require_roles(*roles: StaffRole) -> Callable[[Handler], Handler]:
    """Handler decorator: only these roles may call it (403 JSON for APIs, HTML for pages)."""
    allowed = frozenset(roles)

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            user = current_staff(request)
            if user.role not in allowed:
                return forbidden_response(request, user)
            return await handler(request)

        return wrapper

    return decorator


# ---- middleware --------------------------------------------------------------------------


def _login_request_ok(request: web.Request) -> bool:
    # No session yet, so no CSRF token: require what only same-origin script can send.
    return request.method in SAFE_METHODS or (
        request.content_type == "application/json"
        and request.headers.get("X-Requested-With") == REQUESTED_WITH
    )


async def load_staff_session(request: web.Request) -> tuple[StaffUser, StaffSession] | None:
    """The signed-in staff user and session behind the cookie (refreshing presence), or None."""
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    async with request.config_dict[SESSIONS]() as db:
        idle = timedelta(minutes=request.config_dict[SETTINGS].staff_idle_minutes)
        found = await staff.session_user(db, token, idle)
        if found is not None:
            seen = found[0].last_seen_at
            now = utcnow()
            if seen is None or now - seen >= PRESENCE_REFRESH:
                await staff.touch_presence(db, found[0].id, now)
        await db.commit()
    return found


def csrf_ok(request: web.Request, staff_session: StaffSession) -> bool:
    """Safe methods pass; unsafe ones must echo the session's CSRF token in a header."""
    if request.method in SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER, "").encode("utf-8")
    return hmac.compare_digest(sent, staff_session.csrf_token.encode("utf-8"))


def csrf_failed() -> web.Response:
    return _csrf_failed()


async def may_read_conversation(request: web.Request, conversation_id: str) -> bool:
    """Whether the signed-in user may read this conversation (bot/domain/staff_access.py)."""
    user = current_staff(request)
    if staff_access.sees_everything(user.role):
        return True
    async with request.config_dict[SESSIONS]() as db:
        return await staff_access.may_read_conversation(db, user, conversation_id)


async def _may_read_conversation_of(request: web.Request, user: StaffUser) -> bool:
    """Console API calls naming a conversation (path or `?conversation_id=`) are for the
    conversations the user may read: others get 404, as an unknown id does, so an agent
    learns nothing of chats outside their work (issue #22)."""
    conversation_id = request.match_info.get("conversation_id") or request.query.get(
        "conversation_id"
    )
    if not conversation_id or staff_access.sees_everything(user.role):
        return True
    async with request.config_dict[SESSIONS]() as db:
        return await staff_access.may_read_conversation(db, user, conversation_id)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if _is_public(path):
        if path == LOGIN_API_PATH and not _login_request_ok(request):
            return _csrf_failed()
        return await handler(request)

    found = await load_staff_session(request)
    if found is None:
        response = (
            json_error(401, "unauthorized", "Please sign in.")
            if is_api_path(path)
            else web.Response(status=302, headers={"Location": LOGIN_PAGE_PATH, **NO_STORE})
        )
        if request.cookies.get(COOKIE_NAME):
            clear_session_cookie(response, request)
        return response

    user, staff_session = found
    if not csrf_ok(request, staff_session):
        return _csrf_failed()
    origin = request.headers.get("Origin")
    if path == WS_PATH and origin is not None and not is_same_origin(request, origin):
        # The console's WebSocket is ours alone: SameSite=Strict is not the only guard (#22).
        return json_error(403, "forbidden_origin", "This site may not open the console.")
    if is_api_path(path) and not await _may_read_conversation_of(request, user):
        return json_error(404, "not_found", "No such conversation in your work.")
    request[STAFF] = user
    request[STAFF_SESSION] = staff_session
    return await handler(request)


# ---- handlers ----------------------------------------------------------------------------


async def login(request: web.Request) -> web.Response:
    try:
        body = await read_json(request)
    except safe_json.BadJson as exc:
        return json_error(
            exc.status, exc.code, f'{exc.message} Send JSON {{"email": ..., "password": ...}}.'
        )
    email = body.get("email") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    if not isinstance(email, str) or not isinstance(password, str):
        return json_error(400, "bad_request", 'Send JSON {"email": ..., "password": ...}.')

    throttle = request.app[LOGIN_THROTTLE]
    client, login_email = request.remote, staff.normalize_email(email)[:254]
    refusal = throttle.refusal(client, login_email)
    if refusal is not None:
        return json_error(429, "rate_limited", refusal)

    old_token = request.cookies.get(COOKIE_NAME)
    async with request.config_dict[SESSIONS]() as db:
        if old_token:
            await staff.end_session(db, old_token)
        user = await staff.authenticate(db, email, password)
        if user is None:
            await db.commit()  # the previous session stays ended
            throttle.failed_login(client, login_email)
            response = json_error(401, "bad_credentials", "Wrong email or password.")
            if old_token:
                clear_session_cookie(response, request)
            return response
        refusal_response = await _second_factor_refusal(request, db, user, body)
        if refusal_response is not None:
            await db.commit()  # the previous session stays ended; a used code stays used
            if refusal_response.status == 401 and body.get("code"):
                throttle.failed_login(client, login_email)  # a wrong code counts as a failure
            if old_token:
                clear_session_cookie(refusal_response, request)
            return refusal_response
        token, csrf_token = await staff.start_session(
            db,
            user,
            staff.SESSION_TTL,
            user_agent=request.headers.get("User-Agent"),
            client_address=client,
        )
        await staff.touch_presence(db, user.id)
        await db.commit()
    throttle.succeeded(client, login_email)
    response = web.json_response(staff_json(user, csrf_token), headers=NO_STORE)
    set_session_cookie(response, request, token, staff.SESSION_TTL)
    return response


async def _second_factor_refusal(
    request: web.Request, db: AsyncSession, user: StaffUser, body: dict[str, Any]
) -> web.Response | None:
    """Why a sign-in with the right password is not complete (two-factor, issue #22)."""
    if two_factor.is_enabled(user):
        code = body.get("code")
        if code is None or code == "":
            return json_error(
                401, "totp_required", "Enter the 6-digit code from your authenticator app."
            )
        if not await two_factor.check_code(db, user, code):
            return json_error(
                401, "bad_totp", "That code is not right. Enter the 6 digits your app shows now."
            )
        return None
    if two_factor.required_for(user, request.config_dict[SETTINGS].staff_2fa):
        return json_error(
            403,
            "totp_setup_required",
            "Admins must sign in with a two-factor code here (STAFF_2FA=required) and yours is "
            "not set up: an operator sets STAFF_2FA=optional while you set it up "
            "(docs/security.md).",
        )
    return None


async def _own_user(request: web.Request, db: AsyncSession) -> StaffUser:
    user = await db.get(StaffUser, current_staff(request).id)
    if user is None:  # removed since the request began
        raise web.HTTPUnauthorized(reason="Please sign in.")
    return user


def _two_factor_json(request: web.Request, user: StaffUser) -> dict[str, Any]:
    return {
        "enabled": two_factor.is_enabled(user),
        "pending": user.totp_secret is not None and not two_factor.is_enabled(user),
        "required": two_factor.required_for(user, request.config_dict[SETTINGS].staff_2fa),
    }


async def two_factor_status(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        user = await _own_user(request, db)
        return web.json_response(_two_factor_json(request, user), headers=NO_STORE)


async def two_factor_setup(request: web.Request) -> web.Response:
    """A new secret for the user's authenticator app (pending until confirmed)."""
    async with request.config_dict[SESSIONS]() as db, db.begin():
        user = await _own_user(request, db)
        secret, uri = await two_factor.begin_setup(db, user)
    return web.json_response({"secret": secret, "otpauth_uri": uri}, headers=NO_STORE)


async def two_factor_confirm(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        user = await _own_user(request, db)
        await two_factor.confirm_setup(db, user, data.get("code"))
        body = _two_factor_json(request, user)
    return web.json_response(body, headers=NO_STORE)


async def two_factor_disable(request: web.Request) -> web.Response:
    data = await read_json_object(request)
    async with request.config_dict[SESSIONS]() as db, db.begin():
        user = await _own_user(request, db)
        await two_factor.disable(
            db, user, data.get("code"), request.config_dict[SETTINGS].staff_2fa
        )
        body = _two_factor_json(request, user)
    return web.json_response(body, headers=NO_STORE)


async def logout(request: web.Request) -> web.Response:
    current_staff(request)
    async with request.config_dict[SESSIONS]() as db:
        await staff.end_session(db, request.cookies.get(COOKIE_NAME, ""))
        await db.commit()
    response = web.Response(status=204, headers=NO_STORE)
    clear_session_cookie(response, request)
    return response


async def me(request: web.Request) -> web.Response:
    user = current_staff(request)
    return web.json_response(staff_json(user, request[STAFF_SESSION].csrf_token), headers=NO_STORE)


def _session_json(staff_session: StaffSession, current: StaffSession) -> dict[str, Any]:
    return {
        "id": staff.session_key(staff_session),
        "current": staff_session.token_hash == current.token_hash,
        "created_at": staff_session.created_at.isoformat(),
        "last_used_at": staff.idle_since(staff_session).isoformat(),
        "expires_at": staff_session.expires_at.isoformat(),
        "user_agent": staff_session.user_agent,
        "client_address": staff_session.client_address,
    }


async def list_sessions(request: web.Request) -> web.Response:
    """The signed-in user's own live sessions (issue #22): where and when, which is this one."""
    user = current_staff(request)
    async with request.config_dict[SESSIONS]() as db:
        rows = await staff.user_sessions(db, user.id)
    current = request[STAFF_SESSION]
    return web.json_response(
        {
            "idle_minutes": request.config_dict[SETTINGS].staff_idle_minutes,
            "sessions": [_session_json(s, current) for s in rows],
        },
        headers=NO_STORE,
    )


async def end_own_session(request: web.Request) -> web.Response:
    """End one of the user's own sessions (another device, or this one: then signed out)."""
    user = current_staff(request)
    key = request.match_info["session_key"]
    async with request.config_dict[SESSIONS]() as db:
        ended = await staff.end_user_session(db, user.id, key)
        await db.commit()
    if not ended:
        return json_error(404, "not_found", "No such session of yours.")
    response = web.Response(status=204, headers=NO_STORE)
    if key == staff.session_key(request[STAFF_SESSION]):
        clear_session_cookie(response, request)
    return response


_PLACEHOLDER_LOGIN = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Staff sign-in</title>'
    "</head><body><h1>Staff sign-in</h1><p>The sign-in page is not installed yet "
    "(bot/web/static/console/login.html).</p></body></html>"
)


async def login_page(_request: web.Request) -> web.StreamResponse:
    if LOGIN_PAGE_FILE.is_file():
        return pages.response(pages.CONSOLE, LOGIN_PAGE_FILE.name, cache="no-cache")
    return web.Response(text=_PLACEHOLDER_LOGIN, content_type="text/html", headers=NO_STORE)


async def _prepare_hashing(_app: web.Application) -> None:
    await staff.prepare_password_hashing()


def setup_auth(app: web.Application) -> None:
    """Add the auth middleware (once) and the login/logout/me routes to the console sub-app."""
    if auth_middleware not in app.middlewares:
        app.middlewares.append(auth_middleware)
    app[LOGIN_THROTTLE] = LoginThrottle()
    app.on_startup.append(_prepare_hashing)
    app.router.add_get("/login", login_page)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_get("/api/me", me)
    app.router.add_get("/api/sessions", list_sessions)
    app.router.add_delete("/api/sessions/{session_key}", end_own_session)
    app.router.add_get("/api/2fa", two_factor_status)
    app.router.add_post("/api/2fa/setup", two_factor_setup)
    app.router.add_post("/api/2fa/confirm", two_factor_confirm)
    app.router.add_post("/api/2fa/disable", two_factor_disable)

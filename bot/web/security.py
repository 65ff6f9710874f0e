"""Security headers on every response of the web service (docs/security.md).

Set from `on_response_prepare`, so they are on every response whatever produced it:
handlers, static files, redirects, JSON errors made by middlewares, the router's own
404/405 and WebSocket handshakes.

* CSP without inline scripts or styles, `eval` or plugins; scripts, styles, images and
  fonts from this origin only; WebSockets to this host only.
* No framing at all (`frame-ancestors 'none'`, `X-Frame-Options: DENY`): the widget is a
  script on the shop's page, not a frame, and no page of ours is meant to be embedded.
* `widget.js` and `widget.css` are loaded by the shops' pages (another origin): they are
  the only responses with `Cross-Origin-Resource-Policy: cross-origin`.
* HSTS only over https (directly or behind a proxy sending `X-Forwarded-Proto: https`).
* JSON is never cached (transcripts, exports, customer data).
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.web.auth import is_https

CROSS_ORIGIN_ASSETS = frozenset({"/widget.js", "/widget.css"})
HSTS = "max-age=31536000; includeSubDomains"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
SERVER_NAME = "shop-feedback"
# A Host header we are willing to repeat inside the CSP (no spaces, quotes or semicolons).
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


def content_security_policy(host: str | None) -> str:
    # 'self' covers ws:/wss: to the same host in CSP Level 3; the explicit sources are for
    # browsers that predate it. A Host header that could smuggle a directive is not used.
    sockets = f" ws://{host} wss://{host}" if host and _SAFE_HOST.match(host) else ""
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            f"connect-src 'self'{sockets}",
            "manifest-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            "object-src 'none'",
            "frame-src 'none'",
            "frame-ancestors 'none'",
        )
    )


def apply_security_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(request.host))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault(
        "Cross-Origin-Resource-Policy",
        "cross-origin" if request.path in CROSS_ORIGIN_ASSETS else "same-origin",
    )
    if isinstance(request, web.Request) and is_https(request):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if (response.content_type or "").endswith("json"):
        headers.setdefault("Cache-Control", "no-store")
    headers["Server"] = SERVER_NAME  # not aiohttp's name and version


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    apply_security_headers(request, response)

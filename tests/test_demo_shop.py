"""The demo shop (bot/web/demo_shop.py) over HTTP, mounted as a sub-app the way the web
service does. The widget it embeds, in a real browser: tests/test_widget_browser.py.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from typing import TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.domain.identity import check_token
from bot.web.app import security_headers
from bot.web.demo_shop import FEATURED_SKUS, create_demo_shop

SECRET = "test-widget-secret-that-is-long-enough-0123456789"
IDENTITY = re.compile(r'<script src="/widget\.js"([^>]*)></script>')

T = TypeVar("T")


# ---- the demo shop over HTTP -------------------------------------------------------------


def _site() -> web.Application:
    app = web.Application(middlewares=[security_headers])
    app.add_subapp("/demo/shop", create_demo_shop(SECRET))
    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(_site())) as test_client:
        yield test_client


async def _get(
    client: TestClient[web.Request, web.Application], path: str, customer: str | None = None
) -> tuple[int, str]:
    headers = {"Cookie": f"demo_customer={customer}"} if customer is not None else {}
    response = await client.get(path, headers=headers, allow_redirects=False)
    return response.status, await response.text()


def _widget_attributes(page: str) -> str:
    tags = IDENTITY.findall(page)
    assert len(tags) == 1, "every page carries exactly one widget tag"
    attributes: str = tags[0]
    return attributes


def _identity_token(page: str) -> str | None:
    found = re.search(r'data-identity="([^"]*)"', _widget_attributes(page))
    return found.group(1) if found else None


def _assert_csp_friendly(page: str) -> None:
    assert "<style" not in page
    assert " style=" not in page
    assert re.search(r"<script(?![^>]*\ssrc=)", page) is None, "no inline scripts"
    assert re.search(r"\son[a-z]+=", page) is None, "no inline event handlers"


async def test_home_lists_products_and_demo_logins_without_identity(
    client: TestClient[web.Request, web.Application],
) -> None:
    status, page = await _get(client, "/demo/shop/")
    assert status == 200
    for sku in FEATURED_SKUS:
        assert f'href="/demo/shop/product/{sku}"' in page
    assert page.count('class="card"') == 6
    for customer, name in (("C1001", "Jane Doe"), ("C1002", "Tom Becker"), ("C1003", "Priya Shah")):
        assert f'href="/demo/shop/login?customer={customer}"' in page
        assert name in page
    assert "Not signed in" in page
    assert "Signed in as" not in page
    attributes = _widget_attributes(page)
    assert "data-identity" not in attributes
    assert 'data-title="Help with your order"' in attributes
    assert attributes.endswith(" defer")
    assert '<link rel="stylesheet" href="/demo/shop/shop.css">' in page
    _assert_csp_friendly(page)


async def test_pages_are_not_cached_and_keep_the_site_csp(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/demo/shop/", headers={"Cookie": "demo_customer=C1001"})
    assert response.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    css = await client.get("/demo/shop/shop.css")
    assert css.status == 200
    assert css.content_type == "text/css"


async def test_login_sets_a_lax_httponly_cookie_and_redirects_home(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get("/demo/shop/login?customer=C1001", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/demo/shop/"
    cookie = SimpleCookie(response.headers["Set-Cookie"])["demo_customer"]
    assert cookie.value == "C1001"
    assert cookie["httponly"]
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/demo/shop"


async def test_signed_in_pages_carry_a_valid_identity_token(
    client: TestClient[web.Request, web.Application],
) -> None:
    for path in ("/demo/shop/", "/demo/shop/product/KIT-0142", "/demo/shop/orders"):
        status, page = await _get(client, path, "C1001")
        assert status == 200, path
        assert "Signed in as C1001" in page
        token = _identity_token(page)
        assert token, path
        check = check_token(SECRET, token)
        assert check.problem is None
        assert check.claims is not None and check.claims.external_id == "C1001"
        assert check_token("another-secret-that-is-also-long-enough-0123", token).claims is None
        _assert_csp_friendly(page)


async def test_token_expires_in_an_hour(
    client: TestClient[web.Request, web.Application],
) -> None:
    import jwt

    _status, page = await _get(client, "/demo/shop/", "C1002")
    token = _identity_token(page)
    assert token is not None
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="shop-chat")
    assert claims["sub"] == "C1002"
    assert 3500 <= claims["exp"] - time.time() <= 3600
    assert (claims["name"], claims["email"]) == ("Tom Becker", "tom.becker@example.com")
    _status, page = await _get(client, "/demo/shop/", "C9999")  # not one of the demo three
    token = _identity_token(page)
    assert token is not None
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="shop-chat")
    assert claims["sub"] == "C9999" and "name" not in claims and "email" not in claims


@pytest.mark.parametrize(
    "value",
    ["c1001", "C10011", "C100", "X1001", "C1001x", "C１００１", '"<script>alert(1)</script>"', ""],
)
async def test_bad_cookie_values_count_as_signed_out(
    client: TestClient[web.Request, web.Application], value: str
) -> None:
    status, page = await _get(client, "/demo/shop/", value)
    assert status == 200
    assert "Signed in as" not in page
    assert _identity_token(page) is None
    assert "<script>alert(1)" not in page


@pytest.mark.parametrize("value", ["C1001<b>", "admin", "C12", "C1001&x=1"])
async def test_login_refuses_bad_customer_ids(
    client: TestClient[web.Request, web.Application], value: str
) -> None:
    response = await client.get(
        "/demo/shop/login", params={"customer": value}, allow_redirects=False
    )
    assert response.status == 400
    assert "Set-Cookie" not in response.headers
    page = await response.text()
    assert "<b>" not in page


async def test_logout_clears_the_cookie(
    client: TestClient[web.Request, web.Application],
) -> None:
    response = await client.get(
        "/demo/shop/logout", headers={"Cookie": "demo_customer=C1001"}, allow_redirects=False
    )
    assert response.status == 302
    assert response.headers["Location"] == "/demo/shop/"
    cookie = SimpleCookie(response.headers["Set-Cookie"])["demo_customer"]
    assert cookie.value == ""
    assert cookie["max-age"] == "0"
    assert cookie["path"] == "/demo/shop"


async def test_product_pages_escape_names_and_unknown_skus_are_404(
    client: TestClient[web.Request, web.Application],
) -> None:
    status, page = await _get(client, "/demo/shop/product/KIT-0166")
    assert status == 200
    assert "Damascus Chef&#x27;s Knife 20 cm" in page
    assert "Chef's" not in page
    status, page = await _get(client, "/demo/shop/product/HOM-0236")
    assert status == 200
    assert "Soy Candle Fig &amp; Cedar 220 g" in page
    assert "Fig & Cedar" not in page
    response = await client.get("/demo/shop/product/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "not_found"
    assert "<script>" not in json.dumps(body)


async def test_orders_page_shows_only_the_signed_in_customers_orders(
    client: TestClient[web.Request, web.Application],
) -> None:
    _status, page = await _get(client, "/demo/shop/orders", "C1002")
    assert "A10003" in page and "A10004" in page
    assert "A10001" not in page and "A10005" not in page
    _status, page = await _get(client, "/demo/shop/orders")
    assert "Sign in to see your orders" in page
    assert "A1000" not in page
    _status, page = await _get(client, "/demo/shop/orders", "C9999")
    assert "no orders yet" in page
    assert "Signed in as C9999" in page

"""A sample shop that embeds the chat widget the way a real shop would (mounted at /demo/shop).

The pages are server-rendered with `html.escape` on every interpolated value; there is no
inline style or script (the site's CSP forbids them). "Signing in" is a demo cookie
`demo_customer=C1001`; a signed-in page's widget tag carries an identity token made with
`bot.domain.identity.issue_token`, exactly what a shop's backend does (docs/widget.md).

The orders shown on "My orders" are the fixed README orders of the demo data (bot/demo/)
as they are when the demo data is loaded; this sample shop has no database of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from html import escape
from pathlib import Path

from aiohttp import web

from bot.demo.data import PRODUCT_BY_SKU, Product
from bot.domain.identity import issue_token
from bot.web.errors import json_error

COOKIE = "demo_customer"
CUSTOMER_ID = re.compile(r"C[0-9]{4}")
TOKEN_TTL = timedelta(hours=1)
WIDGET_TITLE = "Help with your order"
STYLESHEET = Path(__file__).parent / "static" / "demo" / "shop.css"
WIDGET_SECRET = web.AppKey("demo_shop_widget_secret", str)

FEATURED_SKUS = ("KIT-0142", "KIT-0166", "HOM-0241", "HOM-0203", "CLO-0107", "CLO-0131")

DESCRIPTIONS = {
    "kitchen": "Made to last for decades of everyday cooking. Dishwasher-safe unless noted; "
    "two-year warranty.",
    "home": "Natural materials, calm colours, made in small batches in Portugal and Lithuania. "
    "Free returns within 30 days.",
    "clothing": "Cut for a relaxed fit from natural fibres. See the size guide before you order; "
    "free exchanges within 30 days.",
    "coffee": "Roasted weekly in Berlin and shipped within two days of roasting.",
}


@dataclass(frozen=True)
class DemoCustomer:
    external_id: str
    name: str
    email: str


@dataclass(frozen=True)
class DemoOrder:
    number: str
    customer: str
    status: str
    skus: tuple[str, ...]
    note: str


DEMO_CUSTOMERS = (
    DemoCustomer("C1001", "Jane Doe", "jane.doe@example.com"),
    DemoCustomer("C1002", "Tom Becker", "tom.becker@example.com"),
    DemoCustomer("C1003", "Priya Shah", "priya.shah@example.com"),
)
CUSTOMERS = {c.external_id: c for c in DEMO_CUSTOMERS}

# Mirrors `readme_orders` in bot/demo/planner.py (status as loaded; chat actions may change them).
DEMO_ORDERS = (
    DemoOrder("A10001", "C1001", "Delivered", ("KIT-0142", "HOM-0257"), "Delivered by DHL"),
    DemoOrder("A10002", "C1001", "Placed", ("CLO-0107",), "Not shipped yet"),
    DemoOrder("A10003", "C1002", "Shipped", ("KIT-0166", "KIT-0188"), "On its way with DPD"),
    DemoOrder("A10004", "C1002", "Cancelled", ("CLO-0131",), "Cancelled by you"),
    DemoOrder("A10005", "C1003", "Refunded", ("HOM-0241",), "Returned and refunded"),
    DemoOrder("A10006", "C1003", "Delivered", ("HOM-0203", "HOM-0218"), "Delivered by PostNL"),
)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _price(amount: Decimal) -> str:
    return f"€{amount:,.2f}"


def signed_in_customer(request: web.Request) -> str | None:
    """The demo cookie's customer id, or None when absent or not `C` + 4 digits."""
    value = request.cookies.get(COOKIE)
    if value is None or CUSTOMER_ID.fullmatch(value) is None:
        return None
    return value


def _url(request: web.Request, name: str, **parts: str) -> str:
    return str(request.app.router[name].url_for(**parts))


def _widget_tag(request: web.Request, customer: str | None) -> str:
    attributes = [f'src="{_e("/widget.js")}"']
    if customer is not None:
        # Like a real shop, pass the name and email the shop knows (optional claims).
        known = CUSTOMERS.get(customer)
        token = issue_token(
            request.app[WIDGET_SECRET],
            customer,
            ttl=TOKEN_TTL,
            name=known.name if known else None,
            email=known.email if known else None,
        )
        attributes.append(f'data-identity="{_e(token)}"')
    attributes.append(f'data-title="{_e(WIDGET_TITLE)}"')
    return f"<script {' '.join(attributes)} defer></script>"


def _page(
    request: web.Request, title: str, body: str, *, status: int = 200, heading: str | None = None
) -> web.Response:
    customer = signed_in_customer(request)
    if customer is None:
        account = (
            f'<span class="account__who">Not signed in</span> '
            f'<a href="{_e(_url(request, "login"))}">Sign in</a>'
        )
    else:
        known = CUSTOMERS.get(customer)
        who = f"Signed in as {customer}" + (f" ({known.name})" if known else "")
        account = (
            f'<span class="account__who">{_e(who)}</span> '
            f'<a href="{_e(_url(request, "logout"))}">Sign out</a>'
        )
    html = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{_e(title)} · Fernweh Living (demo shop)</title>
  <link rel="stylesheet" href="{_e(_url(request, "stylesheet"))}">
</head>
<body>
  <header class="site">
    <a class="site__logo" href="{_e(_url(request, "home"))}">Fernweh Living</a>
    <nav class="site__nav" aria-label="Shop">
      <a href="{_e(_url(request, "home"))}">Shop</a>
      <a href="{_e(_url(request, "orders"))}">My orders</a>
    </nav>
    <p class="account">{account}</p>
  </header>
  <p class="demo-note">This is a demo shop for trying the chat widget. Nothing can be bought here.</p>
  <main class="content">
    <h1>{_e(heading or title)}</h1>
{body}
  </main>
  <footer class="site-footer">Fernweh Living · kitchen, home and clothing · demo data only</footer>
  {_widget_tag(request, customer)}
</body>
</html>
"""
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    # The page may carry a customer's identity token: never cache it anywhere.
    response.headers["Cache-Control"] = "no-store"
    return response


def _product_card(request: web.Request, product: Product) -> str:
    link = _url(request, "product", sku=product.sku)
    return f"""      <li class="card">
        <a class="card__link" href="{_e(link)}">
          <span class="card__image card__image--{_e(product.category)}" aria-hidden="true"></span>
          <span class="card__name">{_e(product.name)}</span>
          <span class="card__price">{_e(_price(product.price))}</span>
        </a>
      </li>"""


def _demo_logins(request: web.Request) -> str:
    items = "\n".join(
        f'      <li><a href="{_e(_url(request, "login"))}?customer={_e(c.external_id)}">'
        f"Sign in as {_e(c.name)} ({_e(c.external_id)})</a></li>"
        for c in DEMO_CUSTOMERS
    )
    return f"""    <ul class="logins">
{items}
    </ul>"""


async def home(request: web.Request) -> web.Response:
    cards = "\n".join(_product_card(request, PRODUCT_BY_SKU[sku]) for sku in FEATURED_SKUS)
    body = f"""    <p class="lead">Durable things for kitchen, home and wardrobe. Questions about an order?
      Open the chat in the corner.</p>
    <h2>Featured</h2>
    <ul class="grid">
{cards}
    </ul>
    <section class="panel-box" aria-labelledby="demo-logins">
      <h2 id="demo-logins">Demo logins</h2>
      <p>Sign in as one of the demo customers; the chat then knows who you are and can
        talk about your orders without asking for your order number and email.</p>
{_demo_logins(request)}
    </section>"""
    return _page(request, "Shop", body, heading="Fernweh Living")


async def product(request: web.Request) -> web.Response:
    item = PRODUCT_BY_SKU.get(request.match_info["sku"])
    if item is None:
        return json_error(404, "not_found", "There is no product with this SKU.")
    description = DESCRIPTIONS.get(item.category, "")
    body = f"""    <div class="product">
      <span class="product__image card__image--{_e(item.category)}" aria-hidden="true"></span>
      <div class="product__info">
        <p class="product__price">{_e(_price(item.price))}</p>
        <p>{_e(description)}</p>
        <p class="product__sku">Article number {_e(item.sku)}</p>
        <button type="button" class="button" disabled>Add to basket (demo)</button>
        <p class="hint">Questions about sizes, stock or warranty? Ask in the chat.</p>
      </div>
    </div>"""
    return _page(request, item.name, body)


async def orders(request: web.Request) -> web.Response:
    customer = signed_in_customer(request)
    if customer is None:
        body = f"""    <p>Sign in to see your orders. Demo logins:</p>
{_demo_logins(request)}"""
        return _page(request, "My orders", body)
    mine = [order for order in DEMO_ORDERS if order.customer == customer]
    if not mine:
        return _page(request, "My orders", "    <p>You have no orders yet.</p>")
    rows = []
    for order in mine:
        items = ", ".join(
            PRODUCT_BY_SKU[sku].name if sku in PRODUCT_BY_SKU else sku for sku in order.skus
        )
        total = sum((PRODUCT_BY_SKU[s].price for s in order.skus if s in PRODUCT_BY_SKU), Decimal())
        rows.append(
            f"""        <tr>
          <th scope="row">{_e(order.number)}</th>
          <td>{_e(items)}</td>
          <td>{_e(_price(total))}</td>
          <td><span class="status status--{_e(order.status.lower())}">{_e(order.status)}</span>
            <span class="status__note">{_e(order.note)}</span></td>
        </tr>"""
        )
    table_rows = "\n".join(rows)
    body = f"""    <table class="orders">
      <caption>Your orders (as in the demo data)</caption>
      <thead><tr><th scope="col">Order</th><th scope="col">Items</th><th scope="col">Total</th><th scope="col">Status</th></tr></thead>
      <tbody>
{table_rows}
      </tbody>
    </table>
    <p class="hint">Ask the chat, for example “Where is my order {_e(mine[0].number)}?”</p>"""
    return _page(request, "My orders", body)


async def login(request: web.Request) -> web.Response:
    customer = request.query.get("customer")
    if customer is None:
        body = f"""    <p>Choose a demo customer:</p>
{_demo_logins(request)}"""
        return _page(request, "Sign in", body)
    if CUSTOMER_ID.fullmatch(customer) is None:
        body = f"""    <p class="error">That is not a demo customer id (expected C followed by four digits).</p>
{_demo_logins(request)}"""
        return _page(request, "Sign in", body, status=400)
    home_url = _url(request, "home")
    response = _redirect(home_url)
    response.set_cookie(
        COOKIE,
        customer,
        path=_cookie_path(home_url),
        httponly=True,
        samesite="Lax",
        secure=request.secure,
        max_age=8 * 3600,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    home_url = _url(request, "home")
    response = _redirect(home_url)
    response.del_cookie(COOKIE, path=_cookie_path(home_url))
    return response


async def stylesheet(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STYLESHEET, headers={"Cache-Control": "public, max-age=300"})


def _redirect(location: str) -> web.Response:
    response = web.Response(status=302, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _cookie_path(home_url: str) -> str:
    """The shop's own path (e.g. /demo/shop), so the cookie is not sent to the rest of the site."""
    return home_url.rstrip("/") or "/"


def create_demo_shop(widget_secret: str) -> web.Application:
    """The demo shop as a sub-app: `app.add_subapp("/demo/shop", create_demo_shop(secret))`."""
    shop = web.Application()
    shop[WIDGET_SECRET] = widget_secret
    shop.router.add_get("/", home, name="home")
    shop.router.add_get("/product/{sku}", product, name="product")
    shop.router.add_get("/orders", orders, name="orders")
    shop.router.add_get("/login", login, name="login")
    shop.router.add_get("/logout", logout, name="logout")
    shop.router.add_get("/shop.css", stylesheet, name="stylesheet")
    return shop

"""A photo attached in the widget (issue #19 item 2), in a real browser: the widget on a shop's
page (another origin) refuses a text file renamed .jpg with the server's words, sends a
real photo (shown in its bubble, acknowledged by the bot), and an admin sees it in the
console's transcript and customer panel; a visitor's browser cannot fetch it. The widget
with the attach button and a photo passes axe-core's WCAG 2.1 AA rules with 0 violations.
Screenshots: /tmp/photos_*.png.

Only the web service runs (Rasa is the echo stand-in of tests/live_app.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from bot.domain import staff, texts
from bot.domain.enums import StaffRole
from bot.storage.models import Photo
from tests.axe_helper import axe_violations
from tests.live_app import LiveApp, Sessions, serve_app

pytestmark = pytest.mark.browser

PASSWORD = "photos-password-1"
SHOTS = Path("/tmp")
WIDGET = "#shop-chat-widget"


async def _seed(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.create_user(db, "ada@example.com", "Ada", StaffRole.admin, PASSWORD)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    root = tmp_path_factory.mktemp("photos")
    with serve_app(root, seed=_seed, photo_dir=root / "photo-files") as app:
        yield app


def _files(tmp: Path) -> dict[str, Path]:
    photo = tmp / "cracked-bowl.jpg"
    image = Image.new("RGB", (320, 240), (180, 40, 40))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    photo.write_bytes(out.getvalue())
    fake = tmp / "not-a-photo.jpg"
    fake.write_text("This is a shopping list, renamed to .jpg\n" * 20, encoding="utf-8")
    return {"photo": photo, "fake": fake}


def _attach(page: Any, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator(f"{WIDGET} .composer__attach").click()
    chooser.value.set_files(str(path))


def test_photo_from_the_widget_reaches_the_console(
    live: LiveApp, browser: Any, tmp_path: Path
) -> None:
    files = _files(tmp_path)
    live.shop.html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Shop</title></head>"
        "<body><main><h1>Bowls</h1></main>"
        f"<script src='{live.url}/widget.js' defer></script></body></html>"
    )
    customer = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    customer.goto(live.shop_url + "/bowls")
    customer.get_by_role("button", name="Open chat").click()
    attach = customer.get_by_role("button", name="Attach a photo")
    attach.wait_for()
    customer.wait_for_function(
        f"() => !document.querySelector('{WIDGET}').shadowRoot"
        ".querySelector('.composer__attach').disabled"
    )
    assert axe_violations(customer) == [], "widget with the attach button"

    # A text file renamed .jpg: refused by content, with the server's words; nothing stored.
    _attach(customer, files["fake"])
    refusal = customer.locator(f"{WIDGET} .msg--system .msg__text").last
    refusal.wait_for()
    assert refusal.inner_text() == texts.render("utter_photo_not_an_image")
    assert customer.locator(f"{WIDGET} .msg--customer[data-state='failed']").count() == 1

    # A real photo: shown in its bubble, stored, acknowledged by the bot.
    _attach(customer, files["photo"])
    customer.locator(f"{WIDGET} .msg--customer[data-state='sent'] img.msg__photo").wait_for()
    reply = customer.locator(f"{WIDGET} .msg--bot .msg__text").last
    customer.wait_for_function(
        f"() => Array.from(document.querySelector('{WIDGET}').shadowRoot"
        ".querySelectorAll('.msg--bot .msg__text')).some(p => p.textContent === "
        f"{texts.render('utter_photo_received')!r})"
    )
    assert reply.inner_text() == texts.render("utter_photo_received")
    customer.screenshot(path=str(SHOTS / "photos_widget.png"))
    assert axe_violations(customer) == [], "widget with a photo sent"

    async def stored() -> list[Photo]:
        async with live.sessions() as db:
            return list(await db.scalars(select(Photo)))

    [photo] = live.run(stored())
    conversation_id = photo.conversation_id

    # Not for visitors: the console's image address needs a staff session.
    visitor = browser.new_context().new_page()
    response = visitor.request.get(f"{live.url}/console/api/photos/{photo.id}")
    assert response.status == 401
    visitor.context.close()

    # The admin sees it in the transcript and in the customer panel, loaded.
    ada = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    ada.goto(f"{live.url}/console/login")
    ada.get_by_label("Email").fill("ada@example.com")
    ada.get_by_label("Password").fill(PASSWORD)
    ada.get_by_role("button", name="Sign in").click()
    ada.wait_for_url(lambda url: "/login" not in url, timeout=15_000)
    ada.goto(f"{live.url}/console/conversations/{conversation_id}")
    in_log = ada.locator(f".msg--customer img.msg__photo[src='/console/api/photos/{photo.id}']")
    in_log.wait_for()
    panel = ada.locator("#customer-body").get_by_role("heading", name="Photos")
    panel.wait_for()
    ada.wait_for_function(
        "() => Array.from(document.querySelectorAll('img.msg__photo'))"
        ".every(i => i.complete && i.naturalWidth === 320)"
    )
    assert ada.locator("img.msg__photo").count() == 2  # transcript + customer panel
    ada.screenshot(path=str(SHOTS / "photos_console.png"), full_page=True)
    assert axe_violations(ada) == [], "console conversation with a photo"
    customer.context.close()
    ada.context.close()


def test_photo_on_the_chat_page(live: LiveApp, browser: Any, tmp_path: Path) -> None:
    files = _files(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    page = browser.new_context(viewport={"width": 1000, "height": 800}).new_page()
    page.goto(f"{live.url}/")
    attach = page.get_by_role("button", name="Attach a photo")
    page.wait_for_function(
        f"() => !document.querySelector('{WIDGET}').shadowRoot"
        ".querySelector('.composer__attach').disabled"
    )
    assert axe_violations(page) == [], "chat page with the attach button"

    def choose(path: Path) -> None:
        with page.expect_file_chooser() as chooser:
            attach.click()
        chooser.value.set_files(str(path))

    # 0 bytes: refused before uploading, in the server's words (from the session frame).
    choose(empty)
    page.locator(".msg--system", has_text=texts.render("utter_photo_empty")).wait_for()
    choose(files["photo"])
    page.locator(".msg--customer[data-state='sent'] img.msg__photo").wait_for()
    page.locator(".msg--bot", has_text=texts.render("utter_photo_received")).wait_for()
    assert page.locator(".msg--customer").count() == 1  # its echo over the socket: not twice
    page.screenshot(path=str(SHOTS / "photos_chat_page.png"))
    assert axe_violations(page) == [], "chat page with a photo sent"
    page.context.close()

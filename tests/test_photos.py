"""Photos in the chat (issue #19 item 2): types by content, sizes, EXIF removed, nothing
half-written, the damage report they belong to, who may fetch them, export and erasure."""

from __future__ import annotations

import base64
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import func, select

from bot.config import Settings
from bot.domain import photos, privacy, texts
from bot.domain.enums import EscalationReason, EscalationStatus, OrderStatus, StaffRole
from bot.domain.identity import issue_token
from bot.storage.models import Conversation, Customer, Escalation, Message, Photo
from bot.web.app import STATIC_DIR, create_app
from tests import factories
from tests.conftest import StubRasa
from tests.staff_helpers import create_staff, sign_in

GPS_TAG = 0x8825
MAKE_TAG = 0x010F


def jpeg_with_exif(size: tuple[int, int] = (64, 48), orientation: int | None = None) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[MAKE_TAG] = "SecretCam 3000"
    exif[0x010E] = "Kitchen table at 12 Secret Road"  # ImageDescription
    exif.get_ifd(GPS_TAG).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 1.0)})
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def image_bytes(kind: str, size: tuple[int, int] = (40, 30)) -> bytes:
    out = io.BytesIO()
    mode = "RGBA" if kind in ("PNG", "WEBP") else "RGB"
    Image.new(mode, size, (10, 120, 200, 255) if mode == "RGBA" else (10, 120, 200)).save(out, kind)
    return out.getvalue()


# ---- the checks (no database) -------------------------------------------------------------


def test_jpeg_exif_and_gps_are_removed_and_orientation_applied() -> None:
    original = jpeg_with_exif((64, 48), orientation=6)  # "rotate 90° clockwise to view"
    with Image.open(io.BytesIO(original)) as before:
        assert before.getexif()[MAKE_TAG] == "SecretCam 3000"
    clean = photos.clean(original, max_bytes=10_000_000, max_pixels=10_000_000)
    assert clean.content_type == "image/jpeg" and clean.extension == "jpg"
    assert (clean.width, clean.height) == (48, 64)  # turned upright, then the tag dropped
    with Image.open(io.BytesIO(clean.data)) as after:
        assert after.format == "JPEG"
        assert dict(after.getexif()) == {}
        assert "exif" not in after.info and "icc_profile" not in after.info
    assert b"SecretCam" not in clean.data and b"Secret Road" not in clean.data


def test_png_text_chunks_are_removed() -> None:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "home address 12 Secret Road")
    out = io.BytesIO()
    Image.new("RGB", (20, 20), (1, 2, 3)).save(out, "PNG", pnginfo=info)
    clean = photos.clean(out.getvalue(), max_bytes=10_000_000, max_pixels=10_000_000)
    assert clean.content_type == "image/png"
    assert b"Secret Road" not in clean.data
    with Image.open(io.BytesIO(clean.data)) as after:
        assert "Comment" not in after.info


@pytest.mark.parametrize(
    ("kind", "content_type"), [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("WEBP", "image/webp")]
)
def test_the_three_formats_are_accepted(kind: str, content_type: str) -> None:
    clean = photos.clean(image_bytes(kind), max_bytes=10_000_000, max_pixels=10_000_000)
    assert clean.content_type == content_type and (clean.width, clean.height) == (40, 30)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "photo_empty"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n" * 20, "photo_not_an_image"),
        (b"just some text renamed to damage.jpg\n" * 10, "photo_not_an_image"),
        (image_bytes("GIF"), "photo_wrong_type"),
        (image_bytes("BMP"), "photo_wrong_type"),
        (image_bytes("JPEG")[:200], "photo_not_an_image"),  # truncated
        (image_bytes("PNG", (3000, 3000)), "photo_too_many_pixels"),
    ],
)
def test_refusals_name_the_problem(data: bytes, code: str) -> None:
    with pytest.raises(photos.PhotoRefused) as refused:
        photos.clean(data, max_bytes=1_000_000, max_pixels=4_000_000)
    assert refused.value.code == code
    assert refused.value.message == texts.render(f"utter_{code}")


def test_too_big_names_the_limit() -> None:
    with pytest.raises(photos.PhotoRefused) as refused:
        photos.clean(b"\xff" * 2049, max_bytes=2048, max_pixels=4_000_000)
    assert refused.value.code == "photo_too_big" and refused.value.status == 413
    assert refused.value.message == texts.render("utter_photo_too_big", limit="2 KB")
    assert photos.megabytes(10 * 1024 * 1024) == "10 MB"


def test_store_writes_whole_files_under_random_keys(tmp_path: Path) -> None:
    store = photos.PhotoStore(tmp_path)
    clean = photos.clean(image_bytes("PNG"), max_bytes=10_000_000, max_pixels=10_000_000)
    key = store.write(clean)
    folder, name = key.split("/")
    assert len(name) == len("0" * 32 + ".png") and name.startswith(folder)
    assert store.read(key) == clean.data
    assert [p.name for p in (tmp_path / folder).iterdir()] == [name]  # no .part left
    assert store.read("../../etc/passwd") is None
    with pytest.raises(ValueError):
        store.path("../x.png")
    assert store.remove([key, key]) == 1 and store.read(key) is None


def test_the_photo_directory_is_outside_the_web_root() -> None:
    default = Settings().photo_dir.resolve()
    assert not default.is_relative_to(STATIC_DIR.resolve())
    assert not default.is_relative_to((STATIC_DIR.parent).resolve())


# ---- the upload over HTTP -------------------------------------------------------------------


@pytest.fixture
def photo_dir(tmp_path: Path) -> Path:
    return tmp_path / "photos"


@pytest.fixture
async def photo_client(
    engine: Any, settings: Settings, rasa: tuple[StubRasa, str], photo_dir: Path
) -> Any:
    app = create_app(
        replace(
            settings,
            rasa_url=rasa[1],
            rasa_timeout_seconds=1.0,
            photo_dir=photo_dir,
            photo_max_bytes=1024 * 1024,
            photo_max_per_conversation=3,
            allowed_origins=("https://shop.example",),
        )
    )
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _chat(client: TestClient[Any, Any], identity: str | None = None) -> tuple[Any, str]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "hello", "token": None, "identity": identity})
    session = await ws.receive_json(timeout=5)
    assert session["type"] == "session"
    return ws, session["token"]


async def _upload(
    client: TestClient[Any, Any], token: str | None, data: bytes, **headers: str
) -> Any:
    sent = {"Content-Type": "image/jpeg", **headers}
    if token is not None:
        sent["X-Chat-Token"] = token
    return await client.post("/chat/photos", data=data, headers=sent)


def _files(photo_dir: Path) -> list[Path]:
    return sorted(p for p in photo_dir.rglob("*") if p.is_file()) if photo_dir.exists() else []


async def test_upload_stores_the_photo_and_the_bot_acknowledges_it(
    photo_client: TestClient[Any, Any], session_factory: Any, photo_dir: Path
) -> None:
    ws, token = await _chat(photo_client)
    response = await _upload(photo_client, token, jpeg_with_exif(), **{"X-Client-Id": "p-1"})
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["message"]["sender"] == "customer"
    assert body["message"]["text"] == texts.render("utter_photo_caption")
    assert body["message"]["client_id"] == "p-1" and body["message"]["photo"] == body["photo"]["id"]
    assert body["reply"]["sender"] == "bot"
    assert body["reply"]["text"] == texts.render("utter_photo_received")
    # The open tab hears both, as from any other tab.
    frames = [await ws.receive_json(timeout=5), await ws.receive_json(timeout=5)]
    assert [(f["sender"], f.get("photo")) for f in frames] == [
        ("customer", body["photo"]["id"]),
        ("bot", None),
    ]
    [stored] = _files(photo_dir)
    with Image.open(stored) as image:
        assert image.format == "JPEG" and dict(image.getexif()) == {}
    async with session_factory() as db:
        photo = await db.get(Photo, body["photo"]["id"])
        assert photo is not None and photo.content_type == "image/jpeg"
        assert photo_dir / photo.storage_key == stored
        assert photo.order_id is None and photo.escalation_id is None
    # The same upload again (a retry after a lost answer) is stored once.
    again = await _upload(photo_client, token, jpeg_with_exif(), **{"X-Client-Id": "p-1"})
    assert again.status == 200 and (await again.json())["duplicate"] is True
    assert len(_files(photo_dir)) == 1
    await ws.close()


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 422, "photo_empty"),
        (b"not an image at all, renamed damage.jpg" * 30, 422, "photo_not_an_image"),
        (image_bytes("GIF"), 422, "photo_wrong_type"),
        (b"\xff\xd8\xff" + b"\0" * (1024 * 1024), 413, "photo_too_big"),
    ],
)
async def test_bad_uploads_get_a_clear_message_and_nothing_is_written(
    photo_client: TestClient[Any, Any],
    session_factory: Any,
    photo_dir: Path,
    data: bytes,
    status: int,
    code: str,
) -> None:
    _ws, token = await _chat(photo_client)
    response = await _upload(photo_client, token, data)
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"].startswith(texts.render(f"utter_{code}", limit="1 MB")[:20])
    assert _files(photo_dir) == []
    async with session_factory() as db:
        assert await db.scalar(select(func.count()).select_from(Photo)) == 0
        assert await db.scalar(select(func.count()).select_from(Message)) == 0


async def test_fifty_megabytes_are_refused_before_being_read(
    photo_client: TestClient[Any, Any], photo_dir: Path
) -> None:
    _ws, token = await _chat(photo_client)
    response = await _upload(photo_client, token, b"\xff" * (50 * 1024 * 1024))
    assert response.status == 413
    assert (await response.json())["error"]["message"] == texts.render(
        "utter_photo_too_big", limit="1 MB"
    )
    assert _files(photo_dir) == []


async def test_no_chat_no_upload_and_a_limit_per_chat(
    photo_client: TestClient[Any, Any], photo_dir: Path
) -> None:
    for token in (None, "forged-token"):
        response = await _upload(photo_client, token, image_bytes("JPEG"))
        assert response.status == 401
        assert (await response.json())["error"]["message"] == texts.render("utter_photo_no_chat")
    _ws, token = await _chat(photo_client)
    for _ in range(3):
        assert (await _upload(photo_client, token, image_bytes("JPEG"))).status == 201
    fourth = await _upload(photo_client, token, image_bytes("JPEG"))
    assert fourth.status == 422
    assert (await fourth.json())["error"]["message"] == texts.render(
        "utter_photo_too_many", count=3
    )
    assert len(_files(photo_dir)) == 3


async def test_cross_origin_upload_only_from_allowed_shops(
    photo_client: TestClient[Any, Any],
) -> None:
    preflight = await photo_client.options(
        "/chat/photos",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "X-Chat-Token" in preflight.headers["Access-Control-Allow-Headers"]
    _ws, token = await _chat(photo_client)
    evil = await _upload(photo_client, token, image_bytes("PNG"), Origin="https://evil.example")
    assert evil.status == 403
    shop = await _upload(photo_client, token, image_bytes("PNG"), Origin="https://shop.example")
    assert shop.status == 201
    assert shop.headers["Access-Control-Allow-Origin"] == "https://shop.example"


async def _damage_chat(
    client: TestClient[Any, Any], session_factory: Any, rasa: tuple[StubRasa, str]
) -> tuple[str, str]:
    async with session_factory() as db, db.begin():
        ann = await factories.customer(db, 5001)
        await factories.order(db, ann, "A50001", OrderStatus.delivered)
        other = await factories.customer(db, 5002)
        await factories.order(db, other, "A50002", OrderStatus.delivered)
    identity = issue_token(Settings().widget_secret, "T5001", email="customer5001@example.com")
    _ws, token = await _chat(client, identity)
    rasa[0].state = {
        "paused": False,
        "active_loop": {},
        "slots": {"support_request": "damaged_item", "order_number": "A50001"},
    }
    async with session_factory() as db:
        conversation = await db.scalar(
            select(Conversation).where(Conversation.customer_id.is_not(None))
        )
    return token, conversation.id


async def test_a_photo_joins_the_damage_report_in_progress(
    photo_client: TestClient[Any, Any], session_factory: Any, rasa: tuple[StubRasa, str]
) -> None:
    token, conversation_id = await _damage_chat(photo_client, session_factory, rasa)
    async with session_factory() as db, db.begin():
        conversation = await db.get(Conversation, conversation_id)
        escalation = Escalation(
            conversation_id=conversation_id,
            customer_id=conversation.customer_id,
            reason=EscalationReason.customer_request,
            priority=2,
            status=EscalationStatus.waiting,
        )
        db.add(escalation)
    response = await _upload(photo_client, token, image_bytes("WEBP"))
    body = await response.json()
    assert response.status == 201
    assert body["reply"]["text"] == texts.render("utter_photo_added_to_report", order="A50001")
    async with session_factory() as db:
        photo = await db.get(Photo, body["photo"]["id"])
        assert photo is not None and photo.escalation_id == escalation.id
        assert photo.customer_id == conversation.customer_id
        assert photo.content_type == "image/webp"
    # Another customer's order number in the slot is never linked.
    rasa[0].state["slots"]["order_number"] = "A50002"
    second = await (await _upload(photo_client, token, image_bytes("PNG"))).json()
    async with session_factory() as db:
        photo = await db.get(Photo, second["photo"]["id"])
        assert photo is not None and photo.order_id is None


async def test_only_staff_who_may_read_the_chat_get_the_image(
    photo_client: TestClient[Any, Any], session_factory: Any, photo_dir: Path
) -> None:
    await create_staff(session_factory)
    _ws, token = await _chat(photo_client)
    _ws2, other_token = await _chat(photo_client)
    body = await (await _upload(photo_client, token, jpeg_with_exif())).json()
    url = f"/console/api/photos/{body['photo']['id']}"
    # Anonymous visitors and customers (with their own chat's token or another's): no.
    for headers in ({}, {"X-Chat-Token": token}, {"X-Chat-Token": other_token}):
        response = await photo_client.get(url, headers=headers, allow_redirects=False)
        assert response.status == 401
    assert (await photo_client.get(f"/static/../{photo_dir.name}/")).status == 404
    # An agent: only chats in their work (this one never reached a person).
    await sign_in(photo_client, StaffRole.agent)
    assert (await photo_client.get(url)).status == 404
    assert (await photo_client.get("/console/api/photos/999")).status == 404
    photo_client.session.cookie_jar.clear()
    await sign_in(photo_client, StaffRole.bot_trainer)
    assert (await photo_client.get(url)).status == 403
    photo_client.session.cookie_jar.clear()
    await sign_in(photo_client, StaffRole.admin)
    response = await photo_client.get(url)
    assert response.status == 200 and response.content_type == "image/jpeg"
    assert response.headers["Cache-Control"] == "private, no-store"
    data = await response.read()
    with Image.open(io.BytesIO(data)) as image:
        assert dict(image.getexif()) == {}
    # The console's conversation view lists it and marks the transcript line.
    async with session_factory() as db:
        conversation_id = await db.scalar(
            select(Photo.conversation_id).where(Photo.id == body["photo"]["id"])
        )
    detail = await (await photo_client.get(f"/console/api/conversations/{conversation_id}")).json()
    assert [p["id"] for p in detail["photos"]] == [body["photo"]["id"]]
    assert [m.get("photo") for m in detail["messages"]] == [body["photo"]["id"], None]


async def test_export_includes_the_photo_and_erasure_removes_it(
    photo_client: TestClient[Any, Any],
    session_factory: Any,
    rasa: tuple[StubRasa, str],
    photo_dir: Path,
) -> None:
    token, _conversation_id = await _damage_chat(photo_client, session_factory, rasa)
    body = await (await _upload(photo_client, token, jpeg_with_exif())).json()
    [file] = _files(photo_dir)
    async with session_factory() as db:
        customer_id = await db.scalar(select(Customer.id).where(Customer.external_id == "T5001"))
    async with session_factory() as db, db.begin():
        document = await privacy.export_customer(db, "T5001", photo_dir=photo_dir)
    [exported] = document["photos"]
    assert exported["id"] == body["photo"]["id"] and "storage_key" not in exported
    assert base64.b64decode(exported["data_base64"]) == file.read_bytes()

    async with session_factory() as db, db.begin():
        erasure = await privacy.erase_customer(db, "T5001")
    assert erasure.customer_id == customer_id and erasure.counts["photos"] == 1
    photos.PhotoStore(photo_dir).remove(erasure.photo_keys)
    assert _files(photo_dir) == []
    async with session_factory() as db:
        photo = await db.get(Photo, body["photo"]["id"])
        assert photo is not None and photo.erased_at is not None and photo.sha256 == "[erased]"
    async with session_factory() as db, db.begin():
        again = await privacy.erase_customer(db, "T5001")  # repeatable: nothing new
    assert again.counts["photos"] == 0 and again.photo_keys == erasure.photo_keys

"""Photos customers attach in the chat (issue #19 item 2; docs/decisions.md "Photos").

* Checked by content, never by name or declared type: Pillow must recognise the bytes as
  JPEG, PNG or WebP and `verify()` them; anything else is refused with a message naming
  the problem (0 bytes, too big, not an image, another image format, too many pixels).
* Re-encoded with Pillow from the decoded pixels (after applying the EXIF orientation):
  nothing of the upload's metadata (EXIF with GPS and camera serials, XMP, ICC comments,
  PNG text chunks) survives, nor anything hidden behind the image data.
* Stored by `PhotoStore` under PHOTO_DIR, outside the web root, under a random name
  (`ab/<32 hex>.jpg`): written to a temporary file and renamed, so a file is either whole
  or absent; the row is written after the file and the file removed when the row is not.
* Tied to the conversation and its customer, and to the damage report in progress (the
  order asked about, the conversation's open escalation).

The functions flush but never commit: the caller owns the transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import texts
from bot.domain.enums import EscalationStatus
from bot.domain.errors import InvalidInput
from bot.storage.models import Conversation, Escalation, Order, Photo

# Pillow's format name -> (content type, file extension). Nothing else is accepted.
FORMATS = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
CONTENT_TYPES = {content_type for content_type, _ in FORMATS.values()}
# The longest side of a stored photo (larger ones are scaled down: plenty for a crack).
MAX_SIDE = 3000
JPEG_QUALITY = 85
WEBP_QUALITY = 85


class PhotoRefused(InvalidInput):
    """An upload that is not stored; `message` is said to the customer."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message, code)
        self.status = status


# Each refusal's text (domain.yml), named in full so the domain check sees them used.
REFUSALS = {
    "photo_too_big": "utter_photo_too_big",
    "photo_wrong_type": "utter_photo_wrong_type",
    "photo_too_many_pixels": "utter_photo_too_many_pixels",
    "photo_not_an_image": "utter_photo_not_an_image",
    "photo_too_many": "utter_photo_too_many",
    "photo_empty": "utter_photo_empty",
}


def refused(code: str, **values: object) -> PhotoRefused:
    status = 413 if code == "photo_too_big" else 422
    return PhotoRefused(code, texts.render(REFUSALS.get(code, f"utter_{code}"), **values), status)


def megabytes(size: int) -> str:
    """10485760 -> "10 MB" (as the customer reads a limit)."""
    value = size / (1024 * 1024)
    return f"{value:.0f} MB" if value >= 1 else f"{max(1, round(size / 1024))} KB"


def client_rules(max_bytes: int) -> dict[str, Any]:
    """For the chat's session frame: the widget refuses what is sure to be refused before
    uploading it (0 bytes, too big), with the server's own words."""
    return {
        "max_bytes": max_bytes,
        "types": sorted(CONTENT_TYPES),
        "empty": texts.render("utter_photo_empty"),
        "too_big": texts.render("utter_photo_too_big", limit=megabytes(max_bytes)),
        "no_chat": texts.render("utter_photo_no_chat"),
        "caption": texts.render("utter_photo_caption"),
    }


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def clean(data: bytes, *, max_bytes: int, max_pixels: int) -> CleanImage:
    """The upload re-encoded without metadata, or PhotoRefused naming the problem."""
    if not data:
        raise refused("photo_empty")
    if len(data) > max_bytes:
        raise refused("photo_too_big", limit=megabytes(max_bytes))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=None) as probe:
                kind = probe.format
                if kind not in FORMATS:
                    raise refused("photo_wrong_type")
                if probe.width * probe.height > max_pixels:
                    raise refused("photo_too_many_pixels")
                probe.verify()  # the whole file: truncated or corrupt data is refused
            # verify() leaves the image unusable: decode it again, for real.
            with Image.open(io.BytesIO(data), formats=[kind]) as image:
                image.load()
                upright = ImageOps.exif_transpose(image)
                return _encode(upright, kind)
    except PhotoRefused:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise refused("photo_too_many_pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        # Not an image at all (a PDF or a text renamed .jpg), or a broken one.
        raise refused("photo_not_an_image") from None


def _encode(image: Image.Image, kind: str) -> CleanImage:
    content_type, extension = FORMATS[kind]
    if max(image.size) > MAX_SIDE:
        image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    # Only the pixels go into the new file: no exif=, icc_profile=, pnginfo= or xmp=.
    if kind == "JPEG":
        pixels = image if image.mode in ("RGB", "L") else image.convert("RGB")
        pixels.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    elif kind == "PNG":
        keep = image.mode in ("RGB", "RGBA", "L", "LA", "P", "1")
        pixels = image if keep else image.convert("RGBA")
        pixels.save(out, "PNG", optimize=True)
    else:
        pixels = image if image.mode in ("RGB", "RGBA") else image.convert("RGBA")
        pixels.save(out, "WEBP", quality=WEBP_QUALITY)
    return CleanImage(out.getvalue(), content_type, extension, image.width, image.height)


class PhotoStore:
    """The photo files under one directory (PHOTO_DIR). Keys are `ab/<32 hex>.<ext>`,
    random, never taken from the upload."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        if not _valid_key(key):
            raise ValueError(f"not a photo key: {key!r}")
        return self.root / key

    def write(self, image: CleanImage) -> str:
        """Store the file whole (temporary file, fsync, rename); returns its key."""
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name}.{image.extension}"
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_name(f".{name}.part")
        try:
            with open(temporary, "xb") as file:
                file.write(image.data)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise
        return key

    def read(self, key: str) -> bytes | None:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def remove(self, keys: Iterable[str]) -> int:
        """Delete these files (absent ones are fine: erasure may be repeated)."""
        removed = 0
        for key in keys:
            try:
                self.path(key).unlink()
                removed += 1
            except (FileNotFoundError, ValueError):
                continue
        return removed


def _valid_key(key: str) -> bool:
    folder, _, rest = key.partition("/")
    name, _, extension = rest.partition(".")
    return (
        len(folder) == 2
        and len(name) == 32
        and name.startswith(folder)
        and all(c in "0123456789abcdef" for c in name)
        and extension in {e for _, e in FORMATS.values()}
    )


@dataclass(frozen=True)
class Report:
    """The damage report a photo belongs to, when one is in progress."""

    order_number: str | None = None


async def count_in_conversation(session: AsyncSession, conversation_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Photo).where(Photo.conversation_id == conversation_id)
        )
        or 0
    )


async def add(
    session: AsyncSession,
    conversation: Conversation,
    image: CleanImage,
    key: str,
    report: Report | None,
) -> Photo:
    """The photo's row, tied to the conversation, its customer and the damage report in
    progress: the order named (only one of this customer's) and the open escalation."""
    order_id = None
    if report is not None and report.order_number and conversation.customer_id is not None:
        order_id = await session.scalar(
            select(Order.id).where(
                Order.number == report.order_number, Order.customer_id == conversation.customer_id
            )
        )
    if order_id is None and report is not None:
        order_id = conversation.order_id
    escalation_id = await session.scalar(
        select(Escalation.id)
        .where(
            Escalation.conversation_id == conversation.id,
            Escalation.status.in_((EscalationStatus.waiting, EscalationStatus.claimed)),
        )
        .order_by(Escalation.created_at.desc())
        .limit(1)
    )
    photo = Photo(
        conversation_id=conversation.id,
        customer_id=conversation.customer_id,
        order_id=order_id,
        escalation_id=escalation_id,
        storage_key=key,
        content_type=image.content_type,
        size_bytes=len(image.data),
        width=image.width,
        height=image.height,
        sha256=hashlib.sha256(image.data).hexdigest(),
    )
    session.add(photo)
    await session.flush()
    return photo


async def order_number(session: AsyncSession, photo: Photo) -> str | None:
    if photo.order_id is None:
        return None
    number: str | None = await session.scalar(
        select(Order.number).where(Order.id == photo.order_id)
    )
    return number


async def for_customer(session: AsyncSession, customer_id: int) -> list[Photo]:
    """A customer's photos (erased ones too), oldest first."""
    rows = await session.scalars(
        select(Photo).where(Photo.customer_id == customer_id).order_by(Photo.id)
    )
    return list(rows)


async def panel(session: AsyncSession, conversation: Conversation) -> list[dict[str, Any]]:
    """The photos for the console's customer panel: the customer's (every chat of theirs),
    or this conversation's when it has no customer; erased ones left out; newest first."""
    owner = (
        or_(
            Photo.customer_id == conversation.customer_id,
            # Sent before the chat was tied to this customer (verified later, merged).
            Photo.conversation_id.in_(
                select(Conversation.id).where(Conversation.customer_id == conversation.customer_id)
            ),
        )
        if conversation.customer_id is not None
        else Photo.conversation_id == conversation.id
    )
    rows = await session.execute(
        select(Photo, Order.number)
        .outerjoin(Order, Order.id == Photo.order_id)
        .where(owner, Photo.erased_at.is_(None))
        .order_by(Photo.id.desc())
        .limit(50)
    )
    return [photo_json(photo, number) for photo, number in rows.all()]


def photo_json(photo: Photo, order_number: str | None = None) -> dict[str, Any]:
    """For the console (the image itself: /console/api/photos/{id})."""
    return {
        "id": photo.id,
        "conversation_id": photo.conversation_id,
        "content_type": photo.content_type,
        "width": photo.width,
        "height": photo.height,
        "size_bytes": photo.size_bytes,
        "order_number": order_number,
        "escalation_id": photo.escalation_id,
        "created_at": photo.created_at.isoformat() if photo.created_at else None,
        "erased": photo.erased_at is not None,
    }

"""`python -m bot send-event` (sign and send a sample shop event) and
`python -m bot import-feedback FILE.csv` (feedback from other channels)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Subparsers


def add_commands(sub: Subparsers) -> None:
    from bot.domain.shop_events import EVENT_TYPES

    send = sub.add_parser(
        "send-event",
        help="sign and send a sample shop event to a running server (integration testing)",
        description="Builds a sample event (or reads --file), signs it with EVENTS_SECRET and "
        "POSTs it to /api/events; prints the status and the answer.",
    )
    send.add_argument("--type", default="order.placed", choices=EVENT_TYPES)
    send.add_argument(
        "--id", help="event id (default: a new random one); repeat it to see a replay"
    )
    send.add_argument("--customer", default="C1001", help="customer external id")
    send.add_argument("--email", help="customer email")
    send.add_argument("--name", help="customer name")
    send.add_argument("--order", default="A19001", help="order number (order.* events)")
    send.add_argument("--subscription", default="SUB-1001", help="subscription id (subscription.*)")
    send.add_argument("--occurred-at", help="ISO 8601 time with zone (default: now)")
    send.add_argument("--file", type=Path, help="send this JSON file as the body instead")
    send.add_argument("--url", help="default: http://WEB_HOST:WEB_PORT/api/events")
    send.add_argument("--secret", help="default: EVENTS_SECRET")
    send.add_argument(
        "--dry-run", action="store_true", help="print body and signature (t=…,v1=…) only"
    )
    send.set_defaults(handler=send_event)
    imp = sub.add_parser(
        "import-feedback",
        help="import feedback from other channels (product CSV, review-site or social exports)",
        description="--format product (default): columns channel,customer_external_id,"
        "customer_email,occurred_at,kind,score,text,external_id (docs/events.md). "
        "--format trustpilot | judgeme | google | social: the services' own exports "
        "(docs/web-reviews.md). Valid rows are imported, invalid ones reported by line "
        "number; importing the same file again adds nothing (edited reviews are updated).",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument(
        "--format",
        default="product",
        metavar="NAME",
        help="product, trustpilot, judgeme, google or social (default: product)",
    )
    imp.set_defaults(handler=import_feedback)


def sample_event(args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    occurred = args.occurred_at or now.isoformat()
    customer: dict[str, Any] = {"external_id": args.customer}
    if args.email:
        customer["email"] = args.email
    if args.name:
        customer["name"] = args.name
    event: dict[str, Any] = {
        "id": args.id or f"evt_{uuid.uuid4().hex[:16]}",
        "type": args.type,
        "occurred_at": occurred,
        "customer": customer,
    }
    if args.type.startswith("order."):
        event["order"] = {
            "number": args.order,
            "items": [
                {
                    "sku": "KIT-CAS-24",
                    "name": "Cast-iron casserole 24 cm",
                    "qty": 1,
                    "price": "89.00",
                }
            ],
            "total": "89.00",
            "currency": "EUR",
        }
    else:
        start = now.replace(microsecond=0)
        event["subscription"] = {
            "id": args.subscription,
            "plan": "Coffee box monthly",
            "price": "19.00",
            "currency": "EUR",
            "period_start": start.isoformat(),
            "period_end": (start + timedelta(days=30)).isoformat(),
        }
    return event


async def _post(url: str, body: bytes, signature: str) -> tuple[int, str]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "X-Signature": signature},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response,
    ):
        return response.status, await response.text()


def send_event(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain.shop_events import signature_header

    if args.file:
        body = args.file.read_bytes()
    else:
        body = json.dumps(sample_event(args, datetime.now(timezone.utc)), indent=2).encode()
    # Timestamped now: the server refuses it after EVENTS_SIGNATURE_TOLERANCE_SECONDS.
    signature = signature_header(args.secret or settings.events_secret, body)
    url = args.url or f"http://{settings.web_host}:{settings.web_port}/api/events"
    print(body.decode())
    print(f"X-Signature: {signature}")
    if args.dry_run:
        return 0
    try:
        status, text = asyncio.run(_post(url, body, signature))
    except Exception as exc:  # connection refused, timeout: say so plainly
        print(f"Error: could not reach {url}: {exc!r}", file=sys.stderr)
        return 1
    print(f"HTTP {status}")
    try:
        print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    except ValueError:
        print(text)
    return 0 if status in (200, 202) else 1  # 202: accepted, applied moments later


async def _import(settings: Settings, path: Path) -> int:
    from bot.domain.errors import InvalidInput
    from bot.domain.intake import import_csv, read_csv_file
    from bot.storage.db import create_engine, create_session_factory

    try:
        text = read_csv_file(path)
    except InvalidInput as exc:
        print(f"Error: {path}: {exc.message}", file=sys.stderr)
        return 1
    engine = create_engine(settings.database_url)
    try:
        report = await import_csv(
            create_session_factory(engine),
            text,
            due_hours=settings.detractor_due_hours,
        )
    finally:
        await engine.dispose()
    for line, message in report.errors:
        print(f"line {line}: {message}", file=sys.stderr)
    print(
        f"Imported {report.imported}, already present {report.duplicates}, "
        f"invalid {len(report.errors)}; follow-ups opened for detractors: {report.escalations}."
    )
    return 1 if report.errors else 0


async def _import_web(settings: Settings, path: Path, name: str) -> int:
    from bot.domain import web_reviews
    from bot.domain.errors import InvalidInput
    from bot.storage.db import create_engine, create_session_factory

    fmt = web_reviews.get_format(name)
    engine = create_engine(settings.database_url)
    try:
        with path.open("rb") as raw:
            report, _ = await web_reviews.import_reviews(
                create_session_factory(engine),
                web_reviews.read_reviews(raw, fmt),
                due_hours=settings.detractor_due_hours,
                unit="review" if fmt.json else "line",
            )
    except InvalidInput as exc:
        print(f"Error: {path}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    for number, message in report.errors:
        print(f"{report.unit} {number}: {message}", file=sys.stderr)
    print(
        f"{fmt.label}: imported {report.imported} (from reviewers who are not known customers: "
        f"{report.unattributed}), updated {report.updated}, already present "
        f"{report.duplicates}, invalid {len(report.errors)}; follow-ups opened for "
        f"detractors: {report.escalations}."
    )
    return 1 if report.errors else 0


def import_feedback(settings: Settings, args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"Error: no such file: {args.file}", file=sys.stderr)
        return 2
    if args.format != "product":
        from bot.domain import web_reviews
        from bot.domain.errors import InvalidInput

        try:
            web_reviews.get_format(args.format)
        except InvalidInput as exc:
            print(f"Error: {exc.message}", file=sys.stderr)
            return 2
        return asyncio.run(_import_web(settings, args.file, args.format))
    return asyncio.run(_import(settings, args.file))

"""CX alerts: detect, store once, post to the webhook, email the daily digest (issue #21).

`run_once(sessions, settings, now)` is one round, run by the web service every
`ALERT_CHECK_SECONDS` (bot/web/background.py) and by `python -m bot alerts`:

1. detect (bot/domain/alerts.py) and store the alerts whose key is new;
2. **webhook** (`ALERT_WEBHOOK_URL`): each stored alert not posted yet is POSTed as
   Slack-compatible JSON `{"text": "<text> <link|Open the dashboard>"}`; a 2xx marks it
   posted, anything else leaves it for the next round. The row is claimed first by a
   conditional UPDATE, so two replicas never post the same alert;
3. **digest** (`ALERT_DIGEST_TO`, SMTP via bot/mail.py): once a day, from
   `ALERT_DIGEST_HOUR` (UTC), the alerts not digested yet go out in one email, each with
   its link; claimed the same way. No alerts: no email.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain import alerts, journey
from bot.mail import Mailer, MailError
from bot.storage.models import Alert

logger = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 10.0


@dataclass
class RoundResult:
    new: list[str] = field(default_factory=list)  # keys of the alerts stored this round
    posted: int = 0
    digested: int = 0


def rules_from(settings: Settings) -> alerts.AlertRules:
    return alerts.AlertRules(
        band_sd=settings.alert_band_sd,
        band_weeks=settings.alert_band_weeks,
        min_answers=settings.dashboard_min_answers,
        spike_ratio=settings.alert_spike_ratio,
        spike_min=settings.alert_spike_min,
        thresholds=journey.PitfallThresholds(
            csat_below=float(settings.pitfall_csat_below),
            nps_below=float(settings.pitfall_nps_below),
            dropoff_above=float(settings.pitfall_dropoff_above),
            min_responses=settings.pitfall_min_responses,
        ),
    )


def slack_text(alert: Alert) -> str:
    return f"{alert.text} <{alert.link}|Open the dashboard>"


async def _claim(session: AsyncSession, column: str, ids: list[int], now: datetime) -> list[int]:
    """Mark these alerts as being sent (NULL -> now); the ids this caller got."""
    got = []
    for alert_id in ids:
        result = await session.execute(
            update(Alert)
            .where(Alert.id == alert_id, getattr(Alert, column).is_(None))
            .values({column: now})
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            got.append(alert_id)
    return got


async def _release(session: AsyncSession, column: str, ids: list[int]) -> None:
    if ids:
        await session.execute(update(Alert).where(Alert.id.in_(ids)).values({column: None}))


async def post_webhook(sessions: async_sessionmaker[AsyncSession], url: str, now: datetime) -> int:
    async with sessions() as db, db.begin():
        pending = list(
            await db.scalars(
                select(Alert.id).where(Alert.webhook_sent_at.is_(None)).order_by(Alert.id)
            )
        )
        claimed = await _claim(db, "webhook_sent_at", pending, now)
    posted = 0
    timeout = aiohttp.ClientTimeout(total=WEBHOOK_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for alert_id in claimed:
            async with sessions() as db:
                alert = await db.get(Alert, alert_id)
            assert alert is not None
            ok = False
            try:
                async with http.post(url, json={"text": slack_text(alert)}) as response:
                    ok = 200 <= response.status < 300
                    if not ok:
                        logger.warning("alert webhook answered %s", response.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("alert webhook failed: %s", exc)
            if ok:
                posted += 1
            else:
                async with sessions() as db, db.begin():
                    await _release(db, "webhook_sent_at", [alert_id])
    return posted


def digest_body(rows: list[Alert], dashboard: str) -> str:
    lines = [f"{len(rows)} new CX alert{'s' if len(rows) != 1 else ''}:", ""]
    for row in rows:
        lines += [f"* {row.text}", f"  {row.link}", ""]
    lines.append(f"The dashboard: {dashboard}")
    return "\n".join(lines) + "\n"


async def send_digest(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> int:
    """The daily email: once a day from ALERT_DIGEST_HOUR, when there is anything new."""
    to = settings.alert_digest_to
    if not to or now.hour < settings.alert_digest_hour:
        return 0
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    async with sessions() as db, db.begin():
        last = await db.scalar(select(func.max(Alert.digest_sent_at)))
        if last is not None and last >= day_start:
            return 0
        pending = list(
            await db.scalars(
                select(Alert.id).where(Alert.digest_sent_at.is_(None)).order_by(Alert.id)
            )
        )
        claimed = await _claim(db, "digest_sent_at", pending, now)
    if not claimed:
        return 0
    async with sessions() as db:
        rows = list(await db.scalars(select(Alert).where(Alert.id.in_(claimed)).order_by(Alert.id)))
    subject = f"CX alerts, {now.date().isoformat()}: {len(rows)} new"
    try:
        await Mailer(settings).send(
            to=to,
            subject=subject,
            text=digest_body(rows, settings.public_url + "/dashboard/"),
            from_name="CX dashboard",
        )
    except MailError:
        async with sessions() as db, db.begin():
            await _release(db, "digest_sent_at", claimed)
        raise
    return len(rows)


async def run_once(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, now: datetime
) -> RoundResult:
    result = RoundResult()
    try:
        async with sessions() as db, db.begin():
            found = await alerts.detect(db, now, rules_from(settings))
            stored = await alerts.store_new(db, found, settings.public_url, now)
            result.new = [row.key for row in stored]
    except IntegrityError:
        # Another replica stored the same alert first: it is stored; deliver below.
        logger.info("alerts stored by another process meanwhile")
    if settings.alert_webhook_url:
        result.posted = await post_webhook(sessions, settings.alert_webhook_url, now)
    if settings.alert_digest_to and Mailer(settings).enabled:
        try:
            result.digested = await send_digest(sessions, settings, now)
        except MailError as exc:
            logger.warning("alert digest not sent: %s", exc)
    return result

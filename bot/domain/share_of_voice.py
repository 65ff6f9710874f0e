"""Share of voice (issue #23): each channel's share of the feedback per time bucket, so the
web channels (review sites, storefront reviews, social) sit next to the chat over time.

Counted in feedback rows from the same rollups as every other metric (a review with stars
and a text is two rows, as a survey answer with a comment is), all sources included,
unattributed reviews too. Shares are rounded to 0.1 %; a bucket without feedback has
none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.feedback_query import FeedbackFilter
from bot.domain.metrics import feedback_rows


@dataclass(frozen=True)
class VoicePoint:
    start: date
    volumes: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.volumes.values())

    def as_json(self, channels: list[str]) -> dict[str, Any]:
        total = self.total
        return {
            "start": self.start.isoformat(),
            "total": total,
            "channels": {
                c: {
                    "volume": self.volumes.get(c, 0),
                    "share_percent": round(100 * self.volumes.get(c, 0) / total, 1)
                    if total
                    else None,
                }
                for c in channels
            },
        }


async def share_of_voice(
    session: AsyncSession, flt: FeedbackFilter, bucket: str
) -> tuple[list[str], list[VoicePoint]]:
    """(channels by total volume, points by bucket start) for the filter's range."""
    points: dict[date, dict[str, int]] = {}
    totals: dict[str, int] = {}
    for (start, channel), counts in await feedback_rows(
        session, flt, ["bucket", "channel"], bucket
    ):
        if not counts.volume:
            continue
        points.setdefault(start, {})[channel] = counts.volume
        totals[channel] = totals.get(channel, 0) + counts.volume
    channels = sorted(totals, key=lambda c: (-totals[c], c))
    return channels, [VoicePoint(start, points[start]) for start in sorted(points)]

"""Per-client limits on the chat (issue #22): new conversations and WebSocket openings per
client address in a window (defaults: 20 new conversations and 50 sockets per address per
10 minutes), with a clear message when reached.

The client address is the TCP peer; only when the peer is one of `TRUSTED_PROXIES` (the
production profile's nginx) is it read from `X-Forwarded-For`: the right-most address that
is not itself a trusted proxy (a client cannot forge what our proxy appends). With
`REDIS_URL` the counters live in Redis, so several web replicas share them; otherwise in
the process.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiohttp import web

from bot.config import ConfigError, Settings
from bot.web.keys import SETTINGS

logger = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TOO_MANY_CONVERSATIONS = (
    "Too many new chats from your network. Please wait a few minutes, or continue the chat "
    "you already have open."
)
TOO_MANY_SOCKETS = "Too many chat connections from your network. Please wait a few minutes."
CONVERSATIONS, SOCKETS = "conversations", "sockets"


def parse_networks(raw: Iterable[str]) -> tuple[Network, ...]:
    networks = []
    for item in raw:
        try:
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError as exc:
            raise ConfigError(
                f"TRUSTED_PROXIES must list IP addresses or networks (CIDR), got {item!r}"
            ) from exc
    return tuple(networks)


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(value: str, proxies: tuple[Network, ...]) -> bool:
    ip = _ip(value)
    return ip is not None and any(ip in network for network in proxies)


def client_address(request: web.BaseRequest, proxies: tuple[Network, ...]) -> str:
    """The client's address: the peer, or behind a trusted proxy the right-most address of
    `X-Forwarded-For` that is not a trusted proxy (a client-supplied left part is ignored)."""
    peer = request.remote or "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h]):
        if _ip(hop) is None:
            return peer  # garbage from the proxy: count the proxy, not a made-up name
        if not _trusted(hop, proxies):
            return hop
    return peer


class Counter(Protocol):
    async def hit(self, key: str, window_seconds: int) -> int:
        """Count one event for `key` in the current window; returns the window's count."""


@dataclass
class MemoryCounter:
    """Fixed windows in this process (one web replica, tests, development)."""

    counts: dict[tuple[str, int], int] = field(default_factory=dict)

    async def hit(self, key: str, window_seconds: int) -> int:
        window = int(time.time() // window_seconds)
        if len(self.counts) > 50_000:  # forget past windows so memory stays bounded
            self.counts = {k: v for k, v in self.counts.items() if k[1] >= window}
        count = self.counts.get((key, window), 0) + 1
        self.counts[(key, window)] = count
        return count


class RedisCounter:
    """Fixed windows in Redis, shared by the web replicas (INCR + EXPIRE, one round trip)."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self.client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)

    async def hit(self, key: str, window_seconds: int) -> int:
        window = int(time.time() // window_seconds)
        name = f"shopbot:client-limit:{key}:{window}"
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, window_seconds + 5)
            count, _ = await pipe.execute()
        return int(count)

    async def close(self) -> None:
        await self.client.aclose()


@dataclass
class ClientLimits:
    settings: Settings
    counter: Counter
    proxies: tuple[Network, ...]

    def address(self, request: web.BaseRequest) -> str:
        return client_address(request, self.proxies)

    async def allow(self, kind: str, address: str) -> bool:
        """Count one `kind` event (CONVERSATIONS or SOCKETS) of `address`; False past the
        limit. A limit of 0 is off. If Redis fails, the event is let through (logged)."""
        limit = (
            self.settings.client_new_conversations
            if kind == CONVERSATIONS
            else self.settings.client_websockets
        )
        if limit <= 0:
            return True
        try:
            count = await self.counter.hit(
                f"{kind}:{address}", self.settings.client_limit_window_seconds
            )
        except Exception:  # Redis down: chatting matters more than the limit
            logger.warning("client limit counter unavailable; %s of %s let through", kind, address)
            return True
        return count <= limit


CLIENT_LIMITS = web.AppKey("client_limits", ClientLimits)


async def client_limits_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    proxies = parse_networks(settings.trusted_proxies)
    counter: Counter = RedisCounter(settings.redis_url) if settings.redis_url else MemoryCounter()
    app[CLIENT_LIMITS] = ClientLimits(settings, counter, proxies)
    yield
    if isinstance(counter, RedisCounter):
        await counter.close()

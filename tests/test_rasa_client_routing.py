"""The web tier sends all of a conversation's calls to one Rasa worker (issue #25 item 1):
the customer turns (crc32 of the sender id) and the tracker API calls (identity slot,
trigger_intent, tracker state, erasure), so the worker that keeps the conversation's
tracker (rasa_ext/tracker_store.py) is the one that reads and writes it; the next worker
when that one is known to be down."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.web.rasa_client import RasaClient


def _worker(name: str, hits: list[tuple[str, str, str]]) -> web.Application:
    async def turn(request: web.Request) -> web.Response:
        body = await request.json()
        hits.append((name, "turn", body["sender"]))
        return web.json_response([{"text": "ok"}])

    async def tracker_call(request: web.Request) -> web.Response:
        hits.append((name, request.match_info["what"], request.match_info["sender"]))
        payload: Any = {"messages": []} if request.match_info["what"] == "trigger_intent" else {}
        return web.json_response(payload)

    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", turn)
    app.router.add_route("*", "/conversations/{sender}/{what:.*}", tracker_call)
    return app


async def test_tracker_api_calls_go_to_the_conversations_worker() -> None:
    hits: list[tuple[str, str, str]] = []
    servers = [TestServer(_worker(name, hits)) for name in ("w1", "w2")]
    for server in servers:
        await server.start_server()
    names = {
        str(server.make_url("")).rstrip("/"): name
        for server, name in zip(servers, ("w1", "w2"), strict=True)
    }
    try:
        async with aiohttp.ClientSession() as http:
            client = RasaClient(http, ",".join(names), "token", timeout=10)
            senders = [f"conversation-{i}" for i in range(8)]
            for sender in senders:
                await client.send(sender, "hi")
                await client.set_slots(sender, {"identity": "verified"})
                await client.tracker_state(sender)
                await client.trigger_intent(sender, "EXTERNAL_x")
                await client.replace_events(sender, [])
            by_sender = {s: {name for name, _, who in hits if who == s} for s in senders}
            # every call of a conversation on one worker, and both workers used
            assert all(len(workers) == 1 for workers in by_sender.values()), by_sender
            assert {next(iter(w)) for w in by_sender.values()} == {"w1", "w2"}
            assert len(hits) == 5 * len(senders)
            # the conversation's worker known to be down: its tracker calls go to the other
            sender = senders[0]
            home = next(iter(by_sender[sender]))
            home_url = next(url for url, name in names.items() if name == home)
            client._down_until[home_url] = time.monotonic() + 60
            hits.clear()
            await client.tracker_state(sender)
            assert [name for name, _, _ in hits] == [n for n in ("w1", "w2") if n != home]
    finally:
        for server in servers:
            await server.close()

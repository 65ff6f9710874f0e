"""Typed application state keys."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.web.hub import ChatHub, StaffHub
from bot.web.rasa_client import RasaClient

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", async_sessionmaker[AsyncSession])
RASA = web.AppKey("rasa", RasaClient)
HUB = web.AppKey("hub", ChatHub)
STAFF_HUB = web.AppKey("staff_hub", StaffHub)

"""`APP_ENV=production` (issue #16, item 1): only known environments, a minimum length for
every secret, no demo shop, and no start while the demo staff accounts are active."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import cli
from bot.config import ConfigError, Settings
from bot.domain import staff
from bot.domain.enums import StaffRole
from bot.storage.models import AuditLog, StaffSession
from bot.web.app import create_app

Sessions = async_sessionmaker[AsyncSession]

# Every secret setting (a field named *_secret or *_token, read from the upper-case variable),
# so one added later is covered by these tests without editing them.
SECRET_FIELDS = tuple(f.name for f in fields(Settings) if f.name.endswith(("_secret", "_token")))
SECRET_VARIABLES = tuple(name.upper() for name in SECRET_FIELDS)
GOOD = {name: f"{name.lower()}-" + "s" * 40 for name in SECRET_VARIABLES}
PRODUCTION_SECRETS: dict[str, Any] = {name: GOOD[name.upper()] for name in SECRET_FIELDS}


def test_the_secret_settings_are_all_found() -> None:
    assert {"RASA_TOKEN", "WIDGET_SECRET", "EVENTS_SECRET", "OUTGOING_WEBHOOK_SECRET"} <= set(
        SECRET_VARIABLES
    )


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


@pytest.fixture
def production_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, GOOD[name])


def production(settings: Settings) -> Settings:
    return replace(settings, environment="production", **PRODUCTION_SECRETS)


# ---- APP_ENV and secrets -----------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["Production", "prod", "PRODUCTION", "production ", "staging", "dev", ""]
)
def test_app_env_accepts_only_known_values(
    monkeypatch: pytest.MonkeyPatch, value: str, production_env: None
) -> None:
    monkeypatch.setenv("APP_ENV", value)
    with pytest.raises(ConfigError) as error:
        Settings.from_env()
    assert "APP_ENV" in str(error.value)
    assert "development, test, production" in str(error.value)
    assert repr(value) in str(error.value)


@pytest.mark.parametrize("value", ["development", "test"])
def test_development_and_test_keep_the_development_defaults(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("APP_ENV", value)
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env()
    assert settings.environment == value and not settings.is_production
    monkeypatch.delenv("APP_ENV")
    assert Settings.from_env().environment == "development"


def test_unset_variables_leave_every_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.variables().values():
        monkeypatch.delenv(name, raising=False)
    assert Settings.from_env() == Settings()


def test_every_setting_but_two_is_read_from_its_variable() -> None:
    variables = Settings.variables()
    assert variables["environment"] == "APP_ENV"
    assert variables["staff_2fa"] == "STAFF_2FA"
    assert {f.name for f in fields(Settings)} - set(variables) == {
        "rasa_timeout_seconds",
        "rate_window_seconds",
    }


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("WEB_PORT", "9000", "web_port", 9000),
        ("ALERT_BAND_SD", "1.5", "alert_band_sd", 1.5),
        ("SMTP_STARTTLS", "off", "smtp_starttls", False),
        ("SUPPORT_EMAIL", "", "support_email", ""),
        ("SMTP_FROM", "", "smtp_from", "support@example.com"),
        ("REDIS_URL", "", "redis_url", None),
        ("OPS_PORT", "0", "ops_port", None),
        ("OPS_PORT", "9100", "ops_port", 9100),
        ("PHOTO_DIR", "/srv/photos", "photo_dir", Path("/srv/photos")),
        (
            "TRUSTED_PROXIES",
            "10.0.0.1, 10.1.0.0/16,",
            "trusted_proxies",
            ("10.0.0.1", "10.1.0.0/16"),
        ),
        ("RASA_URL", "http://a:5005/", "rasa_url", "http://a:5005"),
        ("PUBLIC_URL", "https://support.example.com/", "public_url", "https://support.example.com"),
        ("EVENTS_APPLIERS", "0", "events_appliers", 1),
        ("LANGUAGE_DETECTION", "off", "language_detection", ()),
        ("LANGUAGE_DETECTION", "EN, de,en", "language_detection", ("en", "de")),
    ],
)
def test_each_kind_of_setting_is_read_as_before(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: Any
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(Settings.from_env(), field) == expected


def test_production_starts_with_long_secrets(production_env: None) -> None:
    settings = Settings.from_env()
    assert settings.is_production
    assert settings.rasa_token == GOOD["RASA_TOKEN"]
    assert settings.outgoing_webhook_secret == GOOD["OUTGOING_WEBHOOK_SECRET"]


@pytest.mark.parametrize("name", SECRET_VARIABLES)
def test_every_secret_has_a_minimum_length_in_production(
    monkeypatch: pytest.MonkeyPatch, production_env: None, name: str
) -> None:
    monkeypatch.setenv(name, "x" * 31)
    with pytest.raises(ConfigError, match=f"{name} must be .*at least 32 characters"):
        Settings.from_env()
    monkeypatch.setenv(name, "x" * 32)
    Settings.from_env()


# Optional secrets: unset, the outgoing webhook signs with EVENTS_SECRET, and /metrics is
# served on the internal ops port only (issue #22); set, they are checked like the others.
OPTIONAL_SECRETS = ("OUTGOING_WEBHOOK_SECRET", "METRICS_TOKEN")


@pytest.mark.parametrize("name", [n for n in SECRET_VARIABLES if n not in OPTIONAL_SECRETS])
def test_production_refuses_unset_secrets(
    monkeypatch: pytest.MonkeyPatch, production_env: None, name: str
) -> None:
    monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match=name):
        Settings.from_env()


def test_an_unset_metrics_token_leaves_metrics_to_the_internal_port(
    monkeypatch: pytest.MonkeyPatch, production_env: None
) -> None:
    monkeypatch.delenv("METRICS_TOKEN")
    assert Settings.from_env().metrics_token is None


def test_an_unset_outgoing_webhook_secret_falls_back_to_the_checked_events_secret(
    monkeypatch: pytest.MonkeyPatch, production_env: None
) -> None:
    monkeypatch.delenv("OUTGOING_WEBHOOK_SECRET")
    assert Settings.from_env().outgoing_webhook_secret is None


def test_settings_made_in_code_are_checked_too() -> None:
    with pytest.raises(ConfigError, match="APP_ENV"):
        Settings(environment="prod")
    with pytest.raises(ConfigError, match="RASA_TOKEN"):
        replace(Settings(), environment="production", **{**PRODUCTION_SECRETS, "rasa_token": "x"})


def test_cli_reports_a_configuration_error_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_ENV", "Production")
    assert cli.main(["staff", "demo"]) == 2
    assert cli.main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "APP_ENV must be one of development, test, production" in err
    assert "Traceback" not in err


# ---- the demo shop -----------------------------------------------------------------------


async def test_demo_shop_does_not_exist_in_production(engine: Any, settings: Settings) -> None:
    async with TestClient(TestServer(create_app(production(settings)))) as client:
        # The attack from the issue: pick any customer id, get a token that verifies for it.
        login = await client.get("/demo/shop/login?customer=C4242", allow_redirects=False)
        assert login.status == 404
        for path in ("/demo/shop/", "/demo/shop", "/demo/shop/orders", "/demo/shop/shop.css"):
            response = await client.get(path, allow_redirects=False)
            assert response.status == 404, path
            assert "data-identity" not in await response.text()
        assert (await client.get("/healthz")).status == 200


async def test_demo_shop_is_served_in_development(engine: Any, settings: Settings) -> None:
    async with TestClient(TestServer(create_app(settings))) as client:
        login = await client.get("/demo/shop/login?customer=C1001", allow_redirects=False)
        assert login.status == 303 or login.status == 302
        page = await client.get("/demo/shop/", headers={"Cookie": "demo_customer=C1001"})
        assert page.status == 200 and "data-identity" in await page.text()


def test_cli_demo_data_is_refused_in_production(
    production_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["demo"]) == 2
    assert "APP_ENV=production" in capsys.readouterr().err


# ---- demo staff accounts -----------------------------------------------------------------


async def _demo_staff(sessions: Sessions) -> None:
    async with sessions() as db, db.begin():
        await staff.ensure_demo_users(db)
        admin = await staff.get_user_by_email(db, "admin@example.com")
        assert admin is not None
        await staff.start_session(db, admin)


async def test_web_service_refuses_to_start_in_production_while_demo_staff_exist(
    session_factory: Sessions, settings: Settings
) -> None:
    await _demo_staff(session_factory)
    with pytest.raises(ConfigError) as error:
        async with TestClient(TestServer(create_app(production(settings)))):
            pass
    message = str(error.value)
    for email, _name, _role in staff.DEMO_USERS:
        assert email in message
    assert "python -m bot staff remove-demo" in message
    # Development is not affected.
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await client.get("/healthz")).status == 200


async def test_remove_demo_deactivates_them_and_production_then_starts(
    session_factory: Sessions, settings: Settings
) -> None:
    await _demo_staff(session_factory)
    async with session_factory() as db, db.begin():
        real = await staff.create_user(
            db, "boss@shop.test", "Boss", StaffRole.admin, "a-real-password"
        )
    async with session_factory() as db, db.begin():
        removed = await staff.deactivate_demo_users(db, actor="cli")
    assert sorted(removed) == sorted(email for email, _n, _r in staff.DEMO_USERS)
    async with session_factory() as db, db.begin():
        assert await staff.deactivate_demo_users(db) == []  # idempotent
        assert await staff.authenticate(db, "admin@example.com", staff.DEMO_PASSWORD) is None
        assert await staff.authenticate(db, "boss@shop.test", "a-real-password") is not None
        assert (await db.execute(select(StaffSession))).all() == []  # signed out everywhere
        audits = (
            await db.execute(select(AuditLog).where(AuditLog.action == "deactivate_staff_user"))
        ).scalars()
        assert sorted(a.details["email"] for a in audits) == sorted(removed)
        assert real.is_active
    async with TestClient(TestServer(create_app(production(settings)))) as client:
        assert (await client.get("/healthz")).status == 200
        response = await client.post(
            "/console/api/login",
            json={"email": "admin@example.com", "password": staff.DEMO_PASSWORD},
            headers={"X-Requested-With": "console"},
        )
        assert response.status == 401


@pytest.mark.parametrize("command", [["serve"], ["run"]])
async def test_cli_serve_and_run_refuse_in_production_while_demo_staff_exist(
    session_factory: Sessions,
    database_url: str,
    production_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    import asyncio

    from bot import launcher
    from bot.web import server

    monkeypatch.setenv("DATABASE_URL", database_url)
    started: list[str] = []

    def serve(*_a: Any, **_k: Any) -> None:
        started.append("web")

    monkeypatch.setattr(server, "serve", serve)

    def run_forever() -> int:
        started.append("stack")
        return 0

    monkeypatch.setattr(launcher, "run_forever", run_forever)
    await _demo_staff(session_factory)

    def main(argv: list[str]) -> int:
        return cli.main(argv)

    assert await asyncio.to_thread(main, command) == 2
    assert started == []
    err = capsys.readouterr().err
    assert "admin@example.com" in err and "python -m bot staff remove-demo" in err

    assert await asyncio.to_thread(main, ["staff", "remove-demo"]) == 0
    assert "admin@example.com" in capsys.readouterr().out
    assert await asyncio.to_thread(main, command) == 0
    assert started == ["web" if command == ["serve"] else "stack"]

"""The production profile refuses to start when a configured backing service is unreachable."""

from __future__ import annotations

import socket

import pytest

from bot.launcher import PROD_DEFAULTS, preflight, prod_environment


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_QUEUE", "from_env")
    monkeypatch.setenv("UNRELATED", "x")
    env = prod_environment({"REDIS_URL": "redis://example:1/0"})
    assert env["RABBITMQ_QUEUE"] == "from_env"
    assert env["REDIS_URL"] == "redis://example:1/0"
    assert env["RASA_TRACKER_DB_NAME"] == PROD_DEFAULTS["RASA_TRACKER_DB_NAME"]
    assert "UNRELATED" not in env


def test_refuses_to_start_naming_every_unreachable_service() -> None:
    port = str(_closed_port())
    env = prod_environment(
        {
            "DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{port}/shopbot",
            "RASA_TRACKER_DB_PORT": port,
            "RASA_LOCK_REDIS_PORT": port,
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "RABBITMQ_PORT": port,
        }
    )
    with pytest.raises(SystemExit) as refused:
        preflight(env)
    message = str(refused.value)
    assert message.startswith("Refusing to start the production profile; unreachable:")
    for service in (
        "product database (DATABASE_URL",
        "Rasa tracker store (RASA_TRACKER_DB_*",
        "Rasa lock store (RASA_LOCK_REDIS_*",
        "web replicas' pub/sub (REDIS_URL",
        "Rasa event broker (RABBITMQ_*",
    ):
        assert service in message

"""Stack launcher helpers."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import pytest

from bot import launcher
from bot.config import Settings


def test_free_port_lies_below_the_ephemeral_range_and_can_be_bound() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    port = launcher.free_port()
    assert 20000 <= port < low
    with socket.socket() as server:
        server.bind(("127.0.0.1", port))


def test_free_port_skips_a_port_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        free = launcher.free_port()
        monkeypatch.setattr(random, "sample", lambda _range, _k: [busy, free])
        assert launcher.free_port() == free


def test_free_port_says_so_when_the_range_below_the_ephemeral_one_is_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(launcher, "_ephemeral_low", lambda: 20000)
    with pytest.raises(RuntimeError, match="no free port tried between 20000 and 19999"):
        launcher.free_port()


def test_the_production_profile_admits_more_turns_per_worker_than_the_embedded_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A production turn mostly waits (tracker store, lock store, broker, action servers),
    so its web replicas let 16 turns run on a worker at once; the environment still wins."""
    monkeypatch.delenv("RASA_MAX_IN_FLIGHT", raising=False)
    assert launcher.prod_environment()["RASA_MAX_IN_FLIGHT"] == "16"
    assert Settings.rasa_max_in_flight == 4  # the web service's own default (embedded)
    monkeypatch.setenv("RASA_MAX_IN_FLIGHT", "3")
    assert launcher.prod_environment()["RASA_MAX_IN_FLIGHT"] == "3"

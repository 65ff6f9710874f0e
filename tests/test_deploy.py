"""The reference deployment (docker-compose.yml, deploy/) matches what the code reads.

Images are never built here; these checks read the files: every environment variable a
service is given is one its process reads, every variable endpoints.prod.yml needs is given
to the Rasa services (and by the local launcher), and the production secrets are set.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import PROJECT_ROOT, Settings
from bot.launcher import PROD_DEFAULTS, _set_secrets

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ENV_REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)\}")


def _env_names_read(path: Path) -> set[str]:
    """Names passed to os.environ.get / os.environ[...] / _env_int in a module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "_env_int", "os.getenv", "env.get"):
                names.add(str(node.args[0].value))
        if (
            isinstance(node, ast.Subscript)
            and ast.unparse(node.value) == "os.environ"
            and isinstance(node.slice, ast.Constant)
        ):
            names.add(str(node.slice.value))
    return names


SETTINGS_NAMES = set(Settings.variables().values())
ENDPOINT_NAMES = set(ENV_REFERENCE.findall((PROJECT_ROOT / "endpoints.prod.yml").read_text()))
CREDENTIAL_NAMES = set(ENV_REFERENCE.findall((PROJECT_ROOT / "credentials.prod.yml").read_text()))
# Shared secrets between the tiers (issue #16): the launcher takes them from Settings.
SHARED_SECRETS = {"RASA_TOKEN", "RASA_CHANNEL_SECRET", "ACTION_SERVER_TOKEN"}
CONSUMER_NAMES = _env_names_read(PROJECT_ROOT / "bot" / "analytics_consumer.py")
OPS_NAMES = _env_names_read(PROJECT_ROOT / "bot" / "web" / "ops.py")
# Read by every process of the app image besides Settings: the replica's name in the logs.
APP_NAMES = SETTINGS_NAMES | OPS_NAMES | {"LOG_FORMAT"}


def _environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment") or {}
    return {str(k): str(v) for k, v in env.items()}


def _command(service: str) -> list[str]:
    return [str(part) for part in SERVICES[service].get("command") or []]


def test_settings_reads_the_variables_we_expect() -> None:
    # Guards the AST reading above: if it found nothing, the checks below would be empty.
    assert {
        "DATABASE_URL",
        "RASA_URL",
        "RASA_TOKEN",
        "REDIS_URL",
        "ACTION_SERVER_URL",
        "WIDGET_SECRET",
        "LOG_FORMAT",
    } <= SETTINGS_NAMES
    assert {"RABBITMQ_HOST", "RABBITMQ_QUEUE", "RABBITMQ_EXCHANGE"} <= CONSUMER_NAMES
    assert "REPLICA_NAME" in OPS_NAMES


def test_the_profile_runs_two_of_each_tier() -> None:
    kinds = {
        "web": [s for s in SERVICES if _command(s)[-2:] == ["bot", "serve"]],
        "rasa": [s for s in SERVICES if "rasa" in SERVICES[s].get("image", "")],
        "actions": [s for s in SERVICES if "actions.server" in _command(s)],
    }
    assert {k: len(v) for k, v in kinds.items()} == {"web": 2, "rasa": 2, "actions": 2}
    assert {"postgres", "redis", "rabbitmq", "analytics", "lb", "migrate"} <= set(SERVICES)


@pytest.mark.parametrize("service", ["web-1", "web-2"])
def test_web_replicas_get_only_variables_the_code_reads(service: str) -> None:
    env = _environment(service)
    assert set(env) <= APP_NAMES, set(env) - APP_NAMES
    for needed in (
        "DATABASE_URL",
        "RASA_URL",
        "RASA_TOKEN",
        "REDIS_URL",
        "ACTION_SERVER_URL",
        "WIDGET_SECRET",
        "EVENTS_SECRET",
    ):
        assert env.get(needed), f"{service} lacks {needed}"
    assert env["APP_ENV"] == "production"
    # Every Rasa worker is one the web service spreads turns over.
    workers = {u.split("//")[1].split(":")[0] for u in env["RASA_URL"].split(",")}
    assert workers == {s for s in SERVICES if s.startswith("rasa-")}
    assert env["ACTION_SERVER_URL"].startswith("http://actions-lb:")


@pytest.mark.parametrize("service", ["rasa-1", "rasa-2"])
def test_rasa_workers_get_every_variable_endpoints_prod_needs(service: str) -> None:
    env = _environment(service)
    needed = ENDPOINT_NAMES | CREDENTIAL_NAMES
    assert set(env) >= needed, needed - set(env)
    assert set(env) <= needed | {"RASA_TOKEN"}, set(env) - needed


def test_every_tier_gets_the_shared_secrets() -> None:
    assert sorted(CREDENTIAL_NAMES) == ["RASA_CHANNEL_SECRET"]
    assert "ACTION_SERVER_TOKEN" in ENDPOINT_NAMES
    # Settings refuses to start in production without every secret: each app process gets them.
    for service in ("web-1", "web-2", "actions-1", "actions-2", "rasa-1", "rasa-2"):
        assert set(_environment(service)) >= SHARED_SECRETS, service


def test_the_local_launcher_provides_every_endpoint_variable() -> None:
    # ACTION_SERVER_URL is set per start (it points at the local actions balancer); the
    # shared secrets come from Settings (their development values outside production).
    assert ENDPOINT_NAMES - {"ACTION_SERVER_URL"} - SHARED_SECRETS <= set(PROD_DEFAULTS)
    secrets: dict[str, str] = {}
    _set_secrets(secrets)
    assert set(secrets) == SHARED_SECRETS >= (ENDPOINT_NAMES | CREDENTIAL_NAMES) & SHARED_SECRETS
    assert set(PROD_DEFAULTS) <= APP_NAMES | ENDPOINT_NAMES | CONSUMER_NAMES


def test_action_servers_and_consumer_get_what_they_read() -> None:
    for service in ("actions-1", "actions-2", "migrate"):
        assert set(_environment(service)) <= APP_NAMES
        assert _environment(service)["DATABASE_URL"] == _environment("web-1")["DATABASE_URL"]
    consumer = _environment("analytics")
    assert set(consumer) <= APP_NAMES | CONSUMER_NAMES
    for name in ("RABBITMQ_QUEUE", "RABBITMQ_EXCHANGE", "RABBITMQ_USER"):
        assert consumer[name] == _environment("rasa-1")[name]  # the queue Rasa publishes to


def test_nginx_fronts_both_web_replicas_and_both_action_servers_from_the_template() -> None:
    """docker-compose's nginx renders deploy/nginx.conf with the variables bot/proxy.py
    gives it under `make run-prod` (issue #25 item 2), and Rasa reaches it as actions-lb."""
    from bot import proxy

    lb = SERVICES["lb"]
    assert lb["volumes"] == ["./deploy/nginx.conf:/etc/nginx/templates/default.conf.template:ro"]
    assert lb["networks"]["default"]["aliases"] == ["actions-lb"]
    expected = proxy.site_variables(
        ["web-1:8000", "web-2:8000"], ["actions-1:5055", "actions-2:5055"], "80", "5050"
    )
    assert _environment("lb") == expected
    template = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    assert set(ENV_REFERENCE.findall(template)) == set(expected)
    assert "bot.balancer" not in str(COMPOSE)


def test_dockerfiles_copy_files_that_exist() -> None:
    for name in ("Dockerfile.app", "Dockerfile.rasa"):
        for line in (PROJECT_ROOT / "deploy" / name).read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    if source != "models/current.tar.gz":  # built by `make train`
                        assert (PROJECT_ROOT / source).exists(), f"{name}: {source}"


def test_credentials_and_endpoints_name_classes_that_exist() -> None:
    channel = next(iter(yaml.safe_load((PROJECT_ROOT / "credentials.prod.yml").read_text())))
    endpoints = yaml.safe_load((PROJECT_ROOT / "endpoints.prod.yml").read_text())
    store, lock = endpoints["tracker_store"]["type"], endpoints["lock_store"]["type"]
    # Rasa runs without a broker, with only a warning, when the broker's class is not found.
    broker = endpoints["event_broker"]["type"]
    for dotted in (channel, store, lock, broker):
        module, _, cls = dotted.rpartition(".")
        tree = ast.parse((PROJECT_ROOT / (module.replace(".", "/") + ".py")).read_text())
        assert cls in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}, dotted

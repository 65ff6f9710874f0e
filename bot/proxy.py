"""nginx in front of the web replicas and the action servers (issue #25 item 2).

`make run-prod` and the fault test run the machine's nginx (Debian package `nginx`) with
deploy/nginx.conf, the template docker-compose.yml gives the nginx image, rendered with the
same variables. It replaced bot/balancer.py, a small failover proxy written in the project.

    render_site(web=["127.0.0.1:8000", …], actions=["127.0.0.1:5055", …],
                web_listen="127.0.0.1:8080", actions_listen="127.0.0.1:5050")
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from string import Template

from bot.config import PROJECT_ROOT

TEMPLATE = PROJECT_ROOT / "deploy" / "nginx.conf"
# Where a Debian / Ubuntu package or a source build puts it when sbin is not on PATH.
CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
INSTALL_HINT = (
    "nginx is needed in front of the web replicas and the action servers (issue #25) and "
    "was not found (PATH, /usr/sbin, /usr/local/sbin; or set NGINX=/path/to/nginx). Install "
    "it: `apt-get install -y nginx` (Debian/Ubuntu, as root), `dnf install nginx`, "
    "`brew install nginx`; `make run-prod` tries apt-get itself when it runs as root."
)
# Passive health checks: a replica that failed once is left out this long.
FAIL = "max_fails=1 fail_timeout=5s"


def find_nginx() -> str | None:
    explicit = os.environ.get("NGINX")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("nginx")
    if found:
        return found
    return next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)


def require_nginx() -> str:
    found = find_nginx()
    if found is None:
        raise SystemExit(INSTALL_HINT)
    return found


def _servers(addresses: list[str]) -> str:
    return " ".join(f"server {address} {FAIL};" for address in addresses)


def site_variables(
    web: list[str], actions: list[str], web_listen: str, actions_listen: str
) -> dict[str, str]:
    """The template's variables (docker-compose.yml sets the same ones on its nginx)."""
    return {
        "WEB_SERVERS": _servers(web),
        "ACTION_SERVERS": _servers(actions),
        "WEB_LISTEN": web_listen,
        "ACTIONS_LISTEN": actions_listen,
    }


def render_site(web: list[str], actions: list[str], web_listen: str, actions_listen: str) -> str:
    """deploy/nginx.conf with the variables filled in, as envsubst does in the nginx image
    (only these names; nginx's own $variables stay)."""
    variables = site_variables(web, actions, web_listen, actions_listen)
    rendered = Template(TEMPLATE.read_text(encoding="utf-8")).safe_substitute(variables)
    missing = [name for name in variables if f"${{{name}}}" in rendered]
    if missing:  # pragma: no cover - safe_substitute fills every given name
        raise ValueError(f"unfilled template variables: {missing}")
    return rendered


def main_config(site: Path, directory: Path, log: Path, run_as: str | None = None) -> str:
    """A whole nginx.conf around the rendered site, everything under `directory` (no root
    paths: temp files, pid), in the foreground for the launcher's process supervision;
    `run_as`: the workers' user (nginx's `user` directive; only a root master may set it)."""
    temp = directory / "temp"
    return "\n".join(
        [
            *([f"user {run_as};"] if run_as else []),
            "daemon off;",
            "worker_processes 1;",
            f"pid {directory / 'nginx.pid'};",
            f"error_log {log} warn;",
            "events { worker_connections 4096; }",
            "http {",
            "    access_log off;",
            "    server_tokens off;",
            *(
                f"    {kind}_temp_path {temp / kind};"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
            f"    include {site};",
            "}",
            "",
        ]
    )


def write_config(
    directory: Path,
    log: Path,
    *,
    web: list[str],
    actions: list[str],
    web_listen: str,
    actions_listen: str,
) -> Path:
    """Render the site and the main config into `directory`; returns the main config."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "temp").mkdir(exist_ok=True)
    site = directory / "shopbot.conf"
    site.write_text(render_site(web, actions, web_listen, actions_listen), encoding="utf-8")
    main = directory / "nginx.conf"
    # Started as root, nginx's workers would drop to `nobody`, who cannot reach a directory
    # only root may enter (a clone under `mktemp -d`, mode 0700): every request body larger
    # than nginx's buffer, such as Rasa's calls to the action servers, then failed with 500.
    # The workers run as the user who started nginx, as they do when that is not root.
    run_as = "root" if os.geteuid() == 0 else None
    main.write_text(main_config(site, directory, log, run_as), encoding="utf-8")
    return main


def command(binary: str, config: Path) -> list[str]:
    """Foreground nginx with that config; `-e stderr` so that it never opens the package's
    /var/log/nginx/error.log before reading the config."""
    return [binary, "-e", "stderr", "-p", str(config.parent), "-c", str(config)]

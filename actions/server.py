"""`python -m actions.server [arguments of python -m rasa_sdk]`: rasa_sdk's action server,
refusing every call that lacks the token Rasa sends (issue #16).

rasa_sdk 3.6 has no authentication: anyone who reaches the port can run any action with a
made-up tracker (slots `identity: verified`, `pending_action: cancel_order`, intent
`affirm`). Rasa sends `X-Action-Server-Token: ${ACTION_SERVER_TOKEN}` with every action call
(`headers` of `action_endpoint` in endpoints*.yml; a header rather than `token:`, whose
`?token=` query parameter would land in access logs); this server compares it in constant
time with `ACTION_SERVER_TOKEN` (bot.config.Settings) and answers 401 otherwise. `/health`
stays open for the launcher's and `/readyz`'s checks.

rasa_sdk imports every module of the `actions` package when it registers actions: this one
only defines functions (nothing runs on import).
"""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from rasa_sdk import utils
from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
from rasa_sdk.endpoint import create_app, create_argument_parser, create_ssl_context
from rasa_sdk.plugin import plugin_manager
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot.config import Settings
from bot.domain import knowledge

TOKEN_HEADER = "X-Action-Server-Token"
OPEN_PATHS = frozenset({"/health"})

logger = logging.getLogger(__name__)


def require_token(app: Sanic, token: str) -> None:
    """Every request but `OPEN_PATHS` needs `TOKEN_HEADER` equal to `token`."""
    if not token:
        raise ValueError("the action server needs ACTION_SERVER_TOKEN")
    expected = token.encode()

    async def check_token(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        given = request.headers.get(TOKEN_HEADER, "").encode()
        if hmac.compare_digest(given, expected):
            return None
        return response.json({"error": "unauthorized"}, status=401)

    app.register_middleware(check_token, "request")


def create_protected_app(
    token: str, actions: str = "actions", cors_origins: Any = None, auto_reload: bool = False
) -> Sanic:
    app: Sanic = create_app(actions, cors_origins=cors_origins, auto_reload=auto_reload)
    require_token(app, token)
    return app


def main(argv: list[str] | None = None) -> None:
    """rasa_sdk's `python -m rasa_sdk` (rasa_sdk/__main__.py and endpoint.run, 3.6.2) with
    the token check added to its app."""
    args = create_argument_parser().parse_args(argv)
    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(
        logging.getLogger(APPLICATION_ROOT_LOGGER_NAME),
        args.log_file,
        args.loglevel,
        args.logging_config_file,
    )
    utils.update_sanic_log_level()
    app = create_protected_app(
        Settings.from_env().action_server_token, args.actions, args.cors, args.auto_reload
    )
    plugin_manager().hook.attach_sanic_app_extensions(app=app)
    # The knowledge answers' embedding model (about 1-2 s, 16 MB of weights) is loaded now,
    # not by the first customer's question (bot/domain/embeddings.py logs the time).
    knowledge.shared_retriever()
    ssl_context = create_ssl_context(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    host = os.environ.get("SANIC_HOST", "0.0.0.0")  # nosec B104 - as rasa_sdk; set per deployment
    logger.info("Action endpoint (token required) on %s:%s", host, args.port)
    app.run(host, args.port, ssl=ssl_context, workers=utils.number_of_sanic_workers())


if __name__ == "__main__":
    main()

"""The OpenAPI 3.1 document at /api/openapi.json, assembled from each API module's parts.

Every API module exports `OPENAPI_PATHS` (path -> {method -> operation}) and
`OPENAPI_SCHEMAS` (component schemas); the same path may get methods from two modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def ok_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, **json_content(schema)}


def error_responses(*statuses: int) -> dict[str, Any]:
    """OpenAPI responses for the JSON errors an operation can return."""
    return {
        str(status): {
            "description": "error",
            **json_content({"$ref": "#/components/schemas/Error"}),
        }
        for status in statuses
    }


def query_param(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


DATE: dict[str, Any] = {"type": "string", "format": "date"}


def range_params(default_days: int) -> list[dict[str, Any]]:
    """The query parameters of a report's date range: `from`, `to` (days, both included)
    and `tz`; without `from` the range starts `default_days` days before `to`."""
    return [
        query_param(
            "from", f"First day (included); default: {default_days} days before `to`.", DATE
        ),
        query_param("to", "Last day (included); default: today in `tz`.", DATE),
        query_param("tz", "IANA time zone of the days (default UTC).", {"type": "string"}),
    ]


def build_document(modules: Iterable[ModuleType]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for module in modules:
        for path, operations in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Shop feedback bot API",
            "version": "1.0.0",
            "description": (
                "Authenticate with a staff session cookie (plus the X-CSRF-Token header on "
                "unsafe methods) or `Authorization: Bearer <API token>` "
                "(`python -m bot token create`). The events webhook is authenticated by its "
                "timestamped X-Signature HMAC (`t=…,v1=…`) instead. Errors are JSON "
                "`{error: {code, message}}`; a body that is not JSON, nested deeper than 64 "
                "levels or holding NaN/Infinity is 400 `bad_json`."
            ),
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "staffSession": {"type": "apiKey", "in": "cookie", "name": "console_session"},
            },
        },
        "security": [{"bearer": []}, {"staffSession": []}],
        "paths": dict(sorted(paths.items())),
    }

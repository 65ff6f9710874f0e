"""The knowledge base (admin only, issue #19): products, help-centre articles, a CSV import of
products, and the questions the bot was not sure about (bot/domain/knowledge.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import knowledge
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput
from bot.storage.models import KnowledgeArticle, KnowledgeProduct, UnansweredQuestion
from bot.web.api.auth import require_api_roles
from bot.web.api.openapi import error_responses, json_content
from bot.web.errors import read_json_object
from bot.web.keys import SESSIONS

SKU_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}"
SLUG_PATTERN = r"[a-z0-9]+(?:-[a-z0-9]+)*"
MAX_CSV_BYTES = 2_000_000


def product_json(row: KnowledgeProduct) -> dict[str, Any]:
    return {
        "sku": row.sku,
        "name": row.name,
        "category": row.category,
        "price": str(row.price) if row.price is not None else None,
        "description": row.description,
        "materials": row.materials,
        "care": row.care,
        "sizes": row.sizes,
        "warranty": row.warranty,
        "stock": row.stock,
        "url": row.url,
        "updated_at": row.updated_at.isoformat(),
    }


def article_json(row: KnowledgeArticle) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "title": row.title,
        "body": row.body,
        "url": row.url,
        "updated_at": row.updated_at.isoformat(),
    }


def unanswered_json(row: UnansweredQuestion) -> dict[str, Any]:
    return {
        "question": row.question,
        "count": row.count,
        "closest": list(row.closest or []),
        "first_asked_at": row.first_asked_at.isoformat(),
        "last_asked_at": row.last_asked_at.isoformat(),
    }


async def _deleted(
    request: web.Request, delete: Callable[[AsyncSession, str], Awaitable[None]], key: str
) -> web.Response:
    """Deletes the product or article `key` in one transaction; 404 when there is none."""
    async with request.config_dict[SESSIONS]() as db, db.begin():
        await delete(db, key)
    return web.json_response({"deleted": key})


@require_api_roles(StaffRole.admin)
async def list_products(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        rows = await knowledge.list_products(db)
    return web.json_response({"products": [product_json(r) for r in rows]})


@require_api_roles(StaffRole.admin)
async def put_product(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    data = knowledge.product_data({**body, "sku": request.match_info["sku"]})
    async with request.config_dict[SESSIONS]() as db, db.begin():
        row, _changed = await knowledge.save_product(db, data)
        result = product_json(row)
    return web.json_response(result)


@require_api_roles(StaffRole.admin)
async def delete_product(request: web.Request) -> web.Response:
    return await _deleted(request, knowledge.delete_product, request.match_info["sku"])


@require_api_roles(StaffRole.admin)
async def import_products(request: web.Request) -> web.Response:
    """A products CSV as the request body: checked whole, then written in one transaction."""
    raw = await request.read()
    if len(raw) > MAX_CSV_BYTES:
        raise InvalidInput(f"The CSV is larger than {MAX_CSV_BYTES} bytes.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The CSV is not UTF-8 text.") from exc
    products = knowledge.parse_products_csv(text, "the CSV")
    async with request.config_dict[SESSIONS]() as db, db.begin():
        result = await knowledge.import_products(db, products)
    return web.json_response(
        {"added": result.added, "updated": result.updated, "unchanged": result.unchanged}
    )


@require_api_roles(StaffRole.admin)
async def list_articles(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        rows = await knowledge.list_articles(db)
    return web.json_response({"articles": [article_json(r) for r in rows]})


@require_api_roles(StaffRole.admin)
async def put_article(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    data = knowledge.article_data(
        request.match_info["slug"], body.get("title"), body.get("body"), body.get("url")
    )
    async with request.config_dict[SESSIONS]() as db, db.begin():
        row, _changed = await knowledge.save_article(db, data)
        result = article_json(row)
    return web.json_response(result)


@require_api_roles(StaffRole.admin)
async def delete_article(request: web.Request) -> web.Response:
    return await _deleted(request, knowledge.delete_article, request.match_info["slug"])


@require_api_roles(StaffRole.admin)
async def list_unanswered(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        rows = await knowledge.unanswered(db)
    return web.json_response({"questions": [unanswered_json(r) for r in rows]})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/knowledge/products", list_products)
    app.router.add_post("/knowledge/products/import", import_products)
    app.router.add_put(f"/knowledge/products/{{sku:{SKU_PATTERN}}}", put_product)
    app.router.add_delete(f"/knowledge/products/{{sku:{SKU_PATTERN}}}", delete_product)
    app.router.add_get("/knowledge/articles", list_articles)
    app.router.add_put(f"/knowledge/articles/{{slug:{SLUG_PATTERN}}}", put_article)
    app.router.add_delete(f"/knowledge/articles/{{slug:{SLUG_PATTERN}}}", delete_article)
    app.router.add_get("/knowledge/unanswered", list_unanswered)


_TEXT = {"type": "string", "maxLength": 5000}
_PRODUCT_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"},
    "category": {"type": "string", "maxLength": 32},
    "price": {"type": ["string", "null"], "pattern": r"^\d{1,8}(\.\d{1,2})?$"},
    "description": _TEXT,
    "materials": _TEXT,
    "care": _TEXT,
    "sizes": _TEXT,
    "warranty": _TEXT,
    "stock": {"type": "integer", "minimum": 0, "maximum": 1_000_000_000},
    "url": {"type": "string", "maxLength": 2000, "pattern": r"^(https?://|/)\S*$"},
}
_PRODUCT = {
    "type": "object",
    "required": [
        "sku",
        "name",
        "category",
        "price",
        "description",
        "materials",
        "care",
        "sizes",
        "warranty",
        "stock",
        "url",
        "updated_at",
    ],
    "properties": {
        "sku": {"type": "string"},
        **{name: {"type": schema["type"]} for name, schema in _PRODUCT_FIELDS.items()},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
_ARTICLE = {
    "type": "object",
    "required": ["slug", "title", "body", "url", "updated_at"],
    "properties": {
        "slug": {"type": "string"},
        "title": {"type": "string"},
        "body": {"type": "string"},
        "url": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
_UNANSWERED = {
    "type": "object",
    "required": ["question", "count", "closest", "first_asked_at", "last_asked_at"],
    "properties": {
        "question": {"type": "string"},
        "count": {"type": "integer", "minimum": 1},
        "closest": {"type": "array", "items": {"type": "string"}},
        "first_asked_at": {"type": "string", "format": "date-time"},
        "last_asked_at": {"type": "string", "format": "date-time"},
    },
}


def _list_of(key: str, ref: str) -> dict[str, Any]:
    return json_content(
        {
            "type": "object",
            "required": [key],
            "properties": {key: {"type": "array", "items": {"$ref": ref}}},
        }
    )


def _param(name: str, pattern: str, max_length: int) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{pattern}$", "maxLength": max_length},
    }


_DELETED = json_content(
    {"type": "object", "required": ["deleted"], "properties": {"deleted": {"type": "string"}}}
)


def _one_item(
    noun: str, put_summary: str, param: dict[str, Any], body: dict[str, Any], ref: str
) -> dict[str, Any]:
    """The PUT (add or update) and DELETE of one product or article."""
    return {
        "put": {
            "summary": put_summary,
            "parameters": [param],
            "requestBody": {"required": True, **json_content(body)},
            "responses": {
                "200": {"description": f"the {noun} as stored", **json_content({"$ref": ref})},
                **error_responses(400, 401, 403, 404, 422),
            },
        },
        "delete": {
            "summary": f"Delete a{'n' if noun[0] in 'aeiou' else ''} {noun} (admin)",
            "parameters": [param],
            "responses": {
                "200": {"description": "deleted", **_DELETED},
                **error_responses(401, 403, 404),
            },
        },
    }


OPENAPI_SCHEMAS: dict[str, Any] = {
    "KnowledgeProduct": _PRODUCT,
    "KnowledgeArticle": _ARTICLE,
    "UnansweredQuestion": _UNANSWERED,
}
OPENAPI_PATHS: dict[str, Any] = {
    "/api/knowledge/products": {
        "get": {
            "summary": "List the knowledge base's products (admin)",
            "responses": {
                "200": {
                    "description": "products",
                    **_list_of("products", "#/components/schemas/KnowledgeProduct"),
                },
                **error_responses(401, 403),
            },
        }
    },
    "/api/knowledge/products/import": {
        "post": {
            "summary": "Import products from CSV (admin): all rows or none",
            "description": "Columns sku, name, materials, care, sizes, warranty, stock, url; "
            "optional category, price, description. Existing SKUs are updated.",
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            "responses": {
                "200": {
                    "description": "imported",
                    **json_content(
                        {
                            "type": "object",
                            "required": ["added", "updated", "unchanged"],
                            "properties": {
                                "added": {"type": "integer"},
                                "updated": {"type": "integer"},
                                "unchanged": {"type": "integer"},
                            },
                        }
                    ),
                },
                **error_responses(400, 401, 403, 422),
            },
        }
    },
    "/api/knowledge/products/{sku}": _one_item(
        "product",
        "Add or update a product (admin); its passages are embedded again",
        _param("sku", SKU_PATTERN, 32),
        {"type": "object", "required": ["name", "stock", "url"], "properties": _PRODUCT_FIELDS},
        "#/components/schemas/KnowledgeProduct",
    ),
    "/api/knowledge/articles": {
        "get": {
            "summary": "List the help-centre articles (admin)",
            "responses": {
                "200": {
                    "description": "articles",
                    **_list_of("articles", "#/components/schemas/KnowledgeArticle"),
                },
                **error_responses(401, 403),
            },
        }
    },
    "/api/knowledge/articles/{slug}": _one_item(
        "article",
        "Add or update an article (Markdown body; admin)",
        _param("slug", SLUG_PATTERN, 100),
        {
            "type": "object",
            "required": ["title", "body"],
            "properties": {
                "title": {"type": "string", "minLength": 1, "maxLength": 200},
                "body": {"type": "string", "minLength": 1, "maxLength": 50_000},
                "url": {"type": "string", "maxLength": 2000},
            },
        },
        "#/components/schemas/KnowledgeArticle",
    ),
    "/api/knowledge/unanswered": {
        "get": {
            "summary": "Questions the bot was not sure about, most asked first (admin)",
            "responses": {
                "200": {
                    "description": "unanswered questions with counts",
                    **_list_of("questions", "#/components/schemas/UnansweredQuestion"),
                },
                **error_responses(401, 403),
            },
        }
    },
}

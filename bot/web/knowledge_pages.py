"""The console's knowledge page (issue #19, admins): the questions the bot was not sure
about with their counts, and the products and help-centre articles it answers from, each
editable. Page /console/knowledge (static shell, bot/web/static/console/knowledge.*), JSON
under /console/api/knowledge; the rules are bot/domain/knowledge.py (the same as the API's
/api/knowledge and `python -m bot import-knowledge`)."""

from __future__ import annotations

from aiohttp import web

from bot.domain import knowledge
from bot.domain.enums import StaffRole
from bot.web import pages
from bot.web.api.knowledge import article_json, product_json, unanswered_json
from bot.web.auth import require_roles
from bot.web.errors import read_json_object
from bot.web.keys import SESSIONS


@require_roles(StaffRole.admin)
async def knowledge_page(_request: web.Request) -> web.Response:
    return pages.response(pages.CONSOLE, "knowledge.html")


@require_roles(StaffRole.admin)
async def api_knowledge(request: web.Request) -> web.Response:
    async with request.config_dict[SESSIONS]() as db:
        questions = await knowledge.unanswered(db)
        products = await knowledge.list_products(db)
        articles = await knowledge.list_articles(db)
        body = {
            "unanswered": [unanswered_json(q) for q in questions],
            "products": [product_json(p) for p in products],
            "articles": [article_json(a) for a in articles],
        }
    return web.json_response(body)


@require_roles(StaffRole.admin)
async def api_save_article(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    slug = body.get("slug")
    data = knowledge.article_data(
        slug if isinstance(slug, str) else "", body.get("title"), body.get("body"), body.get("url")
    )
    async with request.config_dict[SESSIONS]() as db, db.begin():
        row, changed = await knowledge.save_article(db, data)
        result = {**article_json(row), "changed": changed}
    return web.json_response(result)


@require_roles(StaffRole.admin)
async def api_save_product(request: web.Request) -> web.Response:
    data = knowledge.product_data(await read_json_object(request))
    async with request.config_dict[SESSIONS]() as db, db.begin():
        row, changed = await knowledge.save_product(db, data)
        result = {**product_json(row), "changed": changed}
    return web.json_response(result)


def add_routes(console: web.Application) -> None:
    console.router.add_get("/knowledge", knowledge_page)
    console.router.add_get("/api/knowledge", api_knowledge)
    console.router.add_post("/api/knowledge/articles", api_save_article)
    console.router.add_post("/api/knowledge/products", api_save_product)

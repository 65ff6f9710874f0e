"""`python -m bot import-knowledge`: products from CSV and help-centre articles from Markdown
into the knowledge base (bot/domain/knowledge.py, issue #19).

Every file is read and checked first; a problem (a missing or unknown CSV column, a bad row,
an article without a title, an unclosed code block, ...) is reported with the file and line
and nothing is written. Otherwise everything is written in one transaction, and only the
products and articles that changed are embedded again.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.common import blocking, fail, run_db_command
from bot.config import Settings

if TYPE_CHECKING:
    from bot.cli.common import Sessions, Subparsers
    from bot.domain.knowledge import ImportResult

COMMAND = "import-knowledge"


def add_commands(sub: Subparsers) -> None:
    command = sub.add_parser(
        COMMAND,
        help="import products (CSV) and help-centre articles (Markdown) into the knowledge base",
        description="Products: a CSV with the columns sku, name, materials, care, sizes, "
        "warranty, stock, url (optional: category, price, description). Articles: <slug>.md "
        "files (or directories of them) whose first line is '# Title'. Existing products "
        "and articles with the same SKU or slug are updated; all or nothing.",
    )
    command.add_argument("--products", type=Path, help="products CSV file")
    command.add_argument(
        "--articles", type=Path, nargs="+", default=[], help="Markdown files or directories"
    )
    command.add_argument(
        "--article-url-base",
        default=None,
        help="an article's page is this plus its slug (default https://shop.example.com/help/)",
    )
    command.add_argument(
        "--demo", action="store_true", help="the demo shop's products and articles"
    )
    command.set_defaults(handler=blocking(run))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.domain import knowledge
    from bot.domain.errors import InvalidInput

    if not (args.products or args.articles or args.demo):
        return fail("nothing to import: give --products, --articles or --demo.")
    base = args.article_url_base or knowledge.ARTICLE_URL_BASE
    try:
        products = []
        if args.products is not None:
            try:
                text = args.products.read_text(encoding="utf-8")
            except FileNotFoundError:
                return fail(f"{args.products}: no such file.")
            except UnicodeDecodeError:
                return fail(f"{args.products}: not UTF-8 text.")
            products = knowledge.parse_products_csv(text, str(args.products))
        articles = knowledge.read_article_files(args.articles, base) if args.articles else []
    except InvalidInput as exc:
        return fail(f"{exc.message} Nothing was imported.")

    async def body(sessions: Sessions) -> int:
        async with sessions() as session, session.begin():
            if args.demo:
                demo_products, demo_articles = await knowledge.load_demo(session)
                _report("demo products", demo_products)
                _report("demo articles", demo_articles)
            if products:
                _report("products", await knowledge.import_products(session, products))
            if articles:
                _report("articles", await knowledge.import_articles(session, articles))
        return 0

    return await run_db_command(settings, body)


def _report(what: str, result: ImportResult) -> None:
    print(
        f"{what}: {result.added} added, {result.updated} updated, {result.unchanged} unchanged.",
        file=sys.stdout,
    )

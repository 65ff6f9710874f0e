"""The shop's knowledge: products and help-centre articles, and answers found by meaning
(issue #19 item 5; docs/decisions.md "Knowledge answers").

* Content lives in the database (knowledge_products, knowledge_articles); admins edit it in
  the console or through the API, or import it: products from CSV, articles from Markdown
  (`python -m bot import-knowledge`). An import is checked whole before anything is written.
* Each product or article is cut into passages (its title, each product field, each article
  paragraph) whose embeddings are computed when the item is written — never per question.
* A question is embedded once (bot/domain/embeddings.py) and scored against every passage;
  an item's score mixes how close the question is to its title and to its best passage,
  plus a keyword overlap. Without the model the keyword part answers alone.
* Below `THRESHOLD` the bot says it is not sure, names the two closest articles, offers a
  person and counts the question in knowledge_unanswered.
"""

from __future__ import annotations

import csv
import difflib
import functools
import io
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain import embeddings, texts
from bot.domain.errors import InvalidInput, NotFound
from bot.storage.models import (
    KnowledgeArticle,
    KnowledgePassage,
    KnowledgeProduct,
    UnansweredQuestion,
    utcnow,
)

DEMO_DIR = Path(__file__).with_name("data") / "knowledge"
ARTICLE_URL_BASE = "https://shop.example.com/help/"

PRODUCT_COLUMNS = ("sku", "name", "materials", "care", "sizes", "warranty", "stock", "url")
OPTIONAL_PRODUCT_COLUMNS = ("category", "price", "description")
PRODUCT_FIELDS = ("materials", "care", "sizes", "warranty", "stock")
FIELD_LABELS = {
    "description": "About",
    "materials": "Materials",
    "care": "Care",
    "sizes": "Sizes",
    "warranty": "Warranty",
    "stock": "Stock",
}
_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_URL = re.compile(r"^(https?://\S+|/\S*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_WORDS = re.compile(r"[a-z0-9]+")
MAX_TEXT = 5000
MAX_BODY = 50_000

# Tuned on bench/knowledge/dev.yml only (never on the held-out set).
THRESHOLD = 0.62
TITLE_WEIGHT = 0.35
KEYWORD_WEIGHT = 1.4
# An article's first paragraph usually answers what its title asks: it is preferred as the
# quote unless another paragraph is clearly closer to the question.
LEAD_BONUS = 0.05
TITLE_KEYWORD_SHARE = 0.5  # of the keyword part: words found in the name/title vs anywhere
UNKNOWN_WORDS_PENALTY = 0.5
# Stored with each passage's embedding: a passage embedded by another model or from other
# text (a change to FIELD_TOPICS or the passages) is embedded again at the next import.
PASSAGE_RECIPE = "2"
KEYWORD_THRESHOLD = 0.45  # the keyword-only fallback's own bar (its scores run differently)

STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "get",
        "go",
        "got",
        "have",
        "hello",
        "hey",
        "hi",
        "how",
        "i",
        "if",
        "im",
        "in",
        "is",
        "it",
        "its",
        "just",
        "know",
        "many",
        "me",
        "much",
        "my",
        "need",
        "no",
        "not",
        "of",
        "on",
        "or",
        "please",
        "pls",
        "so",
        "some",
        "tell",
        "thank",
        "thanks",
        "that",
        "the",
        "there",
        "this",
        "to",
        "u",
        "ur",
        "want",
        "was",
        "what",
        "whats",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "yes",
        "you",
        "your",
        "yours",
    }
)


# --- content: validation -----------------------------------------------------------------


@dataclass(frozen=True)
class ProductData:
    sku: str
    name: str
    materials: str
    care: str
    sizes: str
    warranty: str
    stock: int
    url: str
    category: str = ""
    price: Decimal | None = None
    description: str = ""


@dataclass(frozen=True)
class ArticleData:
    slug: str
    title: str
    body: str
    url: str


def _text(value: Any, what: str, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be text.")
    value = value.strip()
    if required and not value:
        raise InvalidInput(f"{what} is empty.")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters.")
    return str(value)


def product_data(raw: dict[str, Any], where: str = "") -> ProductData:
    """A product from one CSV row or API body; InvalidInput names the field (and `where`)."""
    at = f"{where}: " if where else ""
    sku = _text(raw.get("sku"), f"{at}'sku'", required=True, limit=32)
    if not _SKU.match(sku):
        raise InvalidInput(f"{at}'sku' {sku!r} may only use letters, digits, '-', '_' and '.'.")
    stock_raw = raw.get("stock")
    try:
        stock = int(str(stock_raw).strip()) if not isinstance(stock_raw, bool) else -1
    except (TypeError, ValueError):
        stock = -1
    if stock < 0:
        raise InvalidInput(f"{at}'stock' must be a whole number of 0 or more, not {stock_raw!r}.")
    url = _text(raw.get("url"), f"{at}'url'", required=True, limit=2000)
    if not _URL.match(url):
        raise InvalidInput(f"{at}'url' must start with http://, https:// or /.")
    price_raw = raw.get("price")
    price: Decimal | None = None
    if price_raw not in (None, ""):
        try:
            price = Decimal(str(price_raw).strip())
        except InvalidOperation:
            price = Decimal(-1)
        if not price.is_finite() or price < 0 or price >= Decimal("100000000"):
            raise InvalidInput(f"{at}'price' must be an amount like 29.00, not {price_raw!r}.")
    return ProductData(
        sku=sku,
        name=_text(raw.get("name"), f"{at}'name'", required=True, limit=200),
        materials=_text(raw.get("materials"), f"{at}'materials'"),
        care=_text(raw.get("care"), f"{at}'care'"),
        sizes=_text(raw.get("sizes"), f"{at}'sizes'"),
        warranty=_text(raw.get("warranty"), f"{at}'warranty'"),
        stock=stock,
        url=url,
        category=_text(raw.get("category"), f"{at}'category'", limit=32),
        price=price,
        description=_text(raw.get("description"), f"{at}'description'"),
    )


def parse_products_csv(text: str, name: str = "products.csv") -> list[ProductData]:
    """Every row of a products CSV, or InvalidInput naming the first problem (file, line)."""
    if not text.strip():
        raise InvalidInput(f"{name} is empty.")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in PRODUCT_COLUMNS if c not in header]
    if missing:
        raise InvalidInput(
            f"{name} lacks the column(s) {', '.join(missing)}; "
            f"the header must have {', '.join(PRODUCT_COLUMNS)}."
        )
    unknown = [c for c in header if c not in PRODUCT_COLUMNS + OPTIONAL_PRODUCT_COLUMNS]
    if unknown:
        raise InvalidInput(
            f"{name} has unknown column(s) {', '.join(repr(c) for c in unknown)}; allowed: "
            f"{', '.join(PRODUCT_COLUMNS + OPTIONAL_PRODUCT_COLUMNS)}."
        )
    products: list[ProductData] = []
    seen: dict[str, int] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(v is None for v in row.values()):
                raise InvalidInput(
                    f"{name} line {line}: {len(header)} columns expected, the row has "
                    f"{'more' if None in row else 'fewer'}."
                )
            clean = {(k or "").strip(): v for k, v in row.items()}
            product = product_data(clean, f"{name} line {line}")
            if product.sku in seen:
                raise InvalidInput(
                    f"{name} line {line}: SKU {product.sku} is already on line {seen[product.sku]}."
                )
            seen[product.sku] = line
            products.append(product)
    except csv.Error as exc:
        raise InvalidInput(f"{name} line {reader.line_num}: not valid CSV ({exc}).") from exc
    if not products:
        raise InvalidInput(f"{name} has a header but no products.")
    return products


def article_data(slug: str, title: Any, body: Any, url: Any = None) -> ArticleData:
    if not isinstance(slug, str) or not _SLUG.match(slug) or len(slug) > 100:
        raise InvalidInput(
            f"The slug {slug!r} must be lower-case letters and digits joined by single '-'."
        )
    title_text = _text(title, f"{slug}: the title", required=True, limit=200)
    body_text = _text(body, f"{slug}: the body", required=True, limit=MAX_BODY)
    url_text = _text(url, f"{slug}: 'url'", limit=2000) or ARTICLE_URL_BASE + slug
    if not _URL.match(url_text):
        raise InvalidInput(f"{slug}: 'url' must start with http://, https:// or /.")
    _check_markdown(slug, body_text)
    return ArticleData(slug, title_text, body_text, url_text)


def _check_markdown(slug: str, body: str) -> None:
    open_fence: int | None = None
    for number, line in enumerate(body.splitlines(), 1):
        if _FENCE.match(line):
            open_fence = None if open_fence is not None else number
        elif open_fence is None and line.startswith("# "):
            raise InvalidInput(
                f"{slug}: a second top-level heading ('# ...') in the body, line {number}; "
                "an article has one title."
            )
    if open_fence is not None:
        raise InvalidInput(
            f"{slug}: the code block opened at body line {open_fence} is never closed."
        )


def parse_article_markdown(
    text: str, filename: str, url_base: str = ARTICLE_URL_BASE
) -> ArticleData:
    """An article from a Markdown file `<slug>.md`: first line `# Title`, then the body."""
    slug = Path(filename).stem
    if not _SLUG.match(slug):
        raise InvalidInput(
            f"{filename}: the file name must be the article's slug "
            "(lower-case letters and digits joined by '-') followed by .md."
        )
    lines = text.lstrip("\ufeff").splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].startswith("# ") or not lines[0][2:].strip():
        raise InvalidInput(f"{filename}: the first line must be the title, as '# Title'.")
    body = "\n".join(lines[1:]).strip()
    if not body:
        raise InvalidInput(f"{filename}: the article has a title but no body.")
    try:
        return article_data(slug, lines[0][2:].strip(), body, url_base + slug)
    except InvalidInput as exc:
        raise InvalidInput(f"{filename}: {exc.message}") from exc


def read_article_files(
    paths: Iterable[Path], url_base: str = ARTICLE_URL_BASE
) -> list[ArticleData]:
    """Articles from .md files and directories of them, all checked before any is returned."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.glob("*.md")))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInput(f"{path}: no such file or directory.")
    if not files:
        raise InvalidInput("No Markdown (.md) articles found.")
    articles: list[ArticleData] = []
    seen: dict[str, Path] = {}
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"{file}: not UTF-8 text.") from exc
        article = parse_article_markdown(text, file.name, url_base)
        if article.slug in seen:
            raise InvalidInput(f"{file}: the slug {article.slug} is also {seen[article.slug]}.")
        seen[article.slug] = file
        articles.append(article)
    return articles


# --- content: passages and writes ------------------------------------------------------------


def plain(markdown: str) -> str:
    """Markdown made quotable: no emphasis marks, headings, list numbers or table rules."""
    text = re.sub(r"\*\*|__|`", "", markdown)
    text = re.sub(r"^\s{0,3}#{1,6}\s+", "", text, flags=re.M)
    text = re.sub(r"^\s*(?:\d+\.|[-*+])\s+", "", text, flags=re.M)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = re.sub(r"(?<!\w)\*([^*\n]+)\*(?!\w)", r"\1", text)
    lines = [ln for ln in text.splitlines() if not re.match(r"^\s*\|?[\s:|-]+\|?\s*$", ln)]
    return " ".join(" ".join(lines).split())


def product_passages(product: ProductData) -> list[tuple[str, str]]:
    title = f"{product.name}. {product.description}".strip()
    passages = [("title", title)]
    if product.description:
        passages.append(("description", product.description))
    for name in PRODUCT_FIELDS:
        value = stock_text(product.stock) if name == "stock" else getattr(product, name)
        if value and value != "-":
            passages.append((name, value))
    return passages


def stock_text(stock: int) -> str:
    return f"In stock: {stock} available." if stock > 0 else "Out of stock at the moment."


def article_passages(article: ArticleData) -> list[tuple[str, str]]:
    """The title (with the first paragraph, which usually answers it) to find the article,
    then each paragraph to quote."""
    paragraphs = [plain(block) for block in re.split(r"\n\s*\n", article.body)]
    paragraphs = [text for text in paragraphs if text]
    title = f"{article.title} {paragraphs[0]}" if paragraphs else article.title
    return [("title", title)] + [("paragraph", text) for text in paragraphs]


# What each product field is about, in the words customers use, for its embedding.
FIELD_TOPICS = {
    "description": "what it is",
    "materials": "materials, what it is made of",
    "care": "care, washing and cleaning",
    "sizes": "sizes, dimensions and fit",
    "warranty": "warranty, guarantee and repairs",
    "stock": "stock and availability",
}


def _embedding_text(item_title: str, kind: str, text: str) -> str:
    if kind == "title":
        return text
    topic = FIELD_TOPICS.get(kind)
    return f"{item_title} {topic}: {text}" if topic else f"{item_title}: {text}"


async def _write_passages(
    session: AsyncSession, source: str, ref: str, title: str, passages: list[tuple[str, str]]
) -> None:
    await session.execute(
        delete(KnowledgePassage).where(
            KnowledgePassage.source == source, KnowledgePassage.ref == ref
        )
    )
    model = embeddings.load_model()
    vectors = (
        model.embed([_embedding_text(title, kind, text) for kind, text in passages])
        if model is not None
        else None
    )
    for position, (kind, text) in enumerate(passages):
        session.add(
            KnowledgePassage(
                source=source,
                ref=ref,
                kind=kind,
                position=position,
                text=text,
                embedding=embeddings.to_bytes(vectors[position]) if vectors is not None else None,
                model=embedded_by(model),
            )
        )


def embedded_by(model: embeddings.Embedder | None) -> str | None:
    return f"{model.name}#{PASSAGE_RECIPE}" if model is not None else None


async def _embedded_now(session: AsyncSession, source: str, ref: str) -> bool:
    """Whether the item's passages were embedded by this model and recipe (or, without a
    model, whether it has passages at all)."""
    query = select(func.count(KnowledgePassage.id)).where(
        KnowledgePassage.source == source, KnowledgePassage.ref == ref
    )
    model = embeddings.load_model()
    if model is not None:
        query = query.where(KnowledgePassage.model == embedded_by(model))
    return bool(await session.scalar(query))


async def save_product(session: AsyncSession, data: ProductData) -> tuple[KnowledgeProduct, bool]:
    """Adds or updates a product; its passages are re-embedded only when it changed.
    Returns the row and whether anything changed."""
    row = await session.scalar(select(KnowledgeProduct).where(KnowledgeProduct.sku == data.sku))
    values = {
        "name": data.name, "category": data.category, "price": data.price,
        "description": data.description, "materials": data.materials, "care": data.care,
        "sizes": data.sizes, "warranty": data.warranty, "stock": data.stock, "url": data.url,
    }  # fmt: skip
    if row is None:
        row = KnowledgeProduct(sku=data.sku, **values)
        session.add(row)
    else:
        current = {k: getattr(row, k) for k in values}
        if current["price"] is not None:
            current["price"] = Decimal(current["price"])
        if current == values and await _embedded_now(session, "product", data.sku):
            return row, False
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
    await _write_passages(session, "product", data.sku, data.name, product_passages(data))
    await session.flush()
    return row, True


async def save_article(session: AsyncSession, data: ArticleData) -> tuple[KnowledgeArticle, bool]:
    row = await session.scalar(select(KnowledgeArticle).where(KnowledgeArticle.slug == data.slug))
    if row is None:
        row = KnowledgeArticle(slug=data.slug, title=data.title, body=data.body, url=data.url)
        session.add(row)
    elif (row.title, row.body, row.url) == (data.title, data.body, data.url) and (
        await _embedded_now(session, "article", data.slug)
    ):
        return row, False
    else:
        row.title, row.body, row.url = data.title, data.body, data.url
        row.updated_at = utcnow()
    await _write_passages(session, "article", data.slug, data.title, article_passages(data))
    await session.flush()
    return row, True


async def delete_product(session: AsyncSession, sku: str) -> None:
    row = await session.scalar(select(KnowledgeProduct).where(KnowledgeProduct.sku == sku))
    if row is None:
        raise NotFound(f"There is no product with SKU {sku}.")
    await session.delete(row)
    await session.execute(
        delete(KnowledgePassage).where(
            KnowledgePassage.source == "product", KnowledgePassage.ref == sku
        )
    )


async def delete_article(session: AsyncSession, slug: str) -> None:
    row = await session.scalar(select(KnowledgeArticle).where(KnowledgeArticle.slug == slug))
    if row is None:
        raise NotFound(f"There is no article {slug}.")
    await session.delete(row)
    await session.execute(
        delete(KnowledgePassage).where(
            KnowledgePassage.source == "article", KnowledgePassage.ref == slug
        )
    )


@dataclass
class ImportResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0


async def import_products(session: AsyncSession, products: Sequence[ProductData]) -> ImportResult:
    """Writes already-checked products (the caller commits once, so all or nothing)."""
    result = ImportResult()
    existing = set(await session.scalars(select(KnowledgeProduct.sku)))
    for product in products:
        _row, changed = await save_product(session, product)
        if not changed:
            result.unchanged += 1
        elif product.sku in existing:
            result.updated += 1
        else:
            result.added += 1
    return result


async def import_articles(session: AsyncSession, articles: Sequence[ArticleData]) -> ImportResult:
    result = ImportResult()
    existing = set(await session.scalars(select(KnowledgeArticle.slug)))
    for article in articles:
        _row, changed = await save_article(session, article)
        if not changed:
            result.unchanged += 1
        elif article.slug in existing:
            result.updated += 1
        else:
            result.added += 1
    return result


async def load_demo(session: AsyncSession) -> tuple[ImportResult, ImportResult]:
    """The demo shop's 42 products and 29 articles (bot/domain/data/knowledge)."""
    products = parse_products_csv(
        (DEMO_DIR / "products.csv").read_text(encoding="utf-8"), "products.csv"
    )
    articles = read_article_files([DEMO_DIR / "articles"])
    return await import_products(session, products), await import_articles(session, articles)


async def list_products(session: AsyncSession) -> list[KnowledgeProduct]:
    return list(await session.scalars(select(KnowledgeProduct).order_by(KnowledgeProduct.sku)))


async def list_articles(session: AsyncSession) -> list[KnowledgeArticle]:
    return list(await session.scalars(select(KnowledgeArticle).order_by(KnowledgeArticle.slug)))


async def get_product(session: AsyncSession, sku: str) -> KnowledgeProduct | None:
    row: KnowledgeProduct | None = await session.scalar(
        select(KnowledgeProduct).where(KnowledgeProduct.sku == sku)
    )
    return row


async def get_article(session: AsyncSession, slug: str) -> KnowledgeArticle | None:
    row: KnowledgeArticle | None = await session.scalar(
        select(KnowledgeArticle).where(KnowledgeArticle.slug == slug)
    )
    return row


# --- retrieval ---------------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-case content words, plural 's' dropped ('towels' = 'towel')."""
    out = []
    for word in _WORDS.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.append(word)
    return out


@dataclass(frozen=True)
class Item:
    source: str  # "product" | "article"
    ref: str
    title: str
    url: str


@dataclass(frozen=True)
class Passage:
    item: int  # index into Index.items
    kind: str
    text: str
    lead: bool = False  # an article's first paragraph


@dataclass
class Index:
    """Every passage's embedding in one matrix, with the keyword statistics: loaded from the
    database once and again only when the passages changed (`stamp`)."""

    stamp: tuple[str, int, int | None, int | None]
    items: list[Item]
    passages: list[Passage]
    matrix: embeddings.Vectors | None  # one row per passage; None: keyword-only
    title_rows: list[int]  # per item: the row of its title passage
    item_words: list[Counter[str]]
    title_words: list[set[str]]
    idf: dict[str, float]
    model: str | None
    vocabulary: list[str] = field(default_factory=list)
    passage_words: list[set[str]] = field(default_factory=list)
    item_rows: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class Hit:
    item: Item
    score: float
    passage: str
    kind: str


@dataclass(frozen=True)
class Result:
    hits: list[Hit]  # best first
    confident: bool
    method: str  # "embedding" | "keywords" | "empty"
    articles: list[Item] = field(default_factory=list)  # the two closest articles

    @property
    def best(self) -> Hit | None:
        return self.hits[0] if self.hits else None


async def _stamp(session: AsyncSession) -> tuple[str, int, int | None, int | None]:
    """Which database and which version of the passages: they are only ever replaced, so a
    change moves the count, the highest id or the total length of their texts."""
    row = (
        await session.execute(
            select(
                func.count(KnowledgePassage.id),
                func.max(KnowledgePassage.id),
                func.sum(func.length(KnowledgePassage.text)),
            )
        )
    ).one()
    total = int(row[2]) if row[2] is not None else None
    return str(session.get_bind().engine.url), int(row[0]), row[1], total


async def build_index(session: AsyncSession, model: embeddings.Embedder | None) -> Index:
    stamp = await _stamp(session)
    titles: dict[tuple[str, str], tuple[str, str]] = {}
    for product in await session.execute(
        select(KnowledgeProduct.sku, KnowledgeProduct.name, KnowledgeProduct.url)
    ):
        titles[("product", product.sku)] = (product.name, product.url)
    for article in await session.execute(
        select(KnowledgeArticle.slug, KnowledgeArticle.title, KnowledgeArticle.url)
    ):
        titles[("article", article.slug)] = (article.title, article.url)
    rows = (
        await session.scalars(
            select(KnowledgePassage).order_by(
                KnowledgePassage.source, KnowledgePassage.ref, KnowledgePassage.position
            )
        )
    ).all()
    items: list[Item] = []
    positions: dict[tuple[str, str], int] = {}
    passages: list[Passage] = []
    vectors: list[embeddings.Vectors] = []
    usable = model is not None
    title_rows: list[int] = []
    for row in rows:
        key = (row.source, row.ref)
        if key not in titles:
            continue
        if key not in positions:
            positions[key] = len(items)
            items.append(Item(row.source, row.ref, *titles[key]))
            title_rows.append(len(passages))
        if row.kind == "title":
            title_rows[positions[key]] = len(passages)
        lead = row.source == "article" and row.kind == "paragraph" and row.position == 1
        passages.append(Passage(positions[key], row.kind, row.text, lead))
        if row.embedding is None or model is None or row.model != embedded_by(model):
            usable = False
        else:
            vectors.append(embeddings.from_bytes(row.embedding))
    item_words: list[Counter[str]] = [Counter() for _ in items]
    title_words: list[set[str]] = [set(words(item.title)) | set(words(item.ref)) for item in items]
    for passage in passages:
        item_words[passage.item].update(words(passage.text))
    for index, item in enumerate(items):
        item_words[index].update(words(item.title))
    document_counts: Counter[str] = Counter()
    for counts in item_words:
        document_counts.update(set(counts))
    total = max(len(items), 1)
    idf = {w: math.log(1 + total / n) for w, n in document_counts.items()}
    matrix = np.vstack(vectors) if usable and vectors else None
    item_rows: list[list[int]] = [[] for _ in items]
    for position, entry in enumerate(passages):
        item_rows[entry.item].append(position)
    return Index(
        stamp, items, passages, matrix, title_rows, item_words, title_words, idf,
        model.name if matrix is not None and model is not None else None,
        sorted(idf), [set(words(p.text)) for p in passages], item_rows,
    )  # fmt: skip


@dataclass
class Retriever:
    """One per process (the action server's, the web service's): the model and the index."""

    model: embeddings.Embedder | None
    index: Index | None = None
    timings: list[float] = field(default_factory=list)

    async def current_index(self, session: AsyncSession) -> Index:
        if self.index is None or self.index.stamp != await _stamp(session):
            self.index = await build_index(session, self.model)
        return self.index

    async def search(self, session: AsyncSession, question: str) -> Result:
        return search(await self.current_index(session), self.model, question)


Scores = npt.NDArray[np.float64]


def query_words(index: Index, question: str) -> set[str]:
    """The question's content words; a word the shop never uses that is one typo away from
    one it does ('instalments' for 'installments', 'dishwaser') is read as that word."""
    found = set()
    for word in words(question):
        if word not in index.idf and len(word) >= 5:
            close = difflib.get_close_matches(word, index.vocabulary, n=1, cutoff=0.85)
            word = close[0] if close else word
        found.add(word)
    return found


def _keyword_scores(index: Index, q_words: set[str]) -> Scores:
    """Per item: the share of the question's (idf-weighted) words found in the item, mixed
    with the share found in its title/name. Unknown words (things the shop never mentions)
    count against it: '… sofas' is not about anything here."""
    n = len(index.items)
    if not q_words:
        return np.zeros(n)
    default_idf = math.log(1 + max(n, 1))
    weights = {w: index.idf.get(w, default_idf) for w in q_words}
    total = sum(weights.values())
    body = np.array(
        [sum(weights[w] for w in q_words if w in counts) / total for counts in index.item_words]
    )
    title = np.array(
        [sum(weights[w] for w in q_words if w in names) / total for names in index.title_words]
    )
    mixed = (1 - TITLE_KEYWORD_SHARE) * body + TITLE_KEYWORD_SHARE * title
    # Words the shop's content never uses ('engraved', 'phone', 'sofa') are what the question
    # asks about more often than not: they lower every item's score alike.
    unknown = sum(weights[w] for w in q_words if w not in index.idf) / total
    return mixed - UNKNOWN_WORDS_PENALTY * unknown


def search(index: Index, model: embeddings.Embedder | None, question: str) -> Result:
    if not index.items:
        return Result([], False, "empty")
    q_words = query_words(index, question)
    keyword = _keyword_scores(index, q_words)
    best_rows: list[int] = []
    if index.matrix is not None and model is not None:
        q = model.embed([question])[0]
        sims = index.matrix @ q
        item_of = np.fromiter(
            (p.item for p in index.passages), dtype=np.int64, count=len(index.passages)
        )
        best_passage: Scores = np.full(len(index.items), -1.0)
        best_rows = [-1] * len(index.items)
        lead = np.array([p.lead for p in index.passages], dtype=np.float64)
        sims = sims + LEAD_BONUS * lead
        for row, item in enumerate(item_of):
            kind = index.passages[row].kind
            if kind != "title" and sims[row] > best_passage[item]:
                best_passage[item], best_rows[item] = sims[row], row
        title_sim = sims[index.title_rows]
        best_passage = np.where(best_passage < 0, title_sim, best_passage)
        scores = (
            TITLE_WEIGHT * title_sim + (1 - TITLE_WEIGHT) * best_passage + KEYWORD_WEIGHT * keyword
        )
        threshold, method = THRESHOLD, "embedding"
    else:
        scores = keyword
        threshold, method = KEYWORD_THRESHOLD, "keywords"
        for item in range(len(index.items)):
            best_rows.append(_keyword_passage(index, item, q_words))
    order = np.argsort(-scores)
    hits = []
    for item in order[:5]:
        row = best_rows[item] if best_rows and best_rows[item] >= 0 else index.title_rows[item]
        if index.items[item].source == "product" and index.item_rows:
            row = cued_row(index, int(item), question) or row
        passage = index.passages[row]
        hits.append(Hit(index.items[item], float(scores[item]), passage.text, passage.kind))
    articles = [index.items[i] for i in order if index.items[i].source == "article"][:2]
    return Result(hits, bool(hits) and hits[0].score >= threshold, method, articles)


# Words that say which of a product's fields a question is about ('words()' forms: plural
# 's' dropped). The item is chosen by meaning; among its passages, a question that names
# exactly one field is answered from that field rather than the one nearest in meaning,
# which the product's name pulls to its description (a tester's "does the merino jumper
# shrink in the wash?" got the jumper's "About" text).
FIELD_CUES: dict[str, frozenset[str]] = {
    "care": frozenset(
        {"wash", "washing", "washable", "dishwasher", "clean", "cleaning", "shrink",
         "shrinks", "iron", "ironing", "dryer", "tumble", "dry", "oven", "induction", "hob",
         "stove", "microwave", "season", "seasoning", "care", "bleach", "hand-wash"}
    ),
    "sizes": frozenset(
        {"size", "sizing", "fit", "big", "small", "large", "dimension", "measure",
         "measurement", "cm", "inch", "inche", "wide", "tall", "length", "width",
         "height", "capacity", "litre", "liter", "heavy", "weight", "weigh"}
    ),
    "materials": frozenset(
        {"made", "material", "fabric", "cotton", "wool", "linen", "steel", "plastic", "bpa",
         "vegan", "organic", "leather", "wood", "wooden", "glass", "ceramic", "enamel"}
    ),
    "warranty": frozenset({"warranty", "guarantee", "guaranteed", "repair", "lifetime"}),
    "stock": frozenset(
        {"stock", "available", "availability", "sold", "restock", "left", "back"}
    ),
}  # fmt: skip


def cued_row(index: Index, item: int, question: str) -> int | None:
    """The row of the one product field the question names, if it names one the item has."""
    said = set(words(question))
    kinds = {kind for kind, cues in FIELD_CUES.items() if said & cues}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    return next((row for row in index.item_rows[item] if index.passages[row].kind == kind), None)


def _keyword_passage(index: Index, item: int, q_words: set[str]) -> int:
    best, best_hits = -1, 0.0
    for row in index.item_rows[item]:
        if index.passages[row].kind == "title":
            continue
        hits = sum(index.idf.get(w, 0.0) for w in q_words & index.passage_words[row])
        if best < 0 or hits > best_hits:
            best, best_hits = row, hits
    return best


# --- unanswered questions ----------------------------------------------------------------------


def question_key(question: str) -> str:
    return " ".join(_WORDS.findall(question.lower()))[:300]


async def record_unanswered(session: AsyncSession, question: str, closest: list[str]) -> None:
    key = question_key(question)
    if not key:
        return
    row = await session.scalar(
        select(UnansweredQuestion).where(UnansweredQuestion.question_key == key)
    )
    now = utcnow()
    if row is None:
        session.add(
            UnansweredQuestion(
                question_key=key, question=question.strip()[:1000], count=1,
                closest=closest, first_asked_at=now, last_asked_at=now,
            )
        )  # fmt: skip
    else:
        row.count += 1
        row.question = question.strip()[:1000]
        row.closest = closest
        row.last_asked_at = now
    await session.flush()


async def unanswered(session: AsyncSession, limit: int = 200) -> list[UnansweredQuestion]:
    return list(
        await session.scalars(
            select(UnansweredQuestion)
            .order_by(UnansweredQuestion.count.desc(), UnansweredQuestion.last_asked_at.desc())
            .limit(limit)
        )
    )


# --- the bot's answer ----------------------------------------------------------------------

YES_NO = [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}]


@dataclass(frozen=True)
class Reply:
    text: str
    buttons: list[dict[str, str]]
    slots: dict[str, Any]
    result: Result
    milliseconds: float


def quote(text: str, limit: int = 400) -> str:
    """The passage as quoted in the chat: whole, or cut at a word before `limit`."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def answer_text(hit: Hit) -> str:
    if hit.item.source == "product":
        return texts.render(
            "utter_knowledge_product",
            product=hit.item.title,
            sku=hit.item.ref,
            label=FIELD_LABELS.get(hit.kind, "About"),
            passage=quote(hit.passage),
            url=hit.item.url,
        )
    return texts.render(
        "utter_knowledge_article",
        title=hit.item.title,
        passage=quote(hit.passage),
        url=hit.item.url,
    )


async def confident_answer(
    session: AsyncSession, retriever: Retriever, question: str
) -> str | None:
    """The answer when the knowledge base is sure of one; None (nothing recorded) if not."""
    result = await retriever.search(session, question)
    if result.best is not None and result.confident:
        return answer_text(result.best)
    return None


async def reply(session: AsyncSession, retriever: Retriever, question: str) -> Reply:
    """The answer to a product or policy question: the best passage quoted with its link, or
    'not sure' with the two closest articles and the offer of a person (the question is
    then counted among the unanswered ones)."""
    started = time.perf_counter()
    result = await retriever.search(session, question)
    best = result.best
    if best is not None and result.confident:
        return Reply(answer_text(best), [], {}, result, timed_ms(started))
    await record_unanswered(session, question, [item.ref for item in result.articles])
    slots = {"awaiting": "confirmation", "pending_action": "offer_human"}
    if len(result.articles) == 2:
        first, second = result.articles
        text = texts.render(
            "utter_knowledge_not_sure",
            first=first.title,
            first_url=first.url,
            second=second.title,
            second_url=second.url,
        )
    else:
        text = texts.render("utter_knowledge_not_sure_no_articles")
    return Reply(text, YES_NO, slots, result, timed_ms(started))


@functools.cache
def shared_retriever() -> Retriever:
    """This process's retriever (the model is loaded on the first call, not at import)."""
    return Retriever(embeddings.load_model())


def timed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000

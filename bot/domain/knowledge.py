"""The shop's knowledge: products and help-centre articles, and answers found by meaning
(issue #19 item 5; docs/decisions.md "Knowledge answers").

* Content lives in the database (knowledge_products, knowledge_articles); admins edit it in
  the console or through the API, or import it: products from CSV, articles from Markdown
  (`python -m bot import-knowledge`). An import is checked whole before anything is written.
* Each product or article is cut into passages (its title, each product field, each article
  paragraph) whose embeddings are computed when the item is written — never per question.
* A question is embedded once (bot/domain/embeddings.py) and scored against every passage;
  an item's score mixes how close the question is to its title and to its best passage,
  plus a keyword overlap (by light stem and synonym group, bot/domain/data/knowledge/
  aboutness.yml). Without the model the keyword part answers alone.
* Aboutness (`aboutness`): a product the question names must also be what was asked about.
  The question's other content words (but a few with no topic of their own) must
  be covered by one of its passages — the same stem, a synonym, a cue for that field or a
  word whose own embedding is close — for half their idf weight; that passage is quoted.
  "can i get the lamp in green" names the lamp but nothing the shop says about it covers
  "green". A product the question does not name does not answer; "do you sell …" is
  answered only by what it names; articles matched by meaning are not checked.
* Follow-ups (`resolve`, `answer_all`): FOCUS_SLOT carries what the last answer was about,
  so "how heavy is it" is asked about it; two asks in one message are answered each.
* Below `THRESHOLD`, or not about what was asked, the bot says it is not sure, names the two
  closest articles, offers a person and counts the question in knowledge_unanswered.
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
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml
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
SYNONYM_SHARE = 1.0  # of a keyword found only as another form or a synonym
# Stored with each passage's embedding: a passage embedded by another model or from other
# text (a change to FIELD_TOPICS or the passages) is embedded again at the next import.
PASSAGE_RECIPE = "2"
KEYWORD_THRESHOLD = 0.45  # the keyword-only fallback's own bar (its scores run differently)
# Aboutness (tuned on bench/knowledge/dev.yml and dev_abstain.yml only): the idf-weighted
# share of the question's other content words a passage must cover, and how close a word's
# own embedding must be to one of the passage's words to count as covering it.
MIN_COVERAGE = 0.5
WORD_SIMILARITY = 0.65
ABOUT_CANDIDATES = 3  # how many of the best items (above the threshold) are checked
ABOUTNESS_FILE = DEMO_DIR / "aboutness.yml"

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
        "name": data.name,
        "category": data.category,
        "price": data.price,
        "description": data.description,
        "materials": data.materials,
        "care": data.care,
        "sizes": data.sizes,
        "warranty": data.warranty,
        "stock": data.stock,
        "url": data.url,
    }
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

    def count(self, changed: bool, existed: bool) -> None:
        if not changed:
            self.unchanged += 1
        elif existed:
            self.updated += 1
        else:
            self.added += 1


async def import_products(session: AsyncSession, products: Sequence[ProductData]) -> ImportResult:
    """Writes already-checked products (the caller commits once, so all or nothing)."""
    result = ImportResult()
    existing = set(await session.scalars(select(KnowledgeProduct.sku)))
    for product in products:
        _row, changed = await save_product(session, product)
        result.count(changed, product.sku in existing)
    return result


async def import_articles(session: AsyncSession, articles: Sequence[ArticleData]) -> ImportResult:
    """Writes already-checked articles, like `import_products`."""
    result = ImportResult()
    existing = set(await session.scalars(select(KnowledgeArticle.slug)))
    for article in articles:
        _row, changed = await save_article(session, article)
        result.count(changed, article.slug in existing)
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


# Compounds written as one word, two or hyphenated, read as one on both sides ('t-shirt',
# 'tshirt' and 't shirt'; 'see through'), so 'linen shirt' does not name the T-shirt.
_COMPOUNDS = (
    (re.compile(r"\bt[\s-]+shirt"), "tshirt"),
    (re.compile(r"\bsee[\s-]+through"), "seethrough"),
    (re.compile(r"\bmade[\s-]+to[\s-]+(?:measure|order)"), "madetomeasure"),
    (re.compile(r"\bgift[\s-]*cards?\b"), "gift giftcard"),  # still names 'Gift vouchers'
)


def words(text: str) -> list[str]:
    """Lower-case content words, plural 's' dropped ('towels' = 'towel')."""
    out = []
    text = text.lower()
    for pattern, joined in _COMPOUNDS:
        text = pattern.sub(joined, text)
    for word in _WORDS.findall(text):
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
    # Aboutness: per passage the stems it covers (its text, what its field is about, the
    # item's name) and their rows in `stem_matrix` (one embedding per stem; None: no model).
    cover_stems: list[frozenset[str]] = field(default_factory=list)
    cover_rows: list[npt.NDArray[np.int64]] = field(default_factory=list)
    stem_matrix: embeddings.Vectors | None = None
    # Per item the stems of its name that name it in a question (not numbers or measures).
    name_stems: list[frozenset[str]] = field(default_factory=list)
    # Per item the stems of its title passage (a product's name and description).
    about_stems: list[frozenset[str]] = field(default_factory=list)
    # Per item the stems of all its words, and all the shop's stems (keywords by stem).
    item_stems: list[frozenset[str]] = field(default_factory=list)
    stems: frozenset[str] = frozenset()
    # Per item the stems of its name/title (keywords by stem and synonym).
    title_stems: list[frozenset[str]] = field(default_factory=list)


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
    coverage: float = 1.0  # aboutness of the best hit's passage (1.0: not checked)

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
    item_stems = [frozenset(stem_word(w) for w in counts) for counts in item_words]
    item_rows: list[list[int]] = [[] for _ in items]
    for position, entry in enumerate(passages):
        item_rows[entry.item].append(position)
    cover_stems, cover_rows, stem_matrix = _cover(
        items, passages, model if matrix is not None else None
    )
    return Index(
        stamp,
        items,
        passages,
        matrix,
        title_rows,
        item_words,
        title_words,
        idf,
        model.name if matrix is not None and model is not None else None,
        sorted(idf),
        [set(words(p.text)) for p in passages],
        item_rows,
        cover_stems,
        cover_rows,
        stem_matrix,
        [name_stems(item.title) for item in items],
        [name_stems(passages[row].text) for row in title_rows],
        item_stems,
        frozenset().union(*item_stems),
        [frozenset(stem_word(w) for w in names) for names in title_words],
    )


def name_stems(title: str) -> frozenset[str]:
    ignore = aboutness_words().ignore
    return frozenset(
        stem
        for stem in (stem_word(w) for w in words(title) if len(w) > 2 and not _MEASURE.match(w))
        if stem not in ignore and stem not in _GENERIC_NAME_WORDS
    )


# Words in names that say nothing of which item is meant ('Pour-Over', 'Set of 4', 'Large').
_GENERIC_NAME_WORDS = frozenset({"over", "under", "out", "off", "set", "pack", "large", "small"})


_MEASURE = re.compile(r"^\d+[a-z]{0,2}$")


def _cover(
    items: list[Item], passages: list[Passage], model: embeddings.Embedder | None
) -> tuple[list[frozenset[str]], list[npt.NDArray[np.int64]], embeddings.Vectors | None]:
    """Per passage the stems that count as said by it, their rows in one matrix of stem
    embeddings (each stem embedded once, from the first word seen with it)."""
    surface: dict[str, str] = {}
    own: list[set[str]] = []
    for passage in passages:
        text = " ".join(
            (passage.text, FIELD_TOPICS.get(passage.kind, ""), items[passage.item].title)
        ).replace("°C", " degrees celsius ")
        found = set()
        for word in words(text):
            stem = stem_word(word)
            surface.setdefault(stem, word)
            found.add(stem)
        own.append(found)
    # What the item is (its title passage: a product's name and description, an article's
    # title and first paragraph) goes with each of its passages.
    title_stems: dict[int, set[str]] = {}
    for passage, found in zip(passages, own, strict=True):
        if passage.kind == "title":
            title_stems[passage.item] = found
    stems_of = [
        frozenset(found | title_stems.get(passage.item, set()))
        for passage, found in zip(passages, own, strict=True)
    ]
    ordered = sorted(surface)
    position = {stem: row for row, stem in enumerate(ordered)}
    # Words of one or two letters ('d', 'uk') are compared as they are, not by embedding.
    rows = [
        np.array(sorted(position[s] for s in found if len(s) > 2), dtype=np.int64)
        for found in stems_of
    ]
    matrix = model.embed([surface[s] for s in ordered]) if model is not None and ordered else None
    return stems_of, rows, matrix


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
    return {read for _said, read in _query_pairs(index, question)}


def _query_pairs(index: Index, question: str) -> list[tuple[str, str]]:
    """Each content word as written and as read (typos one letter away corrected)."""
    pairs = []
    for word in dict.fromkeys(words(question)):
        read = word
        if word not in index.idf and len(word) >= 5:
            close = difflib.get_close_matches(word, index.vocabulary, n=1, cutoff=0.85)
            read = close[0] if close else word
        pairs.append((word, read))
    return pairs


def _keyword_scores(index: Index, q_words: set[str]) -> Scores:
    """Per item: the share of the question's (idf-weighted) words found in the item, mixed
    with the share found in its title/name. Unknown words (things the shop never mentions)
    count against it: '… sofas' is not about anything here. A word the item does not use
    counts for SYNONYM_SHARE when another form of it or a word of its synonym group does
    ('postage' for 'shipping', 'wrap' for 'wrapping'); such a word is not unknown."""
    n = len(index.items)
    if not q_words:
        return np.zeros(n)
    default_idf = math.log(1 + max(n, 1))
    weights = {w: index.idf.get(w, default_idf) for w in q_words}
    total = sum(weights.values())
    synonyms = aboutness_words().synonyms
    related = {}
    for w in q_words:
        stem = stem_word(w)
        related[w] = frozenset({stem} | synonyms.get(stem, frozenset()))
    body = np.array(
        [
            sum(
                weights[w] * (1.0 if w in counts else SYNONYM_SHARE if related[w] & stems else 0.0)
                for w in q_words
            )
            / total
            for counts, stems in zip(index.item_words, index.item_stems, strict=True)
        ]
    )
    # the name/title by word, stem or synonym: 'whats the postage' is about 'How much does
    # shipping cost?', 'do u deliver to the usa' about 'Which countries do you ship to?'
    title = np.array(
        [
            sum(
                weights[w] * (1.0 if w in names else SYNONYM_SHARE if related[w] & stems else 0.0)
                for w in q_words
            )
            / total
            for names, stems in zip(index.title_words, index.title_stems, strict=True)
        ]
    )
    mixed = (1 - TITLE_KEYWORD_SHARE) * body + TITLE_KEYWORD_SHARE * title
    # Words the shop's content never uses ('engraved', 'phone', 'sofa') are what the question
    # asks about more often than not: they lower every item's score alike.
    unknown = (
        sum(weights[w] for w in q_words if w not in index.idf and not related[w] & index.stems)
        / total
    )
    return mixed - UNKNOWN_WORDS_PENALTY * unknown


_SUFFIXES = (
    ("ies", "y"),
    ("ied", "y"),
    ("ing", ""),
    ("ed", ""),
    ("ity", ""),
    ("ic", ""),
    ("ness", ""),
    ("ment", ""),
    ("ly", ""),
    ("es", ""),
    ("s", ""),
    ("y", ""),
)


_NUMBER_WORDS = {
    w: str(n)
    for n, w in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
    )
}


def stem_word(word: str) -> str:
    """A light stem, the same for both sides of a comparison: 'acidic' = 'acidity' = 'acid',
    'washing' = 'washed' = 'wash', 'typed' = 'type'."""
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                break
            word = word[: -len(suffix)] + replacement
            if suffix in ("ing", "ed") and len(word) > 3 and word[-1] == word[-2]:
                word = word[:-1]  # 'shipping' = 'ship'
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


@dataclass(frozen=True)
class Aboutness:
    ignore: frozenset[str]  # stems
    synonyms: dict[str, frozenset[str]]  # stem -> the other stems of its groups
    field_cues: dict[str, frozenset[str]] = field(default_factory=dict)  # field -> stems


@functools.cache
def aboutness_words(path: Path = ABOUTNESS_FILE) -> Aboutness:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    ignore = frozenset(stem_word(w) for w in words(" ".join(map(str, raw.get("ignore", [])))))
    synonyms: dict[str, set[str]] = {}
    for group in raw.get("synonyms", []):
        stems = {stem_word(w) for w in words(" ".join(map(str, group)))}
        for stem in stems:
            synonyms.setdefault(stem, set()).update(stems - {stem})
    cues = {
        str(kind): frozenset(stem_word(w) for w in words(" ".join(map(str, listed))))
        for kind, listed in (raw.get("field_cues") or {}).items()
    }
    return Aboutness(ignore, {k: frozenset(v) for k, v in synonyms.items()}, cues)


@dataclass(frozen=True)
class _AskedWord:
    said: str
    stems: frozenset[str]  # as written and as read (a typo corrected)
    weight: float
    vector: embeddings.Vectors | None  # of the word as written


def _asked(
    index: Index, model: embeddings.Embedder | None, pairs: list[tuple[str, str]], item: int
) -> list[_AskedWord]:
    """The question's words that the item's name does not already say: what is asked."""
    about = aboutness_words()
    named = {stem_word(w) for w in index.title_words[item]}
    default_idf = math.log(1 + max(len(index.items), 1))
    kept = []
    for said, read in pairs:
        stems = frozenset({stem_word(said), stem_word(read)})
        if stems & named or stem_word(said) in about.ignore:
            continue
        if len(said) == 1 and not said.isdigit():
            continue  # 'r the plates ok', 'u'
        kept.append((said, read, stems))
    vectors = (
        model.embed([said for said, _, _ in kept])
        if model is not None and index.stem_matrix is not None and kept
        else None
    )
    return [
        _AskedWord(
            said,
            stems,
            index.idf.get(read, default_idf),
            vectors[position] if vectors is not None else None,
        )
        for position, (said, read, stems) in enumerate(kept)
    ]


def coverage(index: Index, asked: list[_AskedWord], row: int) -> float:
    """The idf-weighted share of the asked words that passage `row` (with its item's title
    passage) covers: the same stem, a synonym's, the same number (a measure like '100cm':
    any number), or a word whose own embedding is at least WORD_SIMILARITY close."""
    if not asked:
        return 1.0
    stems = index.cover_stems[row]
    kind = index.passages[row].kind
    synonyms = aboutness_words().synonyms
    has_number = any(any(c.isdigit() for c in s) for s in stems)
    covered = 0.0
    for word in asked:
        if word.stems & stems or any(synonyms.get(s, frozenset()) & stems for s in word.stems):
            covered += word.weight
            continue
        if is_cue(word.said, word.stems, kind) and word.said not in _DATUM_CUES:
            # a care question answered by the care field, whatever detail it asks about
            # ('can the tea towels go in the dryer': the field says how to wash and dry them)
            covered += word.weight
            continue
        if any(c.isdigit() for s in word.stems for c in s):
            # A bare number must be the passage's ('a 5 pack'); a measure ('100cm') is
            # covered by any number in it.
            measure = any(c.isalpha() for s in word.stems for c in s)
            covered += word.weight if measure and has_number else 0.0
            continue
        rows = index.cover_rows[row]
        if (
            word.vector is not None
            and index.stem_matrix is not None
            and rows.size
            and float(np.max(index.stem_matrix[rows] @ word.vector)) >= WORD_SIMILARITY
        ):
            covered += word.weight
    return covered / sum(word.weight for word in asked)


def _about_passage(index: Index, asked: list[_AskedWord], item: int, row: int) -> tuple[int, float]:
    """The item's passage that best covers what is asked (the retrieval's own choice `row`
    when none covers more) and that coverage."""
    best_row, best = row, coverage(index, asked, row)
    for other in index.item_rows[item]:
        if best >= 1.0:
            break
        if other == row:
            continue
        value = coverage(index, asked, other)
        if value > best:
            best_row, best = other, value
    return best_row, best


# "do you sell …", "do you have …": whether the shop carries something. Answered only by a
# product (or article) the question names; anything else the retrieval found is a word
# overlap ("sell" in the privacy article), not an answer.
_CATALOGUE = re.compile(
    r"^\W*(?:(?:hi|hey|hello|ok|okay|and|so)\W+)*(?:do|does) (?:you|u|ya|the shop|your shop) "
    r"(?:guys )?(?:sell|stock|carry|have|offer|make|do)\b(?! (?:an?|any) (?:option|way))"
)


_WHO = re.compile(r"\bwho\b", re.I)


def asks_if_sold(question: str) -> bool:
    return bool(_CATALOGUE.search(question.lower()))


def names(
    index: Index,
    pairs: list[tuple[str, str]],
    item: int,
    stems: list[frozenset[str]] | None = None,
) -> bool:
    """Whether the question names the item: a word of its name (three letters or more, not
    a number or a measure) as written or as read; with `stems` (Index.about_stems), a word
    of its name or of what it is ('the sharpening stone' for the whetstone)."""
    named = (stems or index.name_stems)[item]
    return any(stem_word(said) in named or stem_word(read) in named for said, read in pairs)


def _asks_unknown(index: Index, pairs: list[tuple[str, str]]) -> bool:
    """Whether the question has a content word (not ignorable, not a number) that the shop's
    content never uses, in no form and by no synonym."""
    about = aboutness_words()
    for said, read in pairs:
        stem = stem_word(read)
        if (
            read in index.idf
            or stem in about.ignore
            or len(said) < 4  # 'thx', 'sub', 'bit': chat shorthand, not a topic
            or any(c.isdigit() for c in said)
        ):
            continue
        if not ({stem} | about.synonyms.get(stem, frozenset())) & index.stems:
            return True
    return False


def aboutness(
    index: Index,
    model: embeddings.Embedder | None,
    question: str,
    pairs: list[tuple[str, str]],
    item: int,
    row: int,
) -> tuple[int, float]:
    """The passage to quote and how much of what is asked it covers (1.0: not checked).

    Checked only when the item's name is in the question (the name alone then lifts the
    item over the threshold, whatever is asked about it: "who designed the ceramic lamp")
    or the question asks whether the shop sells something. A question that does not name
    what answers it was matched by its meaning as a whole, in the customer's own words,
    which the passages need not share: the score alone decides."""
    catalogue = asks_if_sold(question)
    product = index.items[item].source == "product"
    if product and _WHO.search(question):
        # 'who designed / makes / roasts …': a person or maker, never in a product's data
        return row, 0.0
    if product and not names(index, pairs, item, index.about_stems):
        # One product's data does not answer a question that says nothing of which product
        # ('how heavy is it' with nothing in focus): neither its name nor what it is.
        return row, 0.0
    if not product and names(index, pairs, item) and _asks_unknown(index, pairs):
        # 'can i pay for the coffee box with bitcoin': a word the whole shop never uses,
        # nor any synonym of it, is what is asked, and no article says it
        return row, 0.0
    if not names(index, pairs, item):
        # 'do you sell …' is answered only by what it names
        return (row, 0.0) if catalogue else (row, 1.0)
    if not catalogue and not product:
        return row, 1.0
    asked = _asked(index, model, pairs, item)
    return _about_passage(index, asked, item, row)


def search(index: Index, model: embeddings.Embedder | None, question: str) -> Result:
    if not index.items:
        return Result([], False, "empty")
    pairs = _query_pairs(index, question)
    q_words = {read for _said, read in pairs}
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
    order = [int(i) for i in np.argsort(-scores)]
    rows = []
    for item in order[:5]:
        row = best_rows[item] if best_rows and best_rows[item] >= 0 else index.title_rows[item]
        if index.items[item].source == "product" and index.item_rows:
            row = cued_row(index, item, question) or row
        rows.append(row)
    about = 1.0
    if method == "embedding" and rows:
        # The first of the best items above the threshold that is about what was asked
        # moves to the front (with the passage that covers it best).
        first: tuple[int, int, float] | None = None
        named_product: int | None = None  # a product the question names, not about it
        # A product the question names by its name goes before one it only describes ('the
        # casserole lid' is about the casserole, not a saucepan whose text says 'lid').
        by_name = any(
            index.items[order[place]].source == "product" and names(index, pairs, order[place])
            for place in range(min(ABOUT_CANDIDATES, len(rows)))
            if not place or scores[order[place]] >= threshold
        )
        for place in range(min(ABOUT_CANDIDATES, len(rows))):
            if place and scores[order[place]] < threshold:
                break
            item = order[place]
            if named_product is not None and index.items[item].source == "product":
                # … nor does another product, unless the question names that one too
                row, value = aboutness(index, model, question, pairs, item, rows[place])
                if not names(index, pairs, item):
                    value = 0.0
            elif named_product is not None and index.items[item].source == "article":
                # 'how much caffeine is in the kenya coffee': the product it names does not
                # say; an article next in line must say it (what is asked besides that name)
                asked = _asked(index, model, pairs, named_product)
                row, value = _about_passage(index, asked, item, rows[place])
            else:
                row, value = aboutness(index, model, question, pairs, item, rows[place])
            if by_name and index.items[item].source == "product" and not names(index, pairs, item):
                value = 0.0
            if (
                named_product is None
                and value < MIN_COVERAGE
                and index.items[item].source == "product"
                and names(index, pairs, item)
            ):
                named_product = item
            if first is None:
                first = (place, row, value)
            if value >= MIN_COVERAGE:
                first = (place, row, value)
                break
        assert first is not None
        place, row, about = first
        order.insert(0, order.pop(place))
        rows.pop(place)
        rows.insert(0, row)
    hits = []
    for item, row in zip(order[:5], rows, strict=False):
        passage = index.passages[row]
        hits.append(Hit(index.items[item], float(scores[item]), passage.text, passage.kind))
    articles = [index.items[i] for i in order if index.items[i].source == "article"][:2]
    confident = bool(hits) and hits[0].score >= threshold and about >= MIN_COVERAGE
    return Result(hits, confident, method, articles, about)


# Words that say which of a product's fields a question is about ('words()' forms: plural
# 's' dropped). The item is chosen by meaning; among its passages, a question that names
# exactly one field is answered from that field rather than the one nearest in meaning,
# which the product's name pulls to its description (a tester's "does the merino jumper
# shrink in the wash?" got the jumper's "About" text).
FIELD_CUES: dict[str, frozenset[str]] = {
    "care": frozenset(
        {
            "wash",
            "washing",
            "washable",
            "dishwasher",
            "clean",
            "cleaning",
            "shrink",
            "shrinks",
            "iron",
            "ironing",
            "dryer",
            "tumble",
            "dry",
            "oven",
            "induction",
            "hob",
            "stove",
            "microwave",
            "season",
            "seasoning",
            "care",
            "bleach",
            "hand-wash",
        }
    ),
    "sizes": frozenset(
        {
            "size",
            "sizing",
            "fit",
            "big",
            "small",
            "large",
            "dimension",
            "measure",
            "measurement",
            "cm",
            "inch",
            "inche",
            "wide",
            "tall",
            "length",
            "width",
            "height",
            "capacity",
            "litre",
            "liter",
            "heavy",
            "weight",
            "weigh",
        }
    ),
    "materials": frozenset(
        {
            "made",
            "material",
            "fabric",
            "cotton",
            "wool",
            "linen",
            "steel",
            "plastic",
            "bpa",
            "vegan",
            "organic",
            "leather",
            "wood",
            "wooden",
            "glass",
            "ceramic",
            "enamel",
        }
    ),
    "warranty": frozenset(
        {
            "warranty",
            "guarantee",
            "guaranteed",
            "repair",
            "lifetime",
            "broke",
            "broken",
            "stopped",
            "faulty",
            "fault",
            "defect",
            "defective",
        }
    ),
    "stock": frozenset({"stock", "available", "availability", "sold", "restock", "left", "back"}),
}


# Cue words that ask for one datum the field may or may not give: 'how heavy is it' is not
# answered by a sizes field without a weight ('the weight is not listed', a person offered).
_DATUM_CUES = frozenset({"heavy", "weight", "weigh"})


def is_cue(word: str, stems: frozenset[str], kind: str) -> bool:
    """Whether a question word asks about product field `kind` (FIELD_CUES, or by stem the
    field_cues of aboutness.yml)."""
    return word in FIELD_CUES.get(kind, frozenset()) or bool(
        stems & aboutness_words().field_cues.get(kind, frozenset())
    )


def cued_row(index: Index, item: int, question: str) -> int | None:
    """The row of the one product field the question names, if it names one the item has."""
    said = set(words(question)) - index.title_words[item]  # 'Wool' in a name asks nothing
    kinds = {
        kind
        for kind in FIELD_CUES
        if any(is_cue(word, frozenset({stem_word(word)}), kind) for word in said)
    }
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
                question_key=key,
                question=question.strip()[:1000],
                count=1,
                closest=closest,
                first_asked_at=now,
                last_asked_at=now,
            )
        )
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
    more: list[str] = field(default_factory=list)  # a second ask's answer, said after `text`


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


# --- follow-ups and two questions in one message ------------------------------------------

# The slot that carries what the last knowledge answer was about ("product:KIT-0142",
# "article:shipping-costs", space-separated when one message got two answers), so that
# "how heavy is it" right after a question about the casserole is about the casserole.
FOCUS_SLOT = "knowledge_focus"
_BACK = frozenset({"it", "its", "they", "them", "this", "that", "these", "those", "one", "ones"})
# "how long does it take and is it free?": the second ask starts after 'and' (or a '?')
# with a question word or an auxiliary.
_ASK_START = (
    r"(?:is|are|do|does|did|can|could|will|would|how|what|whats|when|where|which|who|"
    r"should|shall)\b"
)
_SECOND_ASK = re.compile(
    rf"[?,;]?\s+(?:and|also|plus)\s+(?={_ASK_START})|[?]+\s+(?={_ASK_START})", re.I
)


def asks(question: str) -> list[str]:
    """The questions in one message (at most 3), in order."""
    parts = [part.strip(" ?,;") for part in _SECOND_ASK.split(question.strip())]
    parts = [part for part in parts if words(part)]
    return parts[:3] if len(parts) > 1 else [question]


def refers_back(question: str) -> bool:
    """'how heavy is it', 'what if its over 50 euros': the question points at something
    said before rather than naming it."""
    return bool(_BACK & set(_WORDS.findall(question.lower())))


def subject_words(question: str) -> list[str]:
    """What an ask is about, without its question frame ('how long does … take')."""
    ignore = aboutness_words().ignore
    return [word for word in words(question) if stem_word(word) not in ignore]


def focus_value(results: Sequence[Result]) -> str:
    refs = []
    for result in results:
        if result.best is not None:
            refs.append(f"{result.best.item.source}:{result.best.item.ref}")
    return " ".join(dict.fromkeys(refs))


def _focus_items(index: Index, focus: str | None) -> list[int]:
    wanted = set((focus or "").split())
    return [i for i, item in enumerate(index.items) if f"{item.source}:{item.ref}" in wanted]


def _focus_products(index: Index, focus: str | None) -> list[int]:
    return [i for i in _focus_items(index, focus) if index.items[i].source == "product"]


def _named_any(index: Index, question: str, result: Result) -> bool:
    best = result.best
    if best is None:
        return False
    position = index.items.index(best.item)
    return names(index, _query_pairs(index, question), position)


def resolve(
    index: Index, model: embeddings.Embedder | None, question: str, focus: str | None
) -> Result:
    """The question's result; a question that points back ('is it dishwasher safe?') and
    does not name what it is about is asked about the item(s) in focus: with the item's
    name added, the one that answers best (confident or not: 'not sure' about the casserole
    is better than an answer about something else)."""
    result = search(index, model, question)
    if not refers_back(question):
        return result
    named = _named_any(index, question, result)
    if named and (
        result.best is None
        or result.best.item.source == "product"
        or not _focus_products(index, focus)
    ):
        # a product it names ('is the mug dishwasher safe too'); an article it names only
        # by a topic word ('what sizes does it come in': the size guide) does not stop a
        # question that points back at a product in focus
        return result
    best: Result | None = None
    for item in _focus_items(index, focus):
        about = search(index, model, f"{question} ({index.items[item].title})")
        if about.best is None or about.best.item != index.items[item]:
            continue
        if best is None or (about.confident, about.best.score) > (
            best.confident,
            best.best.score if best.best else 0.0,
        ):
            best = about
    if best is not None and not best.confident and result.confident and named:
        return result  # 'can i return it': the returns article it names, not 'not sure'
    return best if best is not None else result


def answer_all(
    index: Index, model: embeddings.Embedder | None, question: str, focus: str | None
) -> list[Result]:
    """One result per ask: two asks in one message are answered each when both are sure of
    different items (the second, if it points back, about what the first asked); else the
    message as one question."""
    parts = asks(question)
    if len(parts) > 1:
        results: list[Result] = []
        context = focus
        for position, part in enumerate(parts):
            said = part
            if position and refers_back(part):
                part = f"{part} {' '.join(subject_words(parts[position - 1]))}"
            result = resolve(index, model, part, context)
            if part != said:
                # the item found with the first ask's words, the passage that answers this one
                result = _requote(index, model, result, said)
            results.append(result)
            context = focus_value([result]) or context
        sure = [r for r in results if r.confident and r.best is not None]
        distinct = {(r.best.item.source, r.best.item.ref) for r in sure if r.best is not None}
        if len(sure) == len(results) and len(distinct) == len(sure):
            return results
    return [resolve(index, model, question, focus)]


def _requote(
    index: Index, model: embeddings.Embedder | None, result: Result, question: str
) -> Result:
    """The best article hit quoted by the paragraph nearest in meaning to `question`."""
    best = result.best
    if best is None or best.item.source != "article" or model is None or index.matrix is None:
        return result
    item = index.items.index(best.item)
    rows = [r for r in index.item_rows[item] if index.passages[r].kind == "paragraph"]
    if not rows:
        return result
    q = model.embed([question])[0]
    sims = [float(index.matrix[r] @ q) + LEAD_BONUS * index.passages[r].lead for r in rows]
    passage = index.passages[rows[int(np.argmax(sims))]]
    hit = replace(best, passage=passage.text, kind=passage.kind)
    return replace(result, hits=[hit, *result.hits[1:]])


async def confident_answer(
    session: AsyncSession, retriever: Retriever, question: str, focus: str | None = None
) -> Reply | None:
    """The answer when the knowledge base is sure of one; None (nothing recorded) if not."""
    started = time.perf_counter()
    index = await retriever.current_index(session)
    results = answer_all(index, retriever.model, question, focus)
    if all(r.best is not None and r.confident for r in results):
        return _answered(results, started)
    return None


def _answered(results: list[Result], started: float) -> Reply:
    said = [answer_text(r.best) for r in results if r.best is not None]
    slots = {FOCUS_SLOT: focus_value(results)}
    return Reply(said[0], [], slots, results[0], timed_ms(started), said[1:])


async def reply(
    session: AsyncSession, retriever: Retriever, question: str, focus: str | None = None
) -> Reply:
    """The answer to a product or policy question: the best passage quoted with its link, or
    'not sure' with the two closest articles and the offer of a person (the question is
    then counted among the unanswered ones). `focus`: the FOCUS_SLOT of the conversation."""
    started = time.perf_counter()
    index = await retriever.current_index(session)
    results = answer_all(index, retriever.model, question, focus)
    result = results[0]
    if all(r.best is not None and r.confident for r in results):
        return _answered(results, started)
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

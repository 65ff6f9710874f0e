"""The knowledge base (issue #19 item 5): CSV and Markdown import (checked whole, nothing
half-written), embeddings stored when content changes, retrieval by meaning with the
keyword fallback, 'not sure' with the closest articles and the unanswered-question counts,
the admin API and the console's JSON. Real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import knowledge as knowledge_cli
from bot.config import Settings
from bot.domain import embeddings, knowledge, staff
from bot.domain.enums import StaffRole
from bot.domain.errors import InvalidInput
from bot.storage.models import (
    KnowledgeArticle,
    KnowledgePassage,
    KnowledgeProduct,
    UnansweredQuestion,
)
from tests.staff_helpers import bearer, create_api_token, create_staff, sign_in

Client = TestClient[Any, Any]
HEADER = "sku,name,materials,care,sizes,warranty,stock,url"
GOOD_ROW = (
    "MUG-1,Blue Mug,Stoneware,Dishwasher safe,350 ml,2 years,5,https://shop.example.com/p/mug-1"
)


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        staff, "password_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )


async def _count(session: AsyncSession, model: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- bad input: named, nothing written --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "products.csv is empty."),
        (
            "sku,name,care\nX-1,Thing,wash\n",
            "products.csv lacks the column(s) materials, sizes, warranty, stock, url; the header "
            "must have sku, name, materials, care, sizes, warranty, stock, url.",
        ),
        (
            f"{HEADER},colour\n{GOOD_ROW},blue\n",
            "products.csv has unknown column(s) 'colour'; allowed: sku, name, materials, care, "
            "sizes, warranty, stock, url, category, price, description.",
        ),
        (f"{HEADER}\n", "products.csv has a header but no products."),
        (
            f"{HEADER}\n{GOOD_ROW}\nMUG-2,Red Mug,Stoneware,x,350 ml,2 years,lots,/p/mug-2\n",
            "products.csv line 3: 'stock' must be a whole number of 0 or more, not 'lots'.",
        ),
        (
            f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n",
            "products.csv line 3: SKU MUG-1 is already on line 2.",
        ),
        (
            f"{HEADER}\nMUG-2,,Stoneware,x,350 ml,2 years,1,/p/mug-2\n",
            "products.csv line 2: 'name' is empty.",
        ),
        (
            f"{HEADER}\nMUG-2,Mug,Stoneware,x,350 ml,2 years,1,/p/mug-2,extra\n",
            "products.csv line 2: 8 columns expected, the row has more.",
        ),
        (
            f"{HEADER}\nMUG-2,Mug,Stoneware,x,350 ml,2 years\n",
            "products.csv line 2: 8 columns expected, the row has fewer.",
        ),
        (
            f"{HEADER}\nMUG 2,Mug,Stoneware,x,350 ml,2 years,1,/p/mug-2\n",
            "products.csv line 2: 'sku' 'MUG 2' may only use letters, digits, '-', '_' and '.'.",
        ),
        (
            f"{HEADER}\nMUG-2,Mug,Stoneware,x,350 ml,2 years,1,javascript:alert(1)\n",
            "products.csv line 2: 'url' must start with http://, https:// or /.",
        ),
    ],
)
def test_a_bad_products_csv_is_refused_naming_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        knowledge.parse_products_csv(text)
    assert error.value.message == message


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "returns.md",
            "Returns are free.\n",
            "returns.md: the first line must be the title, as '# Title'.",
        ),
        ("returns.md", "# Returns\n\n", "returns.md: the article has a title but no body."),
        (
            "returns.md",
            "# Returns\n\nLabel:\n\n```\nSCAN ME\n",
            "returns.md: returns: the code block opened at body line 3 is never closed.",
        ),
        (
            "returns.md",
            "# Returns\n\nFree.\n\n# Exchanges\n\nAlso free.\n",
            "returns.md: returns: a second top-level heading ('# ...') in the body, line 3; "
            "an article has one title.",
        ),
        (
            "Returns Policy.md",
            "# Returns\n\nFree.\n",
            "Returns Policy.md: the file name must be the article's slug (lower-case letters "
            "and digits joined by '-') followed by .md.",
        ),
    ],
)
def test_broken_markdown_is_refused_naming_the_problem(name: str, text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as error:
        knowledge.parse_article_markdown(text, name)
    assert error.value.message == message


def test_an_article_file_gives_slug_title_plain_passages() -> None:
    article = knowledge.parse_article_markdown(
        "# How to send a return\n\n1. Ask in the **chat**.\n2. Print the label.\n\n"
        "| a | b |\n| --- | --- |\n| 1 | 2 |\n",
        "how-to-return.md",
    )
    assert (article.slug, article.title, article.url) == (
        "how-to-return",
        "How to send a return",
        "https://shop.example.com/help/how-to-return",
    )
    assert knowledge.article_passages(article) == [
        ("title", "How to send a return Ask in the chat. Print the label."),
        ("paragraph", "Ask in the chat. Print the label."),
        ("paragraph", "| a | b | | 1 | 2 |"),
    ]


async def test_the_cli_imports_nothing_when_one_file_is_broken(
    tmp_path: Path,
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "good.csv").write_text(f"{HEADER}\n{GOOD_ROW}\n", encoding="utf-8")
    help_dir = tmp_path / "help"
    help_dir.mkdir()
    (help_dir / "returns.md").write_text("# Returns\n\nFree within 30 days.\n", encoding="utf-8")
    (help_dir / "broken.md").write_text("no title here\n", encoding="utf-8")
    args = argparse.Namespace(
        products=tmp_path / "good.csv", articles=[help_dir], article_url_base=None, demo=False
    )

    assert await knowledge_cli.run(settings, args) == 1

    assert capsys.readouterr().err == (
        "Error: broken.md: the first line must be the title, as '# Title'. Nothing was imported.\n"
    )
    async with session_factory() as session:
        assert await _count(session, KnowledgeProduct) == 0
        assert await _count(session, KnowledgeArticle) == 0
        assert await _count(session, KnowledgePassage) == 0

    (help_dir / "broken.md").unlink()
    assert await knowledge_cli.run(settings, args) == 0
    assert capsys.readouterr().out == (
        "products: 1 added, 0 updated, 0 unchanged.\narticles: 1 added, 0 updated, 0 unchanged.\n"
    )
    async with session_factory() as session:
        assert await _count(session, KnowledgeProduct) == 1
        assert await _count(session, KnowledgeArticle) == 1


# --- import, embeddings stored when content changes ------------------------------------------


async def test_demo_import_embeds_once_and_again_only_what_changed(session: AsyncSession) -> None:
    products, articles = await knowledge.load_demo(session)
    await session.commit()
    assert (products.added, articles.added) == (42, 29)
    passages = await _count(session, KnowledgePassage)
    embedded = await session.scalar(
        select(func.count()).where(KnowledgePassage.embedding.is_not(None))
    )
    assert embedded == passages > 71 * 2
    model = await session.scalar(select(KnowledgePassage.model).limit(1))
    assert model == f"{embeddings.MODEL_NAME}#{knowledge.PASSAGE_RECIPE}"
    knife_ids = set(
        await session.scalars(select(KnowledgePassage.id).where(KnowledgePassage.ref == "KIT-0166"))
    )

    again = await knowledge.load_demo(session)
    assert [(r.added, r.updated, r.unchanged) for r in again] == [(0, 0, 42), (0, 0, 29)]

    data = knowledge.parse_products_csv(
        (knowledge.DEMO_DIR / "products.csv").read_text(encoding="utf-8")
    )
    knife = next(p for p in data if p.sku == "KIT-0166")
    changed = knowledge.ProductData(**{**knife.__dict__, "stock": 0})
    result = await knowledge.import_products(session, [changed])
    await session.commit()
    assert (result.added, result.updated, result.unchanged) == (0, 1, 0)
    new_ids = set(
        await session.scalars(select(KnowledgePassage.id).where(KnowledgePassage.ref == "KIT-0166"))
    )
    assert new_ids and not new_ids & knife_ids
    stock = await session.scalar(
        select(KnowledgePassage.text).where(
            KnowledgePassage.ref == "KIT-0166", KnowledgePassage.kind == "stock"
        )
    )
    assert stock == "Out of stock at the moment."


# --- retrieval and the bot's reply -----------------------------------------------------------


async def test_a_product_question_quotes_the_passage_and_links_the_product(
    session: AsyncSession,
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(session, retriever, "is the damascus knife dishwasher safe??")

    assert reply.result.method == "embedding" and reply.result.confident
    assert reply.text == (
        "Damascus Chef's Knife 20 cm (KIT-0166), Care: “Hand wash and dry immediately. Not "
        "dishwasher safe: the dishwasher dulls the edge and damages the handle. Use a wooden "
        "or plastic board; sharpen on a whetstone.” Product page: "
        "https://shop.example.com/products/kit-0166"
    )
    assert (reply.buttons, reply.slots) == ([], {"knowledge_focus": "product:KIT-0166"})
    assert await _count(session, UnansweredQuestion) == 0


async def test_a_policy_question_quotes_the_help_centre(session: AsyncSession) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(session, retriever, "do u ship to switzerland")

    assert reply.text == (
        "From our help centre, “Which countries do you ship to?”: “We don't ship to "
        "Switzerland, Norway, Iceland or anywhere outside Europe yet. If you live there, you "
        "can order to a parcel forwarding address in the EU.” Read the article: "
        "https://shop.example.com/help/shipping-countries"
    )


async def test_not_sure_shows_two_articles_offers_a_person_and_counts_the_question(
    session: AsyncSession,
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    first = await knowledge.reply(session, retriever, "do you sell sofas")
    second = await knowledge.reply(session, retriever, "Do you sell sofas?")

    assert not first.result.confident
    closest = first.result.articles
    assert len(closest) == 2 and all(item.source == "article" for item in closest)
    assert first.text == (
        "I'm not sure I can answer that from our product pages and help centre. The closest "
        f"articles are “{closest[0].title}” ({closest[0].url}) and “{closest[1].title}” "
        f"({closest[1].url}). Shall I pass your question to a person from our team?"
    )
    assert first.buttons == [{"title": "Yes", "payload": "yes"}, {"title": "No", "payload": "no"}]
    assert first.slots == {"awaiting": "confirmation", "pending_action": "offer_human"}
    assert second.text == first.text
    rows = (await session.scalars(select(UnansweredQuestion))).all()
    assert [(r.question_key, r.question, r.count, r.closest) for r in rows] == [
        ("do you sell sofas", "Do you sell sofas?", 2, [item.ref for item in closest])
    ]
    assert [q.count for q in await knowledge.unanswered(session)] == [2]


async def test_keywords_answer_when_there_is_no_model(session: AsyncSession) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(None)

    result = await retriever.search(session, "can i pay with apple pay")
    sofas = await retriever.search(session, "do you sell sofas")

    assert (result.method, result.confident) == ("keywords", True)
    assert result.best is not None and result.best.item.ref == "payment-methods"
    assert result.best.passage.startswith("We accept Visa, Mastercard")
    assert not sofas.confident


async def test_an_edited_article_is_answered_from_its_new_text(session: AsyncSession) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())
    assert (await retriever.search(session, "do you ship to switzerland")).confident

    await knowledge.save_article(
        session,
        knowledge.article_data(
            "shipping-countries",
            "Which countries do you ship to?",
            "Since December we also ship to Switzerland and Norway, duties paid.",
        ),
    )
    result = await retriever.search(session, "do you ship to switzerland")

    assert result.best is not None
    assert (
        result.best.passage == "Since December we also ship to Switzerland and Norway, duties paid."
    )


def test_the_model_loads_from_the_installed_package_alone() -> None:
    files = embeddings.model_files()
    assert files is not None
    weights, tokenizer = files
    assert weights.name == "l2_supercat_256.safetensors" and weights.stat().st_size > 16_000_000
    assert tokenizer.parent.parent == weights.parent.parent  # both inside the wheel
    model = embeddings.load_model()
    assert model is not None
    vectors = model.embed(["is the knife dishwasher safe", "hand wash only"])
    assert vectors.shape == (2, embeddings.DIMENSIONS)


# --- admin API and console JSON ---------------------------------------------------------------


async def test_admins_manage_products_and_articles_through_the_api(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    agent = bearer(await create_api_token(session_factory, StaffRole.agent))
    body = {"name": "Blue Mug", "stock": 5, "url": "/p/mug-1", "care": "Dishwasher safe."}

    assert (
        await client.put("/api/knowledge/products/MUG-1", json=body, headers=agent)
    ).status == 403
    saved = await client.put("/api/knowledge/products/MUG-1", json=body, headers=admin)
    assert saved.status == 200, await saved.text()
    assert (await saved.json())["care"] == "Dishwasher safe."
    listed = await (await client.get("/api/knowledge/products", headers=admin)).json()
    assert [(p["sku"], p["name"], p["stock"]) for p in listed["products"]] == [
        ("MUG-1", "Blue Mug", 5)
    ]

    bad = await client.put(
        "/api/knowledge/products/MUG-2", json={**body, "stock": -1}, headers=admin
    )
    assert bad.status == 422
    assert (await bad.json())["error"]["message"] == (
        "'stock' must be a whole number of 0 or more, not -1."
    )

    article = await client.put(
        "/api/knowledge/articles/returns",
        json={"title": "Returns", "body": "Free within 30 days."},
        headers=admin,
    )
    assert article.status == 200
    assert (await article.json())["url"] == "https://shop.example.com/help/returns"
    broken = await client.put(
        "/api/knowledge/articles/exchanges",
        json={"title": "Exchanges", "body": "```\nunclosed"},
        headers=admin,
    )
    assert broken.status == 422
    assert (await broken.json())["error"]["message"] == (
        "exchanges: the code block opened at body line 1 is never closed."
    )
    assert (await client.delete("/api/knowledge/articles/returns", headers=admin)).status == 200
    assert (await client.delete("/api/knowledge/articles/returns", headers=admin)).status == 404
    async with session_factory() as session:
        assert await _count(session, KnowledgeArticle) == 0
        assert await _count(session, KnowledgeProduct) == 1


async def test_a_csv_import_through_the_api_is_all_or_nothing(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    admin = bearer(await create_api_token(session_factory, StaffRole.admin))
    csv_text = f"{HEADER}\n{GOOD_ROW}\nMUG-2,Red Mug,Stoneware,x,350 ml,2 years,-3,/p/mug-2\n"

    refused = await client.post("/api/knowledge/products/import", data=csv_text, headers=admin)

    assert refused.status == 422
    assert (await refused.json())["error"]["message"] == (
        "the CSV line 3: 'stock' must be a whole number of 0 or more, not '-3'."
    )
    async with session_factory() as session:
        assert await _count(session, KnowledgeProduct) == 0

    fixed = csv_text.replace(",-3,", ",3,")
    imported = await client.post("/api/knowledge/products/import", data=fixed, headers=admin)
    assert await imported.json() == {"added": 2, "updated": 0, "unchanged": 0}


async def test_the_console_lists_unanswered_questions_for_admins_only(
    client: Client, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await create_staff(session_factory)
    async with session_factory() as session, session.begin():
        await knowledge.record_unanswered(session, "can i get the casserole engraved", ["warranty"])
        await knowledge.record_unanswered(
            session, "Can I get the casserole engraved?", ["warranty"]
        )
        await knowledge.record_unanswered(session, "do you sell bikes", [])

    headers = await sign_in(client, StaffRole.admin)
    page = await client.get("/console/knowledge")
    assert page.status == 200 and "Unanswered questions" in await page.text()
    data = await (await client.get("/console/api/knowledge")).json()
    assert [(q["question"], q["count"]) for q in data["unanswered"]] == [
        ("Can I get the casserole engraved?", 2),
        ("do you sell bikes", 1),
    ]
    saved = await client.post(
        "/console/api/knowledge/articles",
        json={"slug": "engraving", "title": "Engraving", "body": "We don't engrave yet."},
        headers=headers,
    )
    assert saved.status == 200 and (await saved.json())["changed"] is True

    await client.post("/console/api/logout", headers=headers)
    await sign_in(client, StaffRole.agent)
    assert (await client.get("/console/api/knowledge")).status == 403


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ("does the merino jumper shrink in the wash?", "Care"),
        ("what size is the merino jumper, is it a regular fit", "Sizes"),
        ("what is the merino jumper made of", "Materials"),
    ],
)
async def test_a_question_naming_one_field_is_answered_from_that_field(
    session: AsyncSession, question: str, field: str
) -> None:
    """A tester's "does the merino jumper shrink in the wash?" got the jumper's "About" text."""
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(session, retriever, question)

    assert reply.text.startswith(f"Merino Wool Crew Jumper (CLO-0107), {field}: “")


# --- aboutness: a named product's passage must say what is asked --------------------------------


@pytest.mark.parametrize(
    ("question", "named"),
    [
        ("who designed the ceramic table lamp", "HOM-0241"),
        ("does the gooseneck kettle whistle", "KIT-0194"),
        ("can i get my name engraved on the oak serving board", "HOM-0262"),
    ],
)
async def test_a_question_that_names_a_product_but_asks_what_its_content_does_not_say_is_not_sure(
    session: AsyncSession, question: str, named: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(session, retriever, question)

    best = reply.result.best
    assert best is not None and best.item.ref == named
    assert best.score >= knowledge.THRESHOLD  # retrieval alone would have answered
    assert not reply.result.confident and reply.result.coverage < knowledge.MIN_COVERAGE
    assert reply.text.startswith("I'm not sure I can answer that")
    assert reply.slots == {"awaiting": "confirmation", "pending_action": "offer_human"}
    rows = (await session.scalars(select(UnansweredQuestion))).all()
    assert [(r.question, r.count) for r in rows] == [(question, 1)]


@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        # 'heavy' is covered by the passage's 'kg' (a synonym group in aboutness.yml)
        ("how heavy is the casserole dish", "KIT-0142", "sizes"),
        # 'waterproof' by 'rain', grown from the content
        ("is the field jacket waterproof", "CLO-0131", "description"),
        # names no product: matched by meaning as a whole, not checked word by word
        ("can i split the payment into 3", "klarna", "paragraph"),
    ],
)
async def test_a_question_its_content_answers_is_answered(
    session: AsyncSession, question: str, answer: str, kind: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    result = await retriever.search(session, question)

    assert result.confident and result.best is not None
    assert (result.best.item.ref, result.best.kind) == (answer, kind)


@pytest.mark.parametrize("question", ["do you sell bikes", "do you sell dog beds"])
async def test_do_you_sell_is_answered_only_by_what_it_names(
    session: AsyncSession, question: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    result = await retriever.search(session, question)

    assert knowledge.asks_if_sold(question) and not result.confident


def test_light_stemming_and_the_aboutness_file() -> None:
    assert {knowledge.stem_word(w) for w in ("washing", "washed", "wash")} == {"wash"}
    assert {knowledge.stem_word(w) for w in ("shipping", "ships", "ship")} == {"ship"}
    about = knowledge.aboutness_words()
    heavy = knowledge.stem_word("heavy")
    assert "kg" in about.synonyms[heavy] and heavy in about.synonyms["kg"]
    assert "rain" in about.synonyms["waterproof"]
    assert knowledge.stem_word("come") in about.ignore and "green" not in about.synonyms
    assert knowledge.stem_word("rusty") == "rust" and knowledge.stem_word("delivery") == "deliver"


# --- follow-ups ('how heavy is it') and two questions in one message ---------------------------


async def test_a_follow_up_that_points_back_is_about_the_product_in_focus(
    session: AsyncSession,
) -> None:
    """A tester: 'is the casserole oven safe?' then 'how heavy is it' got 'not sure I
    understood'."""
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    first = await knowledge.reply(session, retriever, "is the casserole oven safe?")
    heavy = await knowledge.reply(
        session, retriever, "how heavy is it", first.slots[knowledge.FOCUS_SLOT]
    )
    alone = await retriever.search(session, "how heavy is it")
    socks = await knowledge.reply(session, retriever, "how heavy is it", "product:CLO-0171")

    assert first.slots == {"knowledge_focus": "product:KIT-0142"}
    assert heavy.text == (
        "Enamel Cast-Iron Casserole 24 cm (KIT-0142), Sizes: “24 cm diameter, 4.2 litres, "
        "4.9 kg.” Product page: https://shop.example.com/products/kit-0142"
    )
    assert heavy.slots == {"knowledge_focus": "product:KIT-0142"}
    assert alone.best is not None and alone.best.item.ref != "KIT-0142"
    # nothing in the socks' data says how heavy they are: not sure, a person offered (not
    # another product's weight)
    assert socks.result.best is not None and socks.result.best.item.ref == "CLO-0171"
    assert socks.text.startswith("I'm not sure I can answer that")
    assert socks.slots == {"awaiting": "confirmation", "pending_action": "offer_human"}


async def test_a_question_that_names_something_else_leaves_the_focus(
    session: AsyncSession,
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(
        session, retriever, "ok and do u ship to belgium", "product:KIT-0142"
    )

    assert reply.result.best is not None and reply.result.best.item.ref == "shipping-countries"
    assert reply.slots == {"knowledge_focus": "article:shipping-countries"}


async def test_two_questions_in_one_message_are_answered_each(session: AsyncSession) -> None:
    """A tester, anonymous: 'how long does shipping to belgium take and is it free?' got
    the delivery times only."""
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    reply = await knowledge.reply(
        session, retriever, "how long does shipping to belgium take and is it free?"
    )
    later = await knowledge.reply(
        session, retriever, "what if its over 50 euros", reply.slots[knowledge.FOCUS_SLOT]
    )

    assert knowledge.asks("how long does shipping to belgium take and is it free?") == [
        "how long does shipping to belgium take",
        "is it free",
    ]
    assert reply.text.startswith("From our help centre, “How long does delivery take?”")
    assert [text[:57] for text in reply.more] == [
        "From our help centre, “How much does shipping cost?”: “St"
    ]
    assert reply.slots == {"knowledge_focus": "article:delivery-times article:shipping-costs"}
    assert later.result.best is not None and later.result.best.item.ref == "shipping-costs"


# --- 2026-12-07 round: field cues, compounds, titles by synonym, names first -------------------


def test_compounds_are_read_as_one_word_on_both_sides() -> None:
    assert knowledge.words("Organic Cotton T-Shirt") == ["organic", "cotton", "tshirt"]
    assert knowledge.words("is the t shirt see-through") == ["tshirt", "seethrough"]
    assert knowledge.words("can it be made to measure") == ["madetomeasure"]
    about = knowledge.aboutness_words()
    assert knowledge.stem_word("acrylic") in about.field_cues["materials"]
    assert knowledge.is_cue("acrylic", frozenset({"acryl"}), "materials")
    assert not knowledge.is_cue("acrylic", frozenset({"acryl"}), "care")
    assert knowledge.is_cue("dryer", frozenset(), "care")  # FIELD_CUES in the code


@pytest.mark.parametrize(
    ("question", "answer", "kind"),
    [
        # 'acrylic' is a materials cue (aboutness.yml field_cues): the field is quoted
        ("herringbone throw wool or acrylic", "HOM-0224", "materials"),
        # 'shirt' no longer names the T-shirt; 'instructions' is a care cue
        ("linen shirt washing instructions", "CLO-0125", "care"),
        ("is the organic t-shirt see-through", "CLO-0112", "materials"),
        # titles by stem and synonym: 'free' ~ 'cost', 'deliver' ~ 'ship', 'usa' ~ 'countries'
        ("is delivery free", "shipping-costs", "paragraph"),
        ("do u deliver to the usa", "shipping-countries", "paragraph"),
        # 'option' is ignorable, not a word the shop does not know
        ("payment options", "payment-methods", "paragraph"),
    ],
)
async def test_questions_in_customers_words_are_answered(
    session: AsyncSession, question: str, answer: str, kind: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    result = await retriever.search(session, question)

    assert result.confident and result.best is not None
    assert (result.best.item.ref, result.best.kind) == (answer, kind)


@pytest.mark.parametrize(
    ("question", "best"),
    [
        # 'who …' asks for a person, never in a product's data
        ("who makes the merino socks", "CLO-0171"),
        # the named product does not say; the article next in line must say it, and does not
        ("how much caffeine is in the kenya coffee", "COF-0318"),
        # the named shirt does not say; another product the question does not name may not
        ("does the linen shirt have a chest pocket", "CLO-0125"),
        # a product named by its name goes first: not the saucepan whose text says 'lid'
        ("can the casserole lid go in the oven", "KIT-0212"),
        # a named article, and a word the whole shop never uses
        ("can i pay for the coffee box with bitcoin", "coffee-subscription"),
        ("can the jumper be made to measure", "CLO-0107"),
    ],
)
async def test_questions_the_content_does_not_answer_are_not_sure(
    session: AsyncSession, question: str, best: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    result = await retriever.search(session, question)

    assert result.best is not None and result.best.item.ref == best
    assert not result.confident and result.coverage < knowledge.MIN_COVERAGE


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # chat shorthand and pronouns are not 'words the shop never uses' (5a62e94 said
        # 'not sure' to these three: thx, bit, mine)
        ("ok thx. and do u do gift wrapping", "gift-wrapping"),
        ("can i pause my subscription for a bit", "manage-subscription"),
        # 'gift card' is one word, a gift voucher (5a62e94: the gift-messages article)
        ("what about gift cards?", "gift-vouchers"),
        # … and still names the article (302d9a4: 'not sure'), as in tester_widget_4 tw4_16
        ("do u have gift cards", "gift-vouchers"),
        # discourse words are not asked about (302d9a4: 'not sure'; tester_widget_4 tw4_04)
        ("forget the order. what is your return policy", "returns-policy"),
        # (tester_widget_4 tw4_11: 'not sure' before this round too)
        ("i meant the jumper. sizes of the merino jumper", "CLO-0107"),
    ],
)
async def test_chat_words_do_not_turn_a_help_question_away(
    session: AsyncSession, question: str, answer: str
) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    result = await retriever.search(session, question)

    assert result.confident and result.best is not None and result.best.item.ref == answer


async def test_two_asks_with_a_pronoun_are_answered_each(session: AsyncSession) -> None:
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())
    index = await retriever.current_index(session)

    results = knowledge.answer_all(
        index,
        retriever.model,
        "does the merino jumper shrink in the wash? and when will mine ship",
        None,
    )

    assert [(r.confident, r.best.item.ref if r.best else None) for r in results] == [
        (True, "CLO-0107"),
        (True, "shipping-countries"),
    ]


async def test_a_follow_up_about_a_product_in_focus_is_not_taken_by_a_topic_word(
    session: AsyncSession,
) -> None:
    """tester_widget_4 tw4_11: after the merino jumper, 'what sizes does it come in' quoted
    the size guide's jeans paragraph ('sizes' names the article 'Size guide for clothing')."""
    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())

    sizes = await knowledge.reply(
        session, retriever, "what sizes does it come in", "product:CLO-0107"
    )
    alone = await retriever.search(session, "what sizes does it come in")
    back = await knowledge.reply(session, retriever, "can i return it", "product:CLO-0107")

    assert sizes.text.startswith("Merino Wool Crew Jumper (CLO-0107), Sizes: “XS, S, M, L, XL.")
    assert sizes.slots == {"knowledge_focus": "product:CLO-0107"}
    assert alone.best is not None and alone.best.item.ref == "size-guide"
    # the jumper's data does not say; the returns article the question names does
    assert back.result.confident and back.result.best is not None
    assert back.result.best.item.ref == "returns-policy"


async def test_each_requests_general_question_is_answered_by_the_help_centre(
    session: AsyncSession,
) -> None:
    """A visitor with no order asking "in general" gets the article of their request
    (bot/domain/chat.GENERAL_QUESTIONS): each of those questions must be answered."""
    from bot.domain import chat

    await knowledge.load_demo(session)
    retriever = knowledge.Retriever(embeddings.load_model())
    unanswered = []
    for flow, question in chat.GENERAL_QUESTIONS.items():
        reply = await knowledge.reply(session, retriever, question)
        if not reply.result.confident:
            unanswered.append((flow, question, reply.text[:80]))
    assert unanswered == []


async def test_a_product_the_shop_does_not_sell_is_said_so(session: AsyncSession) -> None:
    """Tester 5 (tw5_16): "lol ok. do you sell candles" got "not sure" with the privacy and
    warranty articles as the closest."""
    from bot.domain import chat
    from bot.storage.models import Conversation

    await knowledge.load_demo(session)
    session.add(Conversation(id="conv-1"))
    await session.commit()

    turn = await chat.product_question(session, "conv-1", "lol ok. do you sell candles")
    assert turn.messages[0][0].startswith("I couldn't find that in our range")
    assert turn.slots["pending_action"] == "offer_human"

    sold = await chat.product_question(session, "conv-1", "do you sell a cast iron casserole")
    assert not sold.messages[0][0].startswith("I couldn't find that")

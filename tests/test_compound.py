"""Two requests in one message (issue #17 item 5): rasa_ext.compound's cuts and plans.

The channel that applies the plan runs inside Rasa; the conversation regression suite
(tests/conversations/digressions.yml, dg-compound cases) drives it with the real model.
"""

from __future__ import annotations

import pytest

from rasa_ext.compound import Plan, Reading, candidate_splits, plan


def sure(intent: str) -> Reading:
    return Reading(intent, 0.95)


def test_the_more_follows_key_is_the_action_servers() -> None:
    from actions import services
    from rasa_ext import compound

    assert compound.MORE_FOLLOWS == services.MORE_FOLLOWS


@pytest.mark.parametrize(
    ("text", "cuts"),
    [
        ("ok thx. and do u do gift wrapping", [("ok thx", "do u do gift wrapping")]),
        (
            "where is my refund and can i change the address",
            [("where is my refund", "can i change the address")],
        ),
        (
            "where's my parcel?? also the invoice is wrong",
            [("where's my parcel", "the invoice is wrong")],
        ),
        ("hi, where is my order", []),  # "hi" is one word: no cut
        ("where is my order", []),
        ("A10023 and jane@example.com", []),
        ("mug and towel", []),  # one word each side: no cut
        ("the mug and the towel", [("the mug", "the towel")]),  # a cut; the NLU decides
    ],
)
def test_cuts(text: str, cuts: list[tuple[str, str]]) -> None:
    assert candidate_splits(text) == cuts


def test_at_most_two_cuts_are_tried() -> None:
    text = "one two. three four. five six. seven eight"
    assert candidate_splits(text) == [
        ("one two", "three four. five six. seven eight"),
        ("one two. three four", "five six. seven eight"),
    ]


def test_a_pleasantry_in_front_of_a_request_leaves_the_request() -> None:
    assert plan("ok thx", "do u do gift wrapping", sure("thank"), sure("policy_question")) == Plan(
        ("do u do gift wrapping",)
    )
    assert plan("where is my order", "thanks a lot", sure("order_status"), sure("thank")) == Plan(
        ("where is my order",)
    )


def test_two_questions_are_both_served_in_order() -> None:
    assert plan(
        "where is my refund", "do you ship to spain", sure("refund_status"), sure("policy_question")
    ) == Plan(("where is my refund", "do you ship to spain"))


def test_an_account_change_goes_last_so_its_confirmation_stays_open() -> None:
    assert plan(
        "cancel my order", "where is my refund", sure("cancel_order"), sure("refund_status")
    ) == Plan(("where is my refund", "cancel my order"))


def test_two_account_changes_serve_the_first_and_defer_the_second() -> None:
    assert plan(
        "cancel my order", "pause my coffee", sure("cancel_order"), sure("pause_subscription")
    ) == Plan(("cancel my order",), deferred="pause my coffee")


@pytest.mark.parametrize(
    ("one", "two"),
    [
        (Reading("order_status", 0.79), sure("policy_question")),  # not sure enough
        (sure("order_status"), sure("order_status")),  # one request, said twice
        (sure("affirm"), sure("change_address")),  # an answer stays whole
        (sure("inform"), sure("order_status")),
        (sure("nlu_fallback"), sure("order_status")),
        (sure("thank"), sure("goodbye")),  # pleasantries only
        (Reading(None, 0.0), sure("order_status")),
    ],
)
def test_no_plan_sends_the_message_as_typed(one: Reading, two: Reading) -> None:
    assert plan("first part", "second part", one, two) is None


def test_a_few_words_of_praise_next_to_a_problem_are_sarcasm() -> None:
    assert plan(
        "great. just great", "8 days late", sure("praise"), sure("delivery_problem")
    ) == Plan(("8 days late",))
    assert plan(
        "the mug is lovely", "the towel arrived torn", sure("praise"), sure("damaged_item")
    ) == Plan(("the mug is lovely", "the towel arrived torn"))


@pytest.mark.parametrize(
    ("requested_slot", "text", "whole"),
    [
        # sv30: at the comment question this is one comment, not damage + a complaint
        ("survey_comment", "the lid was cracked and nobody answered my email", True),
        # sv50: the form sees the whole request, not the remark first as the comment
        ("survey_score", "ok and can i change where it goes? im not home thursday", True),
        ("survey_source", "instagram and my sister", True),
        ("identity_email", "where is it and can i change the address", False),
        (None, "the lid was cracked and nobody answered my email", False),
    ],
)
def test_a_survey_answer_goes_to_its_question_uncut(
    requested_slot: str | None, text: str, whole: bool
) -> None:
    from rasa_ext.compound import keeps_whole

    assert keeps_whole(requested_slot) is whole  # the slot decides; `text` shows the case


def test_a_message_said_twice_in_a_row_in_one_turn_is_said_once() -> None:
    from rasa_ext.compound import without_repeats

    ask = {"recipient_id": "s", "text": "What's your order number?"}
    other = {"recipient_id": "s", "text": "Okay."}
    custom = {"recipient_id": "s", "custom": {"nlu": {}}}
    assert without_repeats([ask, dict(ask), custom]) == [ask, custom]
    assert without_repeats([ask, other, ask]) == [ask, other, ask]  # not in a row: kept
    assert without_repeats([custom, dict(custom)]) == [custom, custom]  # no text: kept


def test_a_no_in_front_of_a_question_leaves_the_question() -> None:
    """Tester: "nah forget it, is the shirt 100% linen tho?" got only "Okay. Anything else?"."""
    first, second = "nah forget it", "is the shirt 100% linen tho?"
    assert plan(first, second, sure("deny"), sure("product_question")) == Plan((second,))
    # a no after a request, or a no next to an answer, is no compound
    assert plan(second, first, sure("product_question"), sure("deny")) is None
    assert plan(first, "2 mugs", sure("deny"), sure("inform")) is None
    keep = "keep the order, dont cancel"  # as02: read as cancel_order, it was asked again
    assert plan("ok nevermind", keep, sure("deny"), sure("cancel_order")) is None


def test_two_questions_for_the_knowledge_base_are_both_asked() -> None:
    """Tester 3 (tw3_03): "how much is shipping to austria and how long does it take" got
    the delivery time only (one intent, so no cut was taken)."""
    first, second = "how much is shipping to austria", "how long does it take"
    assert plan(first, second, sure("policy_question"), sure("policy_question")) == Plan(
        (first, second)
    )
    unsure = Reading("nlu_fallback", 0.45)  # the model's reading of "how long does it take"
    assert plan(first, second, sure("policy_question"), unsure) == Plan((first, second))
    assert plan(second, first, unsure, sure("policy_question")) is None
    # a short second question leans on the first's words: the message is sent whole (tr12)
    belgium = ("how long does shipping to belgium take", "is it free?")
    assert plan(*belgium, sure("policy_question"), sure("policy_question")) is None
    # the same request twice, or a remark and a question, are no two questions
    assert (
        plan("where is my order", "where is it", sure("order_status"), sure("order_status")) is None
    )
    assert (
        plan(
            "the jumper is itchy", "is it wool", sure("product_question"), sure("product_question")
        )
        is None
    )


def test_a_second_change_read_unsure_is_still_deferred() -> None:
    """Tester 4 (tw4_07): "change the delivery address on my jumper order and also cancel
    the coffee thing" (cancel 0.62) was sent whole and the cancellation dropped unsaid."""
    first = "i need to change the delivery address on my jumper order"
    assert plan(
        first, "cancel the coffee thing", sure("change_address"), Reading("cancel_order", 0.62)
    ) == Plan((first,), deferred="cancel the coffee thing")
    # a second part read this unsure as a question is not split off
    assert (
        plan(first, "the coffee thing", sure("change_address"), Reading("order_status", 0.62))
        is None
    )


@pytest.mark.parametrize(
    ("first", "second", "one", "two"),
    [
        # tester 4, tw4_01
        (
            "ok can i return the towel from it?",
            "it's the wrong colour",
            "return_item",
            "damaged_item",
        ),
        # tester 4, tw4_06
        (
            "the kettle i bought in september is broken, the switch doesnt work anymore",
            "i want my money back",
            "damaged_item",
            "request_refund",
        ),
    ],
)
def test_a_return_and_its_reason_are_one_request(
    first: str, second: str, one: str, two: str
) -> None:
    assert plan(first, second, sure(one), sure(two)) is None


def test_a_remark_that_only_lets_the_shop_know_is_never_cut() -> None:
    """Tester 4 (tw4_45): "fyi the casserole box arrived soaking wet, the stuff inside is
    fine tho. just so you know" was cut; its second half read as an order-status request."""
    assert (
        candidate_splits(
            "fyi the casserole box arrived soaking wet, the stuff inside is fine tho. just so you know"
        )
        == []
    )


def test_two_status_questions_about_two_things_are_both_answered() -> None:
    """Tester 6 (tw6_05): "where is my casserole order and when is my next coffee box" (both
    parts order_status, the second 0.60) was sent whole: only the box was answered."""
    first, second = "where is my casserole order", "when is my next coffee box"
    assert plan(first, second, sure("order_status"), Reading("order_status", 0.60)) == Plan(
        (first, second)
    )
    # one order asked about twice, or leaning on the first part's words: one question
    for again in ("when does the parcel arrive", "when will my order arrive", "when will it come"):
        assert plan(first, again, sure("order_status"), sure("order_status")) is None
    # too unsure, or not a question
    assert plan(first, second, sure("order_status"), Reading("order_status", 0.40)) is None
    assert plan(first, "my next coffee box", sure("order_status"), sure("order_status")) is None


def test_the_one_in_the_second_part_is_the_first_parts_thing() -> None:
    """Tester 6 (tw6_06): alone, "wheres the casserole one" was not understood."""
    assert candidate_splits("cancel the jumper order. also wheres the casserole one") == [
        ("cancel the jumper order", "wheres the casserole order")
    ]
    assert candidate_splits("is the mug dishwasher safe? and the blue one") == [
        ("is the mug dishwasher safe", "the blue one")  # no order, box … named: as typed
    ]


def test_a_status_question_next_to_a_change_is_answered_before_its_confirmation() -> None:
    """Tester 6 (tw6_06): "cancel the jumper order. also wheres the casserole one" only got
    the cancellation question; the casserole order's status was dropped."""
    first, second = "cancel the jumper order", "wheres the casserole order"
    for two in (sure("order_status"), Reading("order_status", 0.57)):
        assert plan(first, second, sure("cancel_order"), two) == Plan((second, first))
    # read unsure and leaning on the change ("is that possible?"), or not understood: the
    # message as typed
    unsure = Reading("policy_question", 0.6)
    assert plan(first, "is that possible", sure("cancel_order"), unsure) is None
    assert plan(first, second, sure("cancel_order"), Reading("nlu_fallback", 0.45)) is None


def test_the_components_need_of_bot_only_the_intents_module() -> None:
    """rasa_ext runs in Rasa's environment and image (deploy/Dockerfile.rasa copies
    bot/domain/intents.py alone): bot/domain/intents.py imports nothing, and rasa_ext imports
    nothing else of bot/."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    intents_tree = ast.parse((root / "bot/domain/intents.py").read_text())
    imported = [
        node for node in ast.walk(intents_tree) if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert [getattr(node, "module", None) for node in imported] == ["__future__"]
    for path in (root / "rasa_ext").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bot"):
                assert node.module == "bot.domain.intents", (path.name, node.module)
    dockerfile = (root / "deploy/Dockerfile.rasa").read_text()
    assert "bot/domain/intents.py" in dockerfile


def test_a_complaint_in_two_halves_is_sent_whole() -> None:
    """Tester 5 (tw5_27): "delivery took forever and nobody answered my email" was split
    into a delivery request (the order-number question) and a complaint."""
    assert (
        plan(
            "delivery took forever",
            "nobody answered my email",
            sure("delivery_problem"),
            sure("complain"),
        )
        is None
    )
    # a request next to a complaint is still both
    assert plan(
        "this shop is a joke", "where is my parcel", sure("complain"), sure("order_status")
    ) == Plan(("this shop is a joke", "where is my parcel"))

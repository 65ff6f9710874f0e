"""Other languages (issue #17 item 7): which messages count as clearly not English.

The thresholds are in bot/domain/language.py; these sentences are not in the NLU data.
"""

from __future__ import annotations

import pytest
import yaml

from bot.config import PROJECT_ROOT
from bot.domain import language
from bot.domain.language import LanguageDetector, letters_only, long_enough


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mi pedido no ha llegado todavía", "es"),
        ("Wo ist meine Bestellung? Ich warte seit einer Woche.", "de"),
        ("Hallo, meine Bestellung A10002 ist immer noch nicht da", "de"),
        ("je veux annuler ma commande", "fr"),
        ("Bonjour, où est ma commande ?", "fr"),
        ("la mia ordinazione non è ancora arrivata", "it"),
        ("Ciao, vorrei restituire il mio ordine", "it"),
        ("mijn bestelling is nog niet aangekomen", "nl"),
        ("Hallo, ik wil mijn abonnement opzeggen", "nl"),
        ("a minha encomenda ainda não chegou", "pt"),
        ("quero cancelar a minha assinatura", "pt"),
    ],
)
def test_a_sentence_in_another_language_is_detected(
    detector: LanguageDetector, text: str, expected: str
) -> None:
    assert detector.other_language(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # Too short to tell (fewer than MIN_WORDS words or MIN_LETTERS letters once order
        # numbers, emails, digits and symbols are gone): these stay with the NLU.
        "ok danke",
        "merci",
        "merci beaucoup",
        "gracias amigo",
        "A10001",
        "#10023",
        "A10001 jamie@example.com",
        "thanks!!",
        "😀😀",
        "???",
        # English, also with a foreign word or name in it.
        "where is my order",
        "hey can i put my coffee box on hold",
        "ok thx. and do u do gift wrapping",
        "the casserole arrived with a massive chip in the enamel",
        "Hallo, where is my order?",
        "merci, and can I return the mug?",
        "my order to Müller in München hasn't arrived",
        "no?? nothing arrived like anything",
        "thanks for nothing",
        "can you convert 30 celsius to fahrenheit",
    ],
)
def test_short_mixed_or_english_messages_stay_english(
    detector: LanguageDetector, text: str
) -> None:
    assert detector.other_language(text) is None


def test_noise_is_removed_before_counting_words() -> None:
    assert letters_only("Order #A10023 (jamie@example.com) 24.00 EUR!! 😀") == "Order EUR"
    assert letters_only("see https://shop.example/x, it's broken") == "see it's broken"
    assert not long_enough("ok danke")  # two words
    assert not long_enough("a b c d e")  # five words of one letter
    assert not long_enough("wo ist meine")  # three words but 11 letters
    assert long_enough("wo ist meine Tasse")  # four words, 16 letters


def test_a_confident_other_language_needs_english_to_be_unlikely() -> None:
    threshold = language.Detection("de", language.MIN_CONFIDENCE, language.MAX_ENGLISH_CONFIDENCE)
    assert language.is_other_language(threshold)
    assert not language.is_other_language(
        language.Detection("de", language.MIN_CONFIDENCE - 0.01, 0.0)
    )
    assert not language.is_other_language(
        language.Detection("de", 0.9, language.MAX_ENGLISH_CONFIDENCE + 0.01)
    )
    assert not language.is_other_language(language.Detection("en", 0.99, 0.99))


def test_only_the_start_of_a_long_message_is_read(detector: LanguageDetector) -> None:
    text = "mi pedido no ha llegado todavía " + "where is my order " * 200
    assert detector.other_language(text) == "es"


def test_the_detector_knows_its_languages_and_refuses_unknown_codes() -> None:
    assert LanguageDetector(["de"]).languages == ("de", "en")
    with pytest.raises(ValueError, match="unknown language codes"):
        LanguageDetector(["en", "xx"])


def test_every_reply_language_has_both_wordings_and_offers_a_person() -> None:
    domain = yaml.safe_load((PROJECT_ROOT / "domain.yml").read_text(encoding="utf-8"))
    variations = domain["responses"]["utter_english_only"]
    conditioned = {
        tuple(sorted((c["name"], c["value"]) for c in v["condition"]))
        for v in variations
        if "condition" in v
    }
    assert conditioned == {
        (("identity", identity), ("language", code))
        for code in language.REPLY_LANGUAGES
        for identity in ("unknown", "verified")
    }
    default = [v for v in variations if "condition" not in v]
    assert len(default) == 1
    assert default[0]["text"].startswith("Sorry, I can only chat in English for now.")
    assert all(v["buttons"][0]["payload"] == "/request_human" for v in variations)
    assert "EXTERNAL_other_language" in domain["intents"]

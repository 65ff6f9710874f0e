"""The ways a customer says no, not now, or that's all: declining an offer, a survey or a
comment, putting something off, being done.

They live together so that when a "no" is misread (a refusal taken for an answer, or an
answer for a refusal) there is one place to look and to compare the patterns side by side.
Each reader keeps the name and the pattern it had where it was used first.
"""

from __future__ import annotations

import re

from bot.domain.words import Words

# An offer (a survey, a pending change the NLU could not place): a no that opens the message.

# A no to an offer in words the NLU could not place ("no stop asking me stuff", "nah not
# interested"): it opens with the refusal.
_DECLINES = re.compile(
    r"^\s*(?:no+|nope|nah|stop|not interested|leave me alone|don'?t|do not)\b(?![-\w])",
    re.IGNORECASE,
)


def declines_offer(text: str) -> bool:
    return bool(_DECLINES.match(text or ""))


# A pending change or a question awaiting an answer: a no and nothing else, or a no for now.

_DENY_WORDS = re.compile(
    r"^\s*(?:no+|nope|nah|never ?mind|nvm|forget it|forget about it|don'?t bother|"
    r"not now|leave it|no thanks?|no thank you|stop)\b[\s,!.]*(?:thanks?|thx)?[\s.!]*$"
)


def is_deny_words(text: str) -> bool:
    """ "no", "never mind", "forget it": words that only decline, nothing else."""
    return _DENY_WORDS.match((text or "").lower()) is not None


_PUTS_OFF = re.compile(
    # "l8r" (tester 8, tw8_01: a menu of meanings)
    r"^\s*(?:ok(?:ay)?[\s,.]+)?(?:not now|not yet|later|maybe later|not today|l8r|ltr|"
    r"another time|some other time)\b",
    re.I,
)


# "not now, later. thanks": a no for now.
puts_off = Words(_PUTS_OFF, at_start=True)


# At "Anything else I can help with?": nothing more to ask.

_DONE = re.compile(
    r"\b(that'?s all|thats all|that'?s it|thats it|nothing else|all good|i'?m good|all set|"
    r"bye|goodbye|cya|see ya)\b"
)


def says_done(text: str) -> bool:
    """ "no thats all", "nothing else": the customer is done."""
    return _DONE.search((text or "").lower()) is not None


# A survey: its questions declined, or nothing to add at its comment question.

_DECLINE = re.compile(
    r"^\s*(skip( it| this)?|no thanks?( you)?|nah|no|nope|not now|pass|"
    r"(i'?d )?rather not|stop|don'?t want to|no survey|later)\s*[.!]*\s*$",
    re.IGNORECASE,
)


# "no i dont want to rate anything", "i don't want to answer questions": the survey declined
# in a sentence (tester 4, tw4_24: asked for a number again).
_DECLINE_SENTENCE = re.compile(
    r"^\s*(?:no+|nope|nah|sorry)?[\s,.!]*(?:i\s+)?(?:don'?t|do not|dont|won'?t|will not|"
    r"rather not|not going to|not gonna)\s+(?:want to\s+|wanna\s+)?"
    r"(?:rate|answer|do|take|fill|give)\b.{0,30}"
    r"\b(?:anything|that|this|it|survey|surveys|questions?|rating|ratings|score|feedback)\b",
    re.IGNORECASE,
)


def is_decline(text: str) -> bool:
    return bool(_DECLINE.match(text or "") or _DECLINE_SENTENCE.match(text or ""))


# "that's it" at "Anything you'd like to add?": nothing to add, not a comment (tr27).
_NO_COMMENT = re.compile(
    r"^\W*(?:no+|nope|nah|nothing|none|no comments?|nothing (?:else|more|to add)|not really|"
    r"all good|that'?s (?:it|all|everything)|thats (?:it|all)|i'?m good|im good|no thanks?|"
    r"no,? that'?s (?:it|all)|n/?a|"
    # "k", "idk", "dunno" at "Anything you'd like to add?" (tester 8, tw8_09, tw8_10: stored
    # as the comment, and as the churn reason)
    r"k+|ok(?:ay)?|idk|dunno|i don'?t know|not sure|no idea)\W*(?:thanks?|thx|ty|thank you)?\W*$",
    re.IGNORECASE,
)


is_no_comment = Words(_NO_COMMENT, at_start=True)

"""Behaviour evaluation: which dialogue act a reply performs, and whether its content is right.

A fine-tuned ordering assistant should take the right action — ask for the missing detail,
confirm the order, steer an off-topic customer back, call the right function — and a correct
rephrasing of the reference should count as right. So replies are classified into one act:

    ask       a question for missing information (and which slot it asks about)
    confirm   a request to check / a summary of the order
    inform    information or an answer (the default for plain text)
    steer     refusal, "we don't have that", or bringing an off-topic customer back
    closing   the order is placed / will be ready / goodbye
    tool_call a function call (and which function, with which arguments)

plus `none` for an empty reply. The rules are regular expressions and a slot lexicon; both are
data (`DEFAULT_LEXICON`, extendable with `load_lexicon`) so another domain adds its own words
without touching the code.

Appropriateness: the act of the prediction equals the act of the reference. Correctness: it is
appropriate and the content is right — `ask` asks about the reference's slot (or one of the
slots given as missing), `confirm` mentions every item and option the reference mentions,
`tool_call` names the same function with the same arguments. For inform/steer/closing there is
no content to check and correctness equals appropriateness.
"""

from tunelab.eval.behaviour.acts import (
    ACTS,
    LABELS,
    Act,
    classify,
    missing_slots,
    reply_form,
    tool_calls_in_text,
)
from tunelab.eval.behaviour.expected import Verdict, judge_expected, parse_order
from tunelab.eval.behaviour.lexicon import DEFAULT_LEXICON, Lexicon, load_lexicon
from tunelab.eval.behaviour.scoring import PairScore, score_pair, score_pairs

__all__ = [
    "ACTS",
    "LABELS",
    "Act",
    "classify",
    "missing_slots",
    "reply_form",
    "tool_calls_in_text",
    "Verdict",
    "judge_expected",
    "parse_order",
    "DEFAULT_LEXICON",
    "Lexicon",
    "load_lexicon",
    "PairScore",
    "score_pair",
    "score_pairs",
]

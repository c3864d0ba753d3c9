"""Rule-aware repair of a reply that fails only rules a program can satisfy without changing meaning.

Used by recipe bake on teacher samples: a 135M teacher given "end with a question, at most three
sentences, no lists" writes good content and breaks the form (most often: no closing
question). Four repairs, applied in this order and each counted:

  list_to_prose       list lines become prose: short items joined ("oat, soy and almond"),
                      longer ones each a sentence (rule `format: no_list`);
  forbidden_removed   every sentence holding a forbidden phrase is dropped (`must_not_contain`);
  sentences_cut       the reply is cut at a sentence boundary to the limit, leaving room for the
                      closing question when one is appended (`max_sentences`);
  question_added      a closing question is appended: from the rule's `closing_questions` list in
                      the prompt file, else from `closer` (bake: the teacher writes one for this
                      reply) (`ends_with_question`).

A reply failing any other rule, or a rule marked `repair: false` in the prompt file, is not
repaired. Every repaired reply is checked again against ALL rules; only a pass is returned, so a
repair can never hand bake a target that breaks a rule (e.g. a question that adds a sentence).
Sentences are counted with the checker's own `sentences`, so the cut and the check agree.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from tunelab.prompts.rules import _LIST_LINE, CheckItem, PromptSpec, Rule, check_all, passes_all, sentences

REPAIRS = ("list_to_prose", "forbidden_removed", "sentences_cut", "question_added", "question_generated")
# A piece of prose: split after a sentence end followed by space, or at a line break.
_PIECE_SPLIT = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"')\]»]*$")
# List items this short with no sentence end inside read naturally as "a, b and c".
SHORT_ITEM_WORDS = 6


@dataclass
class Repaired:
    """The outcome for one reply: `text` is None when it was not (or could not be) repaired."""

    text: str | None
    steps: list[str] = field(default_factory=list)
    reason: str = ""  # "passed", "repaired", or why not

    @property
    def usable(self) -> bool:
        return self.text is not None


def _repairable(rule: Rule) -> bool:
    if not rule.repairable:
        return False
    if rule.kind == "format":
        return rule.params["format"] == "no_list"
    return rule.kind in ("max_sentences", "must_not_contain", "ends_with_question")


def _join_items(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    return text if _ENDS_SENTENCE.search(text) else text + "."


def list_to_prose(text: str) -> str:
    """Each run of list lines as prose; the whole reply as one paragraph.

    >>> list_to_prose("We have three milks:\\n- Oat\\n- Soy\\n- **Almond**\\nWhich one?")
    'We have three milks: Oat, Soy and Almond. Which one?'
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if not run:
            return
        short = all(len(i.split()) <= SHORT_ITEM_WORDS and not re.search(r"[.!?…:]\s", i + " ") for i in run)
        if short and out and out[-1].endswith(":"):  # "We have:" + items -> one sentence
            out[-1] = out[-1] + " " + _join_items([i.rstrip(",;") for i in run]) + "."
        elif short:
            out.append(_sentence(_join_items([i.rstrip(",;") for i in run])))
        else:
            out.extend(_sentence(i.rstrip(",;")) for i in run)
        run.clear()

    for line in text.strip().splitlines():
        if _LIST_LINE.match(line):
            item = _LIST_LINE.sub("", line).replace("**", "").replace("__", "").strip()
            if item:
                run.append(item)
            continue
        if not line.strip():  # a blank line between items does not end the list
            continue
        flush()
        out.append(line.strip())
    flush()
    return " ".join(out)


def pieces(text: str) -> list[str]:
    """The reply split into sentence-sized pieces, in order, with their own punctuation."""
    return [p for p in _PIECE_SPLIT.split(text.strip()) if p.strip()]


def cut_to(parts: list[str], limit: int) -> list[str]:
    """The longest prefix of `parts` the checker counts as at most `limit` sentences."""
    kept: list[str] = []
    for p in parts:
        if len(sentences(" ".join(kept + [p]))) > limit:
            break
        kept.append(p)
    return kept


def _closing_question(rule: Rule, text: str, closer: Callable[[str], str | None] | None) -> tuple[str | None, str]:
    options = rule.params.get("closing_questions") or []
    if options:  # a stable choice per reply: the same sample gets the same question on resume
        return options[zlib.crc32(text.encode("utf-8")) % len(options)], "list"
    if closer is not None:
        return closer(text), "generated"
    return None, "none"


def repair(
    spec: PromptSpec, reply: str, item: CheckItem, closer: Callable[[str], str | None] | None = None
) -> Repaired:
    """`reply` unchanged when it passes; else its repair when every failed rule is repairable and
    the repaired text passes every rule; else text None with the reason."""
    failed = [r for r in check_all(spec, reply, item) if r.applicable and not r.passed]
    if not failed:
        return Repaired(reply, [], "passed")
    by_id = {r.id: r for r in spec.rules}
    fixed = [by_id[f.rule] for f in failed]
    blocked = [r.id for r in fixed if not _repairable(r)]
    if blocked:
        return Repaired(None, [], "not repairable: " + ", ".join(blocked))
    text, steps = reply.strip(), []
    if any(r.kind == "format" for r in fixed):
        text, steps = list_to_prose(text), steps + ["list_to_prose"]
    parts = pieces(text)
    for rule in (r for r in fixed if r.kind == "must_not_contain"):
        flags = 0 if rule.params["case_sensitive"] else re.IGNORECASE
        left = [p for p in parts if not re.search(re.escape(rule.params["phrase"]), p, flags)]
        if len(left) < len(parts):
            parts, steps = left, steps + ["forbidden_removed"]
    question_rule = next((r for r in fixed if r.kind == "ends_with_question"), None)
    if question_rule is not None and len(parts) > 1 and not _ENDS_SENTENCE.search(parts[-1]):
        parts = parts[:-1]  # an unfinished last sentence (cut by the token limit) before the question would read badly
    limit = min((r.params["n"] for r in spec.rules if r.kind == "max_sentences"), default=None)
    if limit is not None:
        room = limit - (1 if question_rule is not None else 0)
        kept = cut_to(parts, room)
        if len(kept) < len(parts):
            parts, steps = kept, steps + ["sentences_cut"]
    if not parts:
        return Repaired(None, steps, "nothing of the reply left")
    if question_rule is not None:
        question, source = _closing_question(question_rule, " ".join(parts), closer)
        if not question or not question.strip().endswith("?"):
            return Repaired(
                None, steps, "no closing question (add closing_questions to the rule, or let the teacher write one)"
            )
        parts, steps = (
            parts + [question.strip()],
            steps + ["question_added" if source == "list" else "question_generated"],
        )
    text = " ".join(parts)
    still = [r.rule for r in check_all(spec, text, item) if r.applicable and not r.passed]
    if still:
        return Repaired(None, steps, "still fails: " + ", ".join(still))
    return Repaired(text, steps, "repaired")


def clean_question(text: str, max_words: int = 15) -> str | None:
    """A generated closing question, or None: the first line, one sentence, ending with '?'."""
    first = text.strip().splitlines()[0].strip().strip("\"'«»") if text.strip() else ""
    if not first.endswith("?") or len(sentences(first)) != 1 or len(first.split()) > max_words:
        return None
    return first


def passes(spec: PromptSpec, reply: str, item: CheckItem) -> bool:
    return passes_all(check_all(spec, reply, item))

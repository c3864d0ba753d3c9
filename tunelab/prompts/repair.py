"""Rule-aware repair of a reply that fails only rules a program can satisfy without changing meaning.

Used by recipe bake on teacher samples: a 135M teacher given "end with a question, at most three
sentences, no lists" writes good content and breaks the form (most often: no closing
question). The repairs, applied in this order and each counted:

  debris_cut          role labels a base model writes around its reply are cut off ("Answer: ...",
                      "... ### User: ...": sanity.without_template_debris), as a stop sequence would;
  lines_joined        a line broken inside a sentence (the teacher wraps long lines: "sign in,\nthen
                      tap") is joined with a space, not made two sentences ("sign in,. then");
  list_to_prose       list lines become prose: short items joined ("oat, soy and almond"),
                      longer ones each a sentence (rule `format: no_list`);
  forbidden_removed   every sentence holding a forbidden phrase is dropped (`must_not_contain`);
  fragment_dropped    an unfinished last sentence (cut by the token limit) is dropped;
  sentences_cut       the reply is cut at a sentence boundary to the sentence and word limits,
                      leaving room for the closing question (`max_sentences`, `max_words`);
  phrase_added        a sentence carrying a required phrase (`must_contain`) is added before the
                      closing question, made from the prompt's own instruction that asks for the
                      phrase ("tell the customer to check with one of our pharmacists" -> "Please
                      check with one of our pharmacists."; "mention that a pharmacist checks every
                      order" -> "A pharmacist checks every order."), the one sharing most words with
                      the question; where the prompt only names what to mention ("always mention
                      their online account"), its own statement holding the phrase, told to the
                      customer ("... done in the customer's online account" -> "... done in your
                      online account."); a prompt with neither leaves the rule unrepairable;
  sign_off_added      a sign-off the prompt quotes ("Sign off every reply with "- Northline Help"")
                      ends the reply, after the closing question, when a `must_contain` rule asks
                      for a phrase inside it; a sign-off the teacher wrote is taken off first and
                      put back, so the cuts above never cut it;
  question_added      a closing question is appended (`ends_with_question`), the first of these
                      candidates that makes the whole reply pass: the rule's `closing_questions`,
                      questions quoted in the prompt text, then a small built-in bank in the
                      reply's language (CLOSING_QUESTIONS), ranked by the words they share with
                      the prompt.

A reply failing any other rule, or a rule marked `repair: false` in the prompt file, is not
repaired. Every target, repaired or passing as written, is checked again against ALL rules and
against plain sanity (tunelab/prompts/sanity.py: quotes, brackets, echo of the question,
fragments, role markers); only a pass is returned, with the reason for a refusal otherwise.
Sentences are counted with the checker's own `sentences`, so the cut and the check agree.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field, replace

from tunelab.prompts.rules import (
    _LIST_LINE,
    _WORD,
    CheckItem,
    PromptSpec,
    Rule,
    check_all,
    detect_language,
    passes_all,
    sentences,
    stems,
)
from tunelab.prompts.sanity import sanity_problem, without_template_debris

REPAIRS = (
    "debris_cut",
    "lines_joined",
    "list_to_prose",
    "forbidden_removed",
    "fragment_dropped",
    "sentences_cut",
    "phrase_added",
    "question_added",
    "sign_off_added",
)
# A piece of prose: split after a sentence end followed by space, or at a line break.
_PIECE_SPLIT = re.compile(r"(?<=[.!?…])\s+|\s*\n\s*")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"')\]»”*]*$")
# A question quoted in the prompt ("end with a question such as "Anything else?"") is the prompt's own closer.
_QUOTED_QUESTION = re.compile(r"[\"“«]([^\"”»\n]{3,120}\?)[\"”»]")
# List items this short with no sentence end inside read naturally as "a, b and c".
SHORT_ITEM_WORDS = 6
# Closing questions for a prompt that asks for one and lists none: short, generic, one sentence each.
CLOSING_QUESTIONS = {
    "en": (
        "Is there anything else I can help you with?",
        "Does that help?",
        "Would you like more details?",
        "Can I help with anything else?",
        "Does that answer your question?",
        "Is there anything else you would like to know?",
        "Shall I explain any step in more detail?",
        "Anything else I can do for you?",
    ),
    "ru": (
        "Могу ли я помочь чем-то ещё?",
        "Это помогло?",
        "Хотите узнать подробнее?",
        "Остались ли у вас вопросы?",
        "Нужна ли помощь с чем-то ещё?",
        "Подсказать что-нибудь ещё?",
        "Это отвечает на ваш вопрос?",
        "Рассказать подробнее о каком-нибудь шаге?",
    ),
}


@dataclass
class Repaired:
    """The outcome for one reply: `text` is None when it was not (or could not be) repaired."""

    text: str | None
    steps: list[str] = field(default_factory=list)
    reason: str = ""  # "passed", "repaired", or why not

    @property
    def usable(self) -> bool:
        return self.text is not None


def _repairable(spec: PromptSpec, rule: Rule) -> bool:
    if not rule.repairable:
        return False
    if rule.kind == "format":
        return rule.params["format"] == "no_list"
    if rule.kind == "must_contain":
        phrase = rule.params["phrase"]
        return bool(phrase_sentences(spec.prompt, phrase) or sign_offs(spec.prompt, phrase))
    return rule.kind in ("max_sentences", "max_words", "must_not_contain", "ends_with_question")


# An instruction to pass something on, in the prompt: "tell the customer to <do>", "mention that <fact>".
# Hand-written: no library turns an instruction into the sentence it asks for; English only (a Russian
# infinitive would need conjugating into the imperative), so a Russian must_contain stays unrepairable.
_WHO = r"(?:the\s+|our\s+)?(?:customers?|users?|clients?|callers?|patients?|riders?|people|person|them|him|her)"
_TELL_TO = re.compile(
    rf"\b(?:tell|ask|remind|advise|encourage|invite|urge|direct|refer)\s+{_WHO}\s+to\s+(?P<act>[^;:.!?]+)",
    re.IGNORECASE,
)
_SAY_THAT = re.compile(
    r"\b(?:mention|say|state|explain|add|note|point\s+out|remind\s+\w+)\s+that\s+(?P<fact>[^;:.!?]+)", re.IGNORECASE
)
_CLAUSE_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n\s*(?:[-*•]|\d+[.)])?\s*")


def phrase_sentences(prompt: str, phrase: str) -> list[tuple[str, str]]:
    """(sentence, the prompt's clause it came from) for each instruction in `prompt` that asks the
    reply to pass on something holding `phrase`, in the prompt's order; where no instruction does,
    the prompt's own statements that hold it, told to the customer (`phrase_statements`).

    >>> phrase_sentences("For order questions, mention that a pharmacist checks every order.", "pharmacist")
    [('A pharmacist checks every order.', 'For order questions, mention that a pharmacist checks every order.')]
    """
    out = []
    for clause in _CLAUSE_SPLIT.split(join_wrapped_lines(prompt)):
        for m in list(_TELL_TO.finditer(clause)) + list(_SAY_THAT.finditer(clause)):
            body = _CUSTOMERS.sub("your", " ".join(m.group(m.lastgroup).split()).rstrip(","))
            if phrase.casefold() not in body.casefold() or len(body.split()) > 20:
                continue
            sentence = "Please " + body if m.lastgroup == "act" else body[0].upper() + body[1:]
            out.append((sentence + ".", clause.strip(" -*•\n")))
    return out or phrase_statements(prompt, phrase)


# A statement of fact in the prompt, as opposed to an instruction to the assistant: none of these
# words. Hand-written, English, for the reason above.
_INSTRUCTING = re.compile(
    r"\b(?:you|your|always|never|must|should|don'?t|do\s+not|please|reply|replies|answer|mention|tell|say|keep"
    r"|write|use|if|when)\b",
    re.IGNORECASE,
)
_CUSTOMERS = re.compile(
    r"\b(?:the\s+|our\s+|a\s+)?(?:customer|user|client|caller|patient|rider|member)(?:s['’]|['’]s)|\btheir\b",
    re.IGNORECASE,
)
_ASIDE = re.compile(r"\s*\([^()]*\)")
_CLAUSE_JOIN = re.compile(r",?\s+(?:so|and\s+so|because|but)\s+|\s+[-–—]\s+", re.IGNORECASE)


def phrase_statements(prompt: str, phrase: str) -> list[tuple[str, str]]:
    """(sentence, clause) for each statement of fact in `prompt` that holds `phrase`, the customer's
    third person made the second ("the customer's online account" -> "your online account") and
    asides in brackets dropped: for a rule such as "always mention their online account", which
    names what to mention but gives no sentence, the prompt's own words about it.

    >>> phrase_statements("Almost everything can be done in the customer's online account (bills, "
    ...     "payments), so always mention their online account in your reply.", "online account")[0][0]
    'Almost everything can be done in your online account.'
    """
    out = []
    for sentence in _CLAUSE_SPLIT.split(join_wrapped_lines(prompt)):
        if re.search(r"[^\W\d_a-zA-Z\u00c0-\u024f]", sentence):
            continue  # English only: a letter outside the Latin script
        for clause in _CLAUSE_JOIN.split(sentence.strip(" -*•\n")):
            told = " ".join(_ASIDE.sub("", clause).split()).rstrip(",.;:!? ")
            if not told or _INSTRUCTING.search(told) or '"' in told or not 4 <= len(told.split()) <= 20:
                continue
            told = _CUSTOMERS.sub("your", told)
            if phrase.casefold() in told.casefold():
                out.append((told[0].upper() + told[1:] + ".", clause.strip()))
    return out


# "Sign off every reply with "- Northline Help"", "end each answer with 'Team Hearth'": a line the
# prompt quotes for the end of every reply. Hand-written, English, for the same reason as above.
_SIGN_OFF = re.compile(
    r"\b(?:sign(?:ing)?\s+off|end|finish|close)\b[^.;:!?\"“«]{0,40}?\bwith\s+[\"“«'](?P<quote>[^\"”»\n]{1,60}?)[\"”»']",
    re.IGNORECASE,
)


def sign_offs(prompt: str, phrase: str) -> list[str]:
    r"""The sign-offs `prompt` quotes that hold `phrase`, in its order.

    >>> sign_offs('Always reply in English. Sign off every reply with\n"- Northline Help".', "Northline Help")
    ['- Northline Help']
    """
    quotes = (m.group("quote").strip() for m in _SIGN_OFF.finditer(" ".join(prompt.split())))
    return list(dict.fromkeys(q for q in quotes if phrase.casefold() in q.casefold()))


def _split_sign_off(spec: PromptSpec, text: str) -> tuple[str, str]:
    """(the reply without a sign-off it ends with, that sign-off or "")."""
    for rule in spec.rules:
        if rule.kind == "must_contain" and rule.repairable:
            for quote in sign_offs(spec.prompt, rule.params["phrase"]):
                if text.rstrip().endswith(quote) and text.rstrip() != quote:
                    return text.rstrip()[: -len(quote)].rstrip(), quote
    return text, ""


def phrase_candidates(spec: PromptSpec, rule: Rule, item: CheckItem, text: str) -> list[str]:
    """Sentences to add for a failed must_contain rule, best first: most words shared between the
    instruction's clause and the question (a medicine question gets the medicine instruction's
    sentence), then the reply, ties in a stable rotation per reply."""
    found = phrase_sentences(spec.prompt, rule.params["phrase"])
    turn = zlib.crc32(text.encode("utf-8")) % len(found) if found else 0
    found = found[turn:] + found[:turn]
    asked, said = set(stems(item.question)), set(stems(text))
    found.sort(key=lambda sc: (-len(set(stems(sc[1])) & asked), -len(set(stems(sc[1])) & said)))
    return list(dict.fromkeys(sentence for sentence, _ in found))


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


# A line break after a word or comma, before a lowercase letter: the line was wrapped mid-sentence.
_WRAPPED = re.compile(r"(?<=[^\s.!?…:;])[ \t]*\n[ \t]*(?=[^\W\d_])")


def join_wrapped_lines(text: str) -> str:
    """Lines wrapped inside a sentence joined with a space; list lines and real sentence breaks kept.

    >>> join_wrapped_lines("To unlock it, sign in,\\nthen tap the bike.\\nWe open at 9.")
    'To unlock it, sign in, then tap the bike.\\nWe open at 9.'
    """
    return _WRAPPED.sub(lambda m: " " if text[m.end()].islower() else m.group(0), text)


def pieces(text: str) -> list[str]:
    """The reply split into sentence-sized pieces, in order, with their own punctuation."""
    return [p for p in _PIECE_SPLIT.split(text.strip()) if p.strip()]


def _n_words(text: str) -> int:
    return len(_WORD.findall(text))


def cut_to(parts: list[str], limit: int | None, max_words: int | None = None) -> list[str]:
    """The longest prefix of `parts` the checker counts as at most `limit` sentences and `max_words` words."""
    kept: list[str] = []
    for p in parts:
        text = " ".join(kept + [p])
        if (limit is not None and len(sentences(text)) > limit) or (
            max_words is not None and _n_words(text) > max_words
        ):
            break
        kept.append(p)
    return kept


def _language(spec: PromptSpec, item: CheckItem, text: str) -> str:
    """The language a closing question must be in: the language rule's, else the question's, else the reply's."""
    for rule in spec.rules:
        if rule.kind == "language" and rule.params["expected"] != "auto":
            return rule.params["expected"]
    return detect_language(item.question) or detect_language(text) or "en"


def closing_candidates(spec: PromptSpec, rule: Rule, item: CheckItem, text: str) -> list[str]:
    """Closing questions to try, best first: the rule's list, the prompt's quoted questions, the bank.

    Within the list and the bank the starting point rotates with the reply (a stable choice: the
    same sample gets the same question on resume), and the bank is ranked by shared words with the
    prompt, so a coffee-shop prompt's "order" pulls "...your order?" ahead."""
    turn = zlib.crc32(text.encode("utf-8"))

    def rotated(options: list[str]) -> list[str]:
        k = turn % len(options) if options else 0
        return options[k:] + options[:k]

    listed = rotated([str(q).strip() for q in rule.params.get("closing_questions") or []])
    quoted = [q.strip() for q in _QUOTED_QUESTION.findall(spec.prompt)]
    prompt_words = set(stems(spec.prompt))
    bank = rotated(list(CLOSING_QUESTIONS.get(_language(spec, item, text), ())))
    bank.sort(key=lambda q: -len(set(stems(q)) & prompt_words))  # stable: ties keep the rotation
    return list(dict.fromkeys(listed + quoted + bank))


def _join(parts: list[str]) -> str:
    # a piece that ended at a line break ("Hello\nWe have...") becomes a sentence of its own
    head = [p if p.endswith(":") else _sentence(p) for p in parts[:-1]]
    return " ".join(head + parts[-1:])


def with_headroom(spec: PromptSpec, headroom: float) -> PromptSpec:
    """`spec` with every `max_sentences` and `max_words` limit n lowered by `headroom` of it,
    rounded, never below one: at 0.15, 4 sentences -> 3, 60 words -> 51; 3 sentences stay 3 (a
    closing question and one sentence would be all that is left of 2)."""
    tight = tuple(_lowered(r, headroom) for r in spec.rules)
    # `spec` itself where no limit moves, so repair() does not run the same repair twice
    return spec if all(t is r for t, r in zip(tight, spec.rules)) else replace(spec, rules=tight)


def _lowered(rule: Rule, headroom: float) -> Rule:
    if rule.kind not in ("max_sentences", "max_words"):
        return rule
    n = rule.params["n"]
    lowered = max(1, n - round(n * headroom))
    return rule if lowered == n else replace(rule, params=rule.params | {"n": lowered})


def repair(spec: PromptSpec, reply: str, item: CheckItem, headroom: float = 0.0) -> Repaired:
    """`reply` unchanged when it passes every rule and the sanity check; else its repair when every
    failed rule is repairable and the repaired text passes every rule and the sanity check; else
    text None with the reason.

    With `headroom`, the reply is first fitted under the lowered limits of `with_headroom` (a
    passing reply at a limit is cut too), and under the prompt's own limits only where that leaves
    no target: a student trained on targets at the limit went over it in a fifth of its replies
    (docs/bake.md)."""
    tight = with_headroom(spec, headroom)
    if tight is not spec:
        fitted = _repair(tight, reply, item)
        if fitted.usable:
            return fitted
    return _repair(spec, reply, item)


def _repair(spec: PromptSpec, reply: str, item: CheckItem) -> Repaired:
    if not reply.strip():
        return Repaired(None, [], "empty reply")
    shown = [e.reply for e in spec.examples]  # the teacher saw these: a copy of one is no target
    text, steps = reply.strip(), []
    cut = without_template_debris(text)
    if cut != text:
        if not cut:
            return Repaired(None, ["debris_cut"], "nothing of the reply left")
        text, steps = cut, ["debris_cut"]
    text, signed = _split_sign_off(spec, text)  # put back (or added) last, past every cut
    own_sign_off = bool(signed)
    failed = [r for r in check_all(spec, text, item) if r.applicable and not r.passed]
    by_id = {r.id: r for r in spec.rules}
    fixed = [by_id[f.rule] for f in failed]
    blocked = [r.id for r in fixed if not _repairable(spec, r)]
    if blocked:
        return Repaired(None, steps, "not repairable: " + ", ".join(blocked))
    if not failed and not signed:
        problem = sanity_problem(text, item.question, shown)
        if problem != "no terminal punctuation":  # the one sanity problem a cut can mend
            if problem:
                return Repaired(None, steps, f"sanity: {problem}")
            return Repaired(text, steps, "repaired") if steps else Repaired(reply, [], "passed")
    joined = join_wrapped_lines(text)
    if joined != text:
        text, steps = joined, steps + ["lines_joined"]
    if any(r.kind == "format" for r in fixed):
        text, steps = list_to_prose(text), steps + ["list_to_prose"]
    parts = pieces(text)
    for rule in (r for r in fixed if r.kind == "must_not_contain"):
        flags = 0 if rule.params["case_sensitive"] else re.IGNORECASE
        left = [p for p in parts if not re.search(re.escape(rule.params["phrase"]), p, flags)]
        if len(left) < len(parts):
            parts, steps = left, steps + ["forbidden_removed"]
    if len(parts) > 1 and not _ENDS_SENTENCE.search(parts[-1]):
        parts, steps = parts[:-1], steps + ["fragment_dropped"]  # half a sentence reads worse than none
    if not parts:
        return Repaired(None, steps, "nothing of the reply left")
    if not _ENDS_SENTENCE.search(parts[-1]):  # one unfinished sentence: a full stop would pass a fragment off
        return Repaired(None, steps, "sanity: no terminal punctuation")
    # one sentence per missing phrase, kept whole by every cut below; a phrase the prompt only
    # quotes in a sign-off comes with the sign-off
    candidates = [(r, phrase_candidates(spec, r, item, text)) for r in fixed if r.kind == "must_contain"]
    pinned = [found[0] for _, found in candidates if found]
    if not signed:
        quotes = (sign_offs(spec.prompt, r.params["phrase"]) for r, found in candidates if not found)
        signed = next((q[0] for q in quotes if q), "")
    question_rule = next((r for r in fixed if r.kind == "ends_with_question"), None)
    closers = closing_candidates(spec, question_rule, item, _join(parts)) if question_rule else [None]
    if not closers:
        return Repaired(None, steps, "no closing question in this language (add closing_questions to the rule)")
    limit = min((r.params["n"] for r in spec.rules if r.kind == "max_sentences"), default=None)
    max_words = min((r.params["n"] for r in spec.rules if r.kind == "max_words"), default=None)
    reason = ""
    for closer in closers:  # the first closing question (or none) that makes the whole reply pass
        added = pinned + ([closer] if closer else [])
        room = (limit - len(added) - len(sentences(signed))) if limit is not None else None
        words = (max_words - sum(map(_n_words, added + [signed]))) if max_words is not None else None
        kept = cut_to(parts, room, words)
        if not kept:
            reason = "nothing of the reply left"
            continue
        body = _join(kept + added)
        out = f"{body} {signed}" if signed else body
        tried = (
            steps
            + (["sentences_cut"] if len(kept) < len(parts) else [])
            + (["phrase_added"] if pinned else [])
            + (["question_added"] if closer else [])
            + (["sign_off_added"] if signed and not own_sign_off else [])
        )
        still = [r.rule for r in check_all(spec, out, item) if r.applicable and not r.passed]
        if still:
            reason = "still fails: " + ", ".join(still)
            continue
        problem = sanity_problem(body, item.question, shown)  # a sign-off ends without a full stop
        if problem:
            return Repaired(None, tried, f"sanity: {problem}")  # another closer would not mend the body
        return Repaired(out, tried, "repaired") if tried else Repaired(reply, [], "passed")
    return Repaired(None, steps, reason)


def passes(spec: PromptSpec, reply: str, item: CheckItem) -> bool:
    return passes_all(check_all(spec, reply, item))

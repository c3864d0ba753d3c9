"""The strict judge: did a reply do what the generator recorded as right for that turn?

A generator (tunelab.data.synth.cafe) stores, per assistant turn, what the right reply does.
This module decides whether a reply did it, and says why, so every verdict can be read:

  ask      right when the reply's act is a question (not a confirmation of the incomplete order),
           every detail it asks about is one that is missing, and it is about the item that misses
           it: that item is named, or it is the only item of the order the detail applies to. A
           read-back of the order so far before the question ("Got it: a latte. And what size…")
           must not add items or options the customer did not give.
           Naming an item of the order whose detail was given, or an item not ordered (except
           drinks offered for a meal deal), is wrong.
  confirm  right when the reply's act is a confirmation that names every item of the order with
           every option the customer gave (size, hot/iced, how many, the meal deal's drink) and
           no item or option the customer did not give. A temperature implied by the drink
           (a cappuccino is hot) may be said or left out, but not contradicted.

Hand-written because no library parses order read-backs; it is audited against replies labelled
by reading them (tests/fixtures/judge_audit.jsonl, tests/unit/test_judge_audit.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tunelab.eval.behaviour.acts import classify, normalise_text, question_sentences, split_sentences
from tunelab.eval.behaviour.lexicon import DEFAULT, Lexicon

SIZES = ("small", "medium", "large")
TEMPERATURES = {"hot": "hot", "iced": "iced", "ice": "iced", "cold": "iced"}
QUANTITIES = {
    "a": 1,
    "an": 1,
    "one": 1,
    "single": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "1": 1,
    "2": 2,
    "3": 3,
    "4": 4,
    "5": 5,
    "6": 6,
}
# Where one ordered thing ends and the next begins in a read-back ("a latte, two cookies and a
# ham sandwich meal deal with a mocha").
_SEGMENT = re.compile(r"[,;:.!?()\n]|\b(?:and|with|plus|also|then)\b")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Verdict:
    right: bool
    act: str  # the act the reply performed
    reason: str  # why, in words a reader can check against the reply


@dataclass(frozen=True)
class Mention:
    """One ordered thing as a reply states it."""

    name: str
    size: str | None = None
    temperature: str | None = None
    quantity: int | None = None
    plural: bool = False

    @property
    def count(self) -> int | None:
        """How many it says: the number given, else one for a singular ("latte"), unsaid for a plural."""
        return self.quantity if self.quantity is not None else (None if self.plural else 1)

    @property
    def bare(self) -> bool:
        return self.size is None and self.temperature is None and self.quantity is None


def _options(words: list[str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for w in words:
        if w in SIZES:
            found.setdefault("size", w)
        elif w in TEMPERATURES:
            found.setdefault("temperature", TEMPERATURES[w])
        elif w in QUANTITIES:
            found.setdefault("quantity", QUANTITIES[w])
    return found


def parse_order(text: str, lexicon: Lexicon | None = None) -> list[Mention]:
    """The ordered things a reply names, each with the options said just before it ("a large
    iced latte", "two cookies"); options in a segment of their own ("a latte (large, iced)")
    go to the thing named before them."""
    lexicon = lexicon or DEFAULT
    text = lexicon.ignore.sub(" ", normalise_text(text))
    mentions: list[Mention] = []
    for segment in _SEGMENT.split(text):
        start, found = 0, False
        for match in lexicon.items.finditer(segment):
            words = _WORD.findall(segment[start : match.start()])
            # "some banana bread": a name whose plural is itself says no number after "some"
            unsaid = match.group(0) != match.group(1) or "some" in words[-1:]
            mentions.append(Mention(match.group(1), plural=unsaid, **_options(words)))
            start, found = match.end(), True
        if not found and mentions:
            extra = {k: v for k, v in _options(_WORD.findall(segment)).items() if k != "quantity"}
            last = mentions[-1]
            if extra and all(getattr(last, k) is None for k in extra):
                mentions[-1] = Mention(
                    last.name,
                    extra.get("size", last.size),
                    extra.get("temperature", last.temperature),
                    last.quantity,
                    last.plural,
                )
    return mentions


def _stated(entry: Mapping[str, Any]) -> tuple[str, str | None, str | None, int]:
    """An order entry as the reply must state it; an implied temperature drops out."""
    temperature = None if entry.get("implied_temperature") else entry.get("temperature")
    quantity = entry.get("quantity") or 1
    return (entry["name"], entry.get("size") if entry.get("kind") == "drink" else None, temperature, quantity)


def _said(m: Mention, implied: str | None) -> tuple[str, str | None, str | None, int | None]:
    temperature = None if implied is not None and m.temperature == implied else m.temperature
    return (m.name, m.size, temperature, m.count)


def _describe(t: tuple[Any, ...]) -> str:
    name, size, temperature, quantity = t
    qty = "" if quantity == 1 else (f"{quantity} " if quantity else "some ")
    return qty + " ".join(w for w in (size, temperature, name) if w)


def _judge_confirm(text: str, act: str, expect: Mapping[str, Any], lexicon: Lexicon) -> Verdict:
    order = expect["order"]
    if act != "confirm":
        return Verdict(False, act, f"{act}, not a confirmation of the complete order")
    implied = {e["name"]: e["temperature"] for e in order if e.get("implied_temperature")}
    wanted: dict[str, list[tuple[Any, ...]]] = {}
    for entry in order:
        wanted.setdefault(entry["name"], []).append(_stated(entry))
    said: dict[str, list[Mention]] = {}
    for m in parse_order(text, lexicon):
        said.setdefault(m.name, []).append(m)
    for name in said:
        if name not in wanted:
            return Verdict(False, act, f"names {name}, which is not in the order")
    for name, entries in wanted.items():
        if name not in said:
            return Verdict(False, act, f"leaves out the {name}")
        # a bare repeat ("... with your latte?") refers back to a fuller mention of the same item
        informative = [m for m in said[name] if not m.bare] or said[name][:1]
        # as many times as ordered: saying the meal deal twice adds a second deal
        stated = sorted((_said(m, implied.get(name)) for m in informative), key=str)
        if stated != sorted(entries, key=str):
            return Verdict(
                False,
                act,
                f"says {' / '.join(_describe(s) for s in stated)} where the customer "
                f"ordered {' / '.join(_describe(e) for e in sorted(entries, key=str))}",
            )
    return Verdict(True, act, "confirms every item with the options given")


def _asked_slots(question: str, lexicon: Lexicon) -> list[str]:
    """Slots a question asks about: by their cues ("what size", "hot or iced"), else by their values
    ("would you like it large?"), so options repeated around a cue ("the large latte, hot or iced?")
    do not count as asked."""
    masked = lexicon.items.sub(" ", question)
    by_cue = [slot for slot, cues, _ in lexicon.strict_slot_patterns if cues and cues.search(question)]
    if by_cue:
        return by_cue
    return [slot for slot, _, values in lexicon.strict_slot_patterns if values and values.search(masked)]


def _judge_ask(text: str, act: str, expect: Mapping[str, Any], lexicon: Lexicon) -> Verdict:
    slot, item = expect["slot"], expect["item"]
    if act != "ask":
        return Verdict(False, act, f"{act} instead of asking about the {slot} of the {item}")
    questions = question_sentences(text, lexicon)
    question = " ".join(questions)
    restated = _misread(" ".join(s for s in split_sentences(text) if s not in questions), expect, lexicon)
    if restated:
        return Verdict(False, act, restated)
    asked = _asked_slots(question, lexicon)
    missing = {(m["item"], m["slot"]) for m in expect["missing"]}
    missing_slots = {s for _, s in missing}
    if not asked:
        return Verdict(False, act, f"asks nothing about a missing detail (wanted the {slot} of the {item})")
    given = [s for s in asked if s not in missing_slots]
    if given:
        return Verdict(
            False, act, f"asks about {', '.join(given)}, which is not missing (wanted the {slot} of the {item})"
        )
    in_order = {e["name"]: e for e in expect.get("order", [])}
    named = _named_items(text, question, lexicon)
    targets = {name for name, s in missing if s in asked}
    for name in sorted(named - targets - set(in_order)):
        if not ("drink" in asked and name not in expect.get("candidates", {}).get("drink", [])):
            return Verdict(False, act, f"names the {name}, which is not in the order (wanted the {slot} of the {item})")
    others = sorted((named & set(in_order)) - targets)
    if others and not named & targets:
        return Verdict(False, act, f"asks about the {', '.join(others)}, not the {item} that misses its {slot}")
    for name in others:
        if any(s in _applies(in_order[name]) for s in asked):
            return Verdict(False, act, f"asks about the {name} too, whose {'/'.join(asked)} is not missing")
    if named & targets:
        return Verdict(True, act, f"asks about the {'/'.join(asked)} of the {', '.join(sorted(named & targets))}")
    lone = [s for s in asked if len(expect.get("candidates", {}).get(s, [])) == 1]
    if lone:
        return Verdict(True, act, f"asks about the {'/'.join(asked)}; the {item} is the only item it can be about")
    return Verdict(False, act, f"asks about the {'/'.join(asked)} without saying which item (wanted the {item})")


def _misread(statement: str, expect: Mapping[str, Any], lexicon: Lexicon) -> str | None:
    """What an ask's read-back of the order so far ("Got it: a latte and two cookies.") gets
    wrong: an item not ordered, or an option the customer did not give or gave otherwise."""
    in_order = {e["name"]: e for e in expect.get("order", [])}
    mentions = parse_order(statement, lexicon)
    loose = [
        w for w in _WORD.findall(lexicon.items.sub(" ", normalise_text(statement))) if w in SIZES or w in TEMPERATURES
    ]
    attached = sum((m.size is not None) + (m.temperature is not None) for m in mentions)
    if len(loose) > attached:
        return f"reads back {', '.join(loose)} for no item of the order"
    for m in mentions:
        entry = in_order.get(m.name)
        if entry is None:
            if any(x["slot"] == "drink" for x in expect.get("missing", [])):
                continue  # drinks offered for a meal deal ("We have lattes and mochas.")
            return f"reads back the {m.name}, which is not in the order"
        for key in ("size", "temperature"):
            said, given = getattr(m, key), entry.get(key)
            if said is not None and said != given:
                return f"reads back a {said} {m.name}, but the customer gave {given or f'no {key}'}"
        if m.count is not None and m.count != (entry.get("quantity") if entry.get("kind") == "food" else 1):
            return f"reads back {m.count} {m.name}, but the customer asked for {entry.get('quantity') or 'an unsaid number'}"
    return None


def _named_items(text: str, question: str, lexicon: Lexicon) -> set[str]:
    """Items the question names; if it names none, those of the sentence just before it ("The
    veggie wrap meal deal comes with a drink. Which drink would you like?")."""
    named = set(lexicon.items.findall(lexicon.ignore.sub(" ", question)))
    if named or not question:
        return named
    sentences = split_sentences(text)
    first = next((i for i, s in enumerate(sentences) if s in question), 0)
    before = sentences[first - 1] if first > 0 else ""
    return set(lexicon.items.findall(lexicon.ignore.sub(" ", before)))


def _applies(entry: Mapping[str, Any]) -> set[str]:
    """Slots an order entry has (whether given or not)."""
    if entry.get("kind") == "drink":
        return {"size"} | (set() if entry.get("implied_temperature") else {"temperature"})
    return {"quantity"} if entry.get("kind") == "food" else {"drink"}


def judge_expected(reply: Any, expect: Mapping[str, Any], lexicon: Lexicon | None = None) -> Verdict:
    """The verdict on one reply (text, Message or OpenAI message dict) for a generator's
    expectation of that turn ({"act": "ask", ...} or {"act": "confirm", ...}, see module doc)."""
    lexicon = lexicon or DEFAULT
    act = classify(reply, lexicon)
    text = normalise_text(
        reply if isinstance(reply, str) else getattr(reply, "content", None) or reply.get("content") or ""
    )
    if expect["act"] == "ask":
        return _judge_ask(text, act.act, expect, lexicon)
    if expect["act"] == "confirm":
        return _judge_confirm(text, act.act, expect, lexicon)
    raise ValueError(f"judge_expected judges ask and confirm turns, not {expect['act']!r}")

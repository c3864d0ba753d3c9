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

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tunelab.types import Message, ToolCall

ACTS: tuple[str, ...] = ("ask", "confirm", "inform", "steer", "closing", "tool_call")
LABELS: tuple[str, ...] = ACTS + ("none",)

# Slots in priority order: when a question mentions several, the first listed is the one asked
# about ("how many shots" is about shots, not quantity). `generic` slots only count when no
# specific slot matched. `attributes` maps API attribute ids (Taskmaster) to slots.
DEFAULT_LEXICON: dict[str, Any] = {
    "slots": {
        "shots": {"cues": ["shots?", "espresso shots?", "single or double", "double or single"],
                  "values": ["single", "double", "triple", "quadruple", "one shot", "two shots"]},
        "size": {"cues": ["size", "how big", "ounces?", "oz"],
                 "values": ["small", "medium", "large", "extra large", "tall", "grande", "venti", "short"]},
        "temperature": {"cues": ["hot or iced", "iced or hot", "hot or cold", "temperature"],
                        "values": ["hot", "iced", "cold", "warm", "on ice"]},
        "milk": {"cues": ["milk", "dairy", "creamer", "cream"],
                 "values": ["whole", "2%", "non-fat", "nonfat", "skim", "oat", "almond", "soy", "coconut",
                            "lactose free", "half and half"]},
        "caffeine": {"cues": ["decaf", "caffeine", "caffeinated"], "values": ["decaffeinated"]},
        "flavor": {"cues": ["flavou?rs?", "flavou?red"],
                   "values": ["vanilla", "caramel", "hazelnut", "peppermint", "pumpkin spice", "cinnamon",
                              "chocolate sauce", "caramel sauce", "lavender"]},
        "sweetener": {"cues": ["sweeteners?", "sugar", "syrups?", "sweet", "sauce", "honey"],
                      "values": ["splenda", "equal", "stevia", "raw sugar", "sugar free"]},
        "name": {"cues": ["your name", "name for the order", "name on the order", "under what name",
                          "what name", "who is (it|this) for", "name for"], "values": []},
        "pickup": {"cues": ["pick it up", "pickup", "pick up time", "for here", "to go", "dine in",
                            "what time", "when would you", "which location", "which store", "here or"],
                   "values": ["togo", "take away", "takeaway"]},
        "food": {"cues": ["anything to eat", "something to eat", "food", "pastry", "snack"],
                 "values": ["croissant", "muffin", "bagel", "scone", "cookie", "sandwich", "cake", "danish"]},
        "quantity": {"cues": ["how many", "quantity"], "values": [], "generic": True},
        "drink": {"cues": [
            "what drink", "which drink", "what kind of", "what type of", "what can i get",
            "what would you like", "what can i make", "what do you want", "like to order", "which one",
            "something else", "another drink", "anything else", "what are you in the mood", "what will it be",
            "how can i help", "something different", "get you anything", "anything i can get",
            "order anything", "repeat your order", "which would you like", "what you want", "drinks?",
            "coffee or tea", "anything"],
            "values": [], "generic": True},
    },
    "items": [
        "chai latte", "matcha latte", "latte", "mocha", "cappuccino", "americano", "espresso", "macchiato",
        "cortado", "hot chocolate", "cold brew", "flat white", "steamer", "london fog", "lavender earl grey",
        "earl grey", "english breakfast", "ceylon", "green tea", "black tea", "tea", "drip coffee", "coffee",
        "frappuccino", "chocolate milk", "chamomile", "oolong", "herbal tea", "rooibos", "croissant", "muffin",
        "bagel", "scone"],
    # Phrases that contain an item name but are not about the order ("the coffee bar").
    "ignore": ["coffee bar", "coffee shop"],
    "attributes": {"espresso-shots": "shots", "milk-options": "milk", "hot-or-iced": "temperature",
                   "iced-or-hot": "temperature", "caffeine": "caffeine", "size": "size", "name": "name",
                   "order-type": "pickup", "quantity": "quantity"},
    # Checked in this order: a refusal that ends with "anything else?" is still a steer.
    "acts": {
        "steer": [
            r"\b(sorry|unfortunately|afraid)\b.*(\bnot\b|n't\b|\bno\b|\bonly\b|\bcannot\b)",
            # "we don't have", "I can't find", "our menu doesn't offer"
            r"\b(we|i|menu)\b (really |actually )?(don'?t|do not|doesn'?t|does not|can't|cannot|am unable to|"
            r"am not able to)\b[^.?!]*\b(have|carry|offer|help|make|match|find|serve|sell|see|answer|know|"
            r"do that)\b",
            r"\b(not|isn't|aren't) (on|in) (our|the) menu\b", r"\b(doesn't|does not|don't) exist\b",
            r"\bisn't an option\b", r"\bnot something we\b", r"\b(let's|let us) (get back|focus|return)\b",
            r"\bback to (your|the) order\b", r"\bi('m| am) (just|only) (a|an|here)\b", r"\bi can only\b",
            r"\bi didn't find\b", r"\bno (clue|idea)\b", r"\bnot sure (what|about)\b", r"\bbut i can help\b",
            r"\bnothing matches\b", r"\b(aren't|are not|no) (any )?(menu )?items? (available|that match)"],
        "confirm": [
            r"\b(re)?confirm(ation)?\b", r"\bmake sure\b[^.?!]*\border\b", r"\bcorrect\?",
            r"\bis (this|that) everything\b", r"\bverify\b", r"\bready to (send|submit|place)\b",
            r"\bbefore i (send|submit|place)\b",
            r"\b(is|are|does|do|did|was)\b[^.?!]*\b(correct|correctly|right(?! (up|out|away|now))|accurate)\b",
            r"\b(is|does) (that|this|it|everything) (look )?(good|ok|okay|fine|alright)\b",
            r"\bthat looks? good\b", r"\bwhat you (wanted|ordered)\b", r"\bis (this|that) what you want\b",
            r"\bdo i have (that|this|it|your order|everything)\b",
            r"\b(double ?check|check again|confirming)\b",
            r"^(ok,? |okay,? )?how (is|about) (this|that|it|now)\b", r"\b(appear|look)s? to your liking\b",
            r"\bis (this|that) your (full |whole |complete |entire )?order\b",
            r"\b(does|do|did)\b[^.?!]*\blooks? (ok|okay|good|fine)\b", r"\blooks? (right|correct)\b",
            r"\b(check|review|look over|inspect|take a look at)\b[^.?!]*\b(order|screen|details|monitor)\b",
            r"\bis this what you\b", r"\bhere('s| is) your order\b", r"\bto confirm\b",
            r"^so,? (that's|that is|you want|you'd like|one|a|an)\b", r"\byour order (is|was) on\b",
            r"\bshall i (send|place|submit)\b", r"\bhow does (this|that|it|everything) look\b",
            r"\bis this your order\b", r"\bis (that|this) (it|all)\b", r"\bwill (that|this) be (all|it)\b",
            r"\blook (this|it|that) over\b", r"\bmake sure\b[^.?!]*\b(correct|right)\b", r"\bam i right\b"],
        "closing": [
            r"\b(will|'ll|should|is going to|gonna) be (ready|up|out|done|served|available|good to go)\b",
            r"\byou (can|will|'ll) pick (it |them |your \w+ )?up\b",
            r"\bpick (it|them|your \w+) up (at|over|from|shortly|soon|in)\b", r"\benjoy\b",
            r"\bhave a\b[^.?!]*\bday\b", r"\bthanks? (you )?for (your order|ordering|coming|being|visiting)\b",
            r"\b(bye|goodbye|see you)\b", r"\bright (up|out)\b", r"\bready (soon|shortly)\b",
            r"\bi('ll| will) (send|get|work on|have) (it|that|the order|your order|your drink)\b",
            r"\bin (just )?a (few|moment|minute|second|jiffy)\b",
            r"\b(shortly|in no time|momentarily|as quick(ly)? as possible)\b",
            r"\b(get|have) (it|this|that|your \w+|the order)\b[^.?!]*\bready\b", r"^(thank you|thanks)[.!]*$",
            r"\bcoming (right )?(up|out)\b", r"\b(will|'ll) (soon )?be ready\b", r"\bas soon as possible\b",
            r"\byour order (is|has been) (sent|in|placed|submitted|being)\b", r"\bcheck the (coffee )?bar\b",
            r"\bhave (that|these|it|this|them) out\b", r"\bready for pick ?up\b",
            r"\byou('ll| will) find (it|your \w+)\b", r"\bcheck back\b",
            r"\byou can (get|grab|collect) (it|them|your \w+)\b",
            r"\b(will|'ll) (be )?(up|at the (coffee )?bar)\b"],
        "question_start": r"^(what|which|how|would|do|did|could|can|will|shall|may|is|are|any|anything|"
                          r"should|want|(please )?let me know|please (tell|choose|select|pick))\b",
    },
}


def load_lexicon(path: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> Lexicon:
    """The default lexicon, extended by a JSON file and/or a dict (lists are appended, slots added)."""
    data = copy.deepcopy(DEFAULT_LEXICON)
    updates = [json.loads(Path(path).read_text(encoding="utf-8"))] if path else []
    updates += [extra] if extra else []
    for update in updates:
        for slot, spec in update.get("slots", {}).items():
            target = data["slots"].setdefault(slot, {"cues": [], "values": []})
            target["cues"] = target.get("cues", []) + list(spec.get("cues", []))
            target["values"] = target.get("values", []) + list(spec.get("values", []))
            target["generic"] = spec.get("generic", target.get("generic", False))
        data["items"] = data["items"] + list(update.get("items", []))
        data["ignore"] = data["ignore"] + list(update.get("ignore", []))
        data["attributes"].update(update.get("attributes", {}))
        for act, patterns in update.get("acts", {}).items():
            if act == "question_start":
                raise ValueError("lexicon: 'acts.question_start' cannot be extended, only replaced in code")
            data["acts"][act] = data["acts"][act] + list(patterns)
    return Lexicon(data)


def _words(phrases: Iterable[str]) -> re.Pattern[str]:
    """One regex matching any phrase as whole words, longest first so "chai latte" beats "latte"."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(p if "\\" in p or "?" in p or "(" in p else re.escape(p)
                                               for p in ordered) + r")(?![\w-])")


@dataclass(frozen=True)
class Lexicon:
    data: dict[str, Any]

    @cached_property
    def slot_patterns(self) -> list[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None, bool]]:
        """(slot, cue pattern, value pattern, generic) per slot."""
        out = []
        for slot, spec in self.data["slots"].items():
            cues, values = spec.get("cues", []), spec.get("values", [])
            out.append((slot, _words(cues) if cues else None, _words(values) if values else None,
                        bool(spec.get("generic"))))
        return out

    @cached_property
    def items(self) -> re.Pattern[str]:
        return _words(self.data["items"])

    @cached_property
    def ignore(self) -> re.Pattern[str]:
        return _words(self.data["ignore"] or ["\x00"])

    @cached_property
    def values(self) -> re.Pattern[str]:
        return _words(v for spec in self.data["slots"].values() for v in spec.get("values", []))

    @cached_property
    def acts(self) -> dict[str, list[re.Pattern[str]]]:
        return {act: [re.compile(p) for p in self.data["acts"][act]] for act in ("steer", "confirm", "closing")}

    @cached_property
    def question_start(self) -> re.Pattern[str]:
        return re.compile(self.data["acts"]["question_start"])


@dataclass(frozen=True)
class Act:
    """The act of one reply; `slots` in priority order (slots[0] is the one asked about)."""

    act: str
    slots: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, canonical JSON arguments)
    tool_call_from_text: bool = False

    @property
    def slot(self) -> str | None:
        return self.slots[0] if self.slots else None


_TOOL_TAG = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def tool_calls_in_text(text: str) -> list[ToolCall]:
    """Tool calls a model wrote as text: `<tool_call>{...}</tool_call>` blocks or one bare JSON
    object with "name" and "arguments" (or "parameters"). Anything else gives []."""
    blobs = _TOOL_TAG.findall(text) or ([text.strip()] if text.strip().startswith("{") else [])
    calls = []
    for blob in blobs:
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            return []
        args = obj.get("arguments", obj.get("parameters", {})) if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or args is None:
            return []
        calls.append(ToolCall(name=obj["name"], arguments=args if isinstance(args, str) else json.dumps(args)))
    return calls


def _canonical_args(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, ensure_ascii=False)
    except json.JSONDecodeError:
        return arguments  # unparseable arguments only equal themselves


def _as_message(reply: Message | Mapping[str, Any] | str) -> Message:
    if isinstance(reply, Message):
        return reply
    if isinstance(reply, str):
        return Message(role="assistant", content=reply)
    calls = tuple(ToolCall(name=c["function"]["name"], arguments=c["function"].get("arguments") or "{}",
                           id=c.get("id", "")) for c in reply.get("tool_calls") or ())
    return Message(role="assistant", content=reply.get("content") or "", tool_calls=calls)


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()


def _slots(text: str, lexicon: Lexicon) -> tuple[str, ...]:
    """Slots a text refers to, specific ones first. Cues ("what size") are searched in the text
    as is; values ("hot", "oat") with menu item names masked, so that "hot chocolate" is not a
    temperature question."""
    masked = lexicon.items.sub(" ", text)
    found = [(slot, generic) for slot, cues, values, generic in lexicon.slot_patterns
             if (cues and cues.search(text)) or (values and values.search(masked))]
    specific = tuple(slot for slot, generic in found if not generic)
    return specific or tuple(slot for slot, _ in found)


def _question_sentences(text: str, lexicon: Lexicon) -> list[str]:
    sentences = [s.strip() for s in re.findall(r"[^.?!]+[.?!]*", text) if s.strip()]
    return [s for s in sentences if s.endswith("?") or lexicon.question_start.search(s.lstrip(" ,-"))]


def classify(reply: Message | Mapping[str, Any] | str, lexicon: Lexicon | None = None) -> Act:
    """The dialogue act of an assistant reply (a Message, an OpenAI message dict, or text)."""
    lexicon = lexicon or _DEFAULT
    message = _as_message(reply)
    from_text = False
    calls = list(message.tool_calls)
    if not calls and message.content:
        calls, from_text = tool_calls_in_text(message.content), True
    if calls:
        return Act("tool_call", tool_calls=tuple((c.name, _canonical_args(c.arguments)) for c in calls),
                   tool_call_from_text=from_text)
    text = _normalise(message.content)
    if not text:
        return Act("none")
    about_order = lexicon.ignore.sub(" ", text)  # only for mentions: "coffee bar" matters to closing
    mentions = tuple(sorted(set(lexicon.items.findall(about_order))
                            | set(lexicon.values.findall(lexicon.items.sub(" ", about_order)))))
    for act in ("steer", "confirm", "closing"):
        if any(p.search(text) for p in lexicon.acts[act]):
            return Act(act, mentions=mentions)
    questions = _question_sentences(text, lexicon)
    if questions:
        # An item offered without a slot word ("Would you like a mocha?") is a drink question.
        slots = _slots(" ".join(questions), lexicon) or _slots(text, lexicon) or (("drink",) if mentions else ())
        return Act("ask", slots=slots, mentions=mentions)
    return Act("inform", mentions=mentions)


_DEFAULT = load_lexicon()


def missing_slots(context: Sequence[Mapping[str, Any]], lexicon: Lexicon | None = None) -> tuple[str, ...]:
    """Slots the last tool result lists as `unfilled_attributes` (Taskmaster's add_order_item)."""
    lexicon = lexicon or _DEFAULT
    for message in reversed(context):
        if message.get("role") != "tool":
            continue
        try:
            result = json.loads(message.get("content") or "")
        except json.JSONDecodeError:
            return ()
        unfilled = result.get("unfilled_attributes", []) if isinstance(result, dict) else []
        ids = [str(a.get("attribute_id", "")).strip().lower() for a in unfilled if isinstance(a, dict)]
        return tuple(lexicon.data["attributes"].get(i, i) for i in ids)
    return ()


def _loose(arguments: str) -> Any:
    """Arguments with every string value case-folded and whitespace-collapsed ("Latte " == "latte")."""
    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.casefold().split())
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value

    try:
        return norm(json.loads(arguments))
    except json.JSONDecodeError:
        return arguments


@dataclass
class PairScore:
    reference_act: str
    predicted_act: str
    appropriate: bool
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)


def score_pair(prediction: Any, reference: Any, missing: Sequence[str] | None = None,
               lexicon: Lexicon | None = None) -> PairScore:
    """Appropriateness and correctness of one predicted reply against its reference."""
    pred, ref = classify(prediction, lexicon), classify(reference, lexicon)
    appropriate = pred.act == ref.act
    detail: dict[str, Any] = {}
    correct = appropriate
    if ref.act == "ask":
        wanted = tuple(missing) if missing else ((ref.slot,) if ref.slot else ())
        detail = {"asked": pred.slot, "wanted": list(wanted)}
        correct = appropriate and (not wanted or pred.slot in wanted)
    elif ref.act == "confirm":
        absent = sorted(set(ref.mentions) - set(pred.mentions))
        detail = {"missing_mentions": absent}
        correct = appropriate and not absent
    elif ref.act == "tool_call":
        name_ok = [n for n, _ in pred.tool_calls] == [n for n, _ in ref.tool_calls]
        args_ok = name_ok and pred.tool_calls == ref.tool_calls
        loose_ok = name_ok and [_loose(a) for _, a in pred.tool_calls] == [_loose(a) for _, a in ref.tool_calls]
        detail = {"name_correct": name_ok, "args_correct": args_ok, "args_normalised_correct": loose_ok}
        correct = args_ok
    return PairScore(ref.act, pred.act, appropriate, correct, detail)


def _rate(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def score_pairs(predictions: Sequence[Any], references: Sequence[Any],
                missing: Sequence[Sequence[str] | None] | None = None,
                lexicon: Lexicon | None = None) -> dict[str, Any]:
    """Overall and per-act appropriateness/correctness, tool-call accuracies and a confusion
    matrix (rows: reference act, columns: predicted act, over `LABELS`)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if missing is not None and len(missing) != len(references):
        raise ValueError(f"{len(missing)} missing-slot entries but {len(references)} references")
    scores = [score_pair(p, r, missing[i] if missing else None, lexicon)
              for i, (p, r) in enumerate(zip(predictions, references))]
    per_act = {}
    for act in ACTS:
        rows = [s for s in scores if s.reference_act == act]
        per_act[act] = {"n": len(rows), "appropriateness": _rate([s.appropriate for s in rows]),
                        "correctness": _rate([s.correct for s in rows])}
    calls = [s for s in scores if s.reference_act == "tool_call"]
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for s in scores:
        matrix[index[s.reference_act]][index[s.predicted_act]] += 1
    return {
        "n": len(scores),
        "appropriateness": _rate([s.appropriate for s in scores]),
        "correctness": _rate([s.correct for s in scores]),
        "per_act": per_act,
        "tool_call": {"n": len(calls),
                      "name_accuracy": _rate([s.detail.get("name_correct", False) for s in calls]),
                      "args_exact_accuracy": _rate([s.detail.get("args_correct", False) for s in calls]),
                      "args_normalised_accuracy": _rate([s.detail.get("args_normalised_correct", False)
                                                         for s in calls])},
        "predicted_acts": dict(Counter(s.predicted_act for s in scores)),
        "confusion": {"labels": list(LABELS), "rows": "reference", "columns": "prediction", "matrix": matrix},
    }

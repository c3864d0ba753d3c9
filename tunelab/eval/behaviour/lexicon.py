"""The words the behaviour judge knows: slots (cues and values), menu items, act patterns.

Data, not code: another domain extends it with `load_lexicon(path or extra)`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

# Words a reply opens with before it asks ("Okay great, what size?"): a question may follow them.
# Not "thank you": after it comes a request more often than a question ("thank you, may you please wait").
_LEAD_IN = (
    r"(ok|okay|alright|all right|sure|great|perfect|awesome|excellent|wonderful|lovely|cool|fine|got it|"
    r"no problem|of course|certainly|so|now|and|also|oh|hi|hello|hey|yes|yeah|sorry)"
)

# Slots in priority order: when a question mentions several, the first listed is the one asked
# about ("how many shots" is about shots, not quantity). `generic` slots only count when no
# specific slot matched. `attributes` maps API attribute ids (Taskmaster) to slots.
DEFAULT_LEXICON: dict[str, Any] = {
    "slots": {
        "shots": {
            "cues": ["shots?", "espresso shots?", "single or double", "double or single"],
            "values": ["single", "double", "triple", "quadruple", "one shot", "two shots"],
        },
        "size": {
            "cues": ["size", "how big", "ounces?", "oz"],
            "values": ["small", "medium", "large", "extra large", "tall", "grande", "venti", "short"],
        },
        "temperature": {
            "cues": ["hot or iced", "iced or hot", "hot or cold", "temperature"],
            "values": ["hot", "iced", "cold", "warm", "on ice"],
        },
        "milk": {
            "cues": ["milk", "dairy", "creamer", "cream"],
            "values": [
                "whole",
                "2%",
                "non-fat",
                "nonfat",
                "skim",
                "oat",
                "almond",
                "soy",
                "coconut",
                "lactose free",
                "half and half",
            ],
        },
        "caffeine": {"cues": ["decaf", "caffeine", "caffeinated"], "values": ["decaffeinated"]},
        "flavor": {
            "cues": ["flavou?rs?", "flavou?red"],
            "values": [
                "vanilla",
                "caramel",
                "hazelnut",
                "peppermint",
                "pumpkin spice",
                "cinnamon",
                "chocolate sauce",
                "caramel sauce",
                "lavender",
            ],
        },
        "sweetener": {
            "cues": ["sweeteners?", "sugar", "syrups?", "sweet", "sauce", "honey"],
            "values": ["splenda", "equal", "stevia", "raw sugar", "sugar free"],
        },
        "name": {
            "cues": [
                "your name",
                "name for the order",
                "name on the order",
                "under what name",
                "what name",
                "who is (it|this) for",
                "name for",
            ],
            "values": [],
        },
        "pickup": {
            "cues": [
                "pick it up",
                "pickup",
                "pick up time",
                "for here",
                "to go",
                "dine in",
                "what time",
                "when would you",
                "which location",
                "which store",
                "here or",
            ],
            "values": ["togo", "take away", "takeaway"],
        },
        "food": {
            "cues": ["anything to eat", "something to eat", "food", "pastry", "snack"],
            "values": ["croissant", "muffin", "bagel", "scone", "cookie", "sandwich", "cake", "danish"],
        },
        "quantity": {"cues": ["how many", "quantity"], "values": [], "generic": True},
        "drink": {
            "cues": [
                "what drink",
                "which drink",
                "what kind of",
                "what type of",
                "what can i get",
                "what would you like",
                "what can i make",
                "what do you want",
                "like to order",
                "which one",
                "something else",
                "another drink",
                "anything else",
                "what are you in the mood",
                "what will it be",
                "how can i help",
                "something different",
                "get you anything",
                "anything i can get",
                "order anything",
                "repeat your order",
                "which would you like",
                "what you want",
                "drinks?",
                "coffee or tea",
                "anything",
            ],
            # The strict judge (expected.py) asks more of a question about a drink than "anything else?".
            "strict_cues": ["drinks?", "beverages?", "to drink", "coffee or tea"],
            "values": [],
            "generic": True,
        },
    },
    "items": [
        "chai latte",
        "matcha latte",
        "latte",
        "mocha",
        "cappuccino",
        "americano",
        "espresso",
        "macchiato",
        "cortado",
        "hot chocolate",
        "cold brew",
        "flat white",
        "steamer",
        "london fog",
        "lavender earl grey",
        "earl grey",
        "english breakfast",
        "ceylon",
        "green tea",
        "black tea",
        "tea",
        "drip coffee",
        "coffee",
        "frappuccino",
        "chocolate milk",
        "chamomile",
        "oolong",
        "herbal tea",
        "rooibos",
        "croissant",
        "muffin",
        "bagel",
        "scone",
        # the cafe demo's menu (tunelab.data.synth.cafe)
        "blueberry muffin",
        "banana bread",
        "cookie",
        "ham sandwich",
        "veggie wrap",
        "chicken panini",
    ],
    # Phrases that contain an item name but are not about the order ("the coffee bar").
    "ignore": ["coffee bar", "coffee shop"],
    "attributes": {
        "espresso-shots": "shots",
        "milk-options": "milk",
        "hot-or-iced": "temperature",
        "iced-or-hot": "temperature",
        "caffeine": "caffeine",
        "size": "size",
        "name": "name",
        "order-type": "pickup",
        "quantity": "quantity",
    },
    # Checked in this order: a refusal that ends with "anything else?" is still a steer.
    "acts": {
        "steer": [
            r"\b(sorry|unfortunately|afraid)\b.*(\bnot\b|n't\b|\bno\b|\bonly\b|\bcannot\b)",
            # "we don't have", "I can't find", "our menu doesn't offer"
            r"\b(we|i|menu)\b (really |actually )?(don'?t|do not|doesn'?t|does not|can't|cannot|am unable to|"
            r"am not able to)\b[^.?!]*\b(have|carry|offer|help|make|match|find|serve|sell|see|answer|know|"
            r"do that)\b",
            r"\b(not|isn't|aren't) (on|in) (our|the) menu\b",
            r"\b(doesn't|does not|don't) exist\b",
            r"\bisn't an option\b",
            r"\bnot something we\b",
            r"\b(let's|let us) (get back|focus|return)\b",
            r"\bback to (your|the) order\b",
            r"\bi('m| am) (just|only) (a|an|here)\b",
            r"\bi can only\b",
            r"\bi didn't find\b",
            r"\bno (clue|idea)\b",
            r"\bnot sure (what|about)\b",
            r"\bbut i can help\b",
            r"\bnothing matches\b",
            r"\b(aren't|are not|no) (any )?(menu )?items? (available|that match)",
        ],
        "confirm": [
            r"\b(re)?confirm(ation)?\b",
            r"\bmake sure\b[^.?!]*\border\b",
            r"\bcorrect\?",
            r"\bis (this|that) everything\b",
            r"\bverify\b",
            r"\bready to (send|submit|place)\b",
            r"\bbefore i (send|submit|place)\b",
            r"\b(is|are|does|do|did|was)\b[^.?!]*\b(correct|correctly|right(?! (up|out|away|now))|accurate)\b",
            r"\b(is|does) (that|this|it|everything) (look )?(good|ok|okay|fine|alright)\b",
            r"\bthat looks? good\b",
            r"\bwhat you (wanted|ordered)\b",
            r"\bis (this|that) what you want\b",
            r"\bdo i have (that|this|it|your order|everything)\b",
            r"\b(double ?check|check again|confirming)\b",
            r"^(ok,? |okay,? )?how (is|about) (this|that|it|now)\b",
            r"\b(appear|look)s? to your liking\b",
            r"\bis (this|that) your (full |whole |complete |entire )?order\b",
            r"\b(does|do|did)\b[^.?!]*\blooks? (ok|okay|good|fine)\b",
            r"\blooks? (right|correct)\b",
            # not a look at the menu ("take a look at our menu for more details" informs)
            r"\b(check|review|look over|inspect|take a look at)\b(?![^.?!]*\bmenu\b)[^.?!]*\b(order|screen|details|monitor)\b",
            r"\bis this what you\b",
            r"\bhere('s| is) your order\b",
            r"\bto confirm\b",
            r"^so,? (that's|that is|you want|you'd like|one|a|an)\b",
            r"\byour order (is|was) on\b",
            r"\bshall i (send|place|submit)\b",
            r"\bhow does (this|that|it|everything) look\b",
            r"\bis this your order\b",
            r"\bis (that|this) (it|all)\b",
            r"\bwill (that|this) be (all|it)\b",
            r"\blook (this|it|that) over\b",
            r"\bmake sure\b[^.?!]*\b(correct|right)\b",
            r"\bam i right\b",
        ],
        "closing": [
            r"\b(will|'ll|should|is going to|gonna) be (ready|up|out|done|served|available|good to go)\b",
            r"\byou (can|will|'ll) pick (it |them |your \w+ )?up\b",
            r"\bpick (it|them|your \w+) up (at|over|from|shortly|soon|in)\b",
            r"\benjoy\b",
            r"\bhave a\b[^.?!]*\bday\b",
            r"\bthanks? (you )?for (your order|ordering|coming|being|visiting)\b",
            r"\b(bye|goodbye|see you)\b",
            r"\bright (up|out)\b",
            r"\bready (soon|shortly)\b",
            r"\bi('ll| will) (send|get|work on|have) (it|that|the order|your order|your drink)\b",
            r"\bin (just )?a (few|moment|minute|second|jiffy)\b",
            r"\b(shortly|in no time|momentarily|as quick(ly)? as possible)\b",
            r"\b(get|have) (it|this|that|your \w+|the order)\b[^.?!]*\bready\b",
            r"^(thank you|thanks)[.!]*$",
            r"\bcoming (right )?(up|out)\b",
            r"\b(will|'ll) (soon )?be ready\b",
            r"\bas soon as possible\b",
            r"\byour order (is|has been) (sent|in|placed|submitted|being)\b",
            r"\bcheck the (coffee )?bar\b",
            r"\bhave (that|these|it|this|them) out\b",
            r"\bready for pick ?up\b",
            r"\byou('ll| will) find (it|your \w+)\b",
            r"\bcheck back\b",
            r"\byou can (get|grab|collect) (it|them|your \w+)\b",
            r"\b(will|'ll) (be )?(up|at the (coffee )?bar)\b",
        ],
        # after a lead-in and its comma too ("ok, is this correct", with or without its '?')
        "question_start": rf"^({_LEAD_IN}(,? {_LEAD_IN})*, )?(what|which|how|would|do|did|could|can|will|shall|"
        r"may|is|are|any|anything|should|want|(please )?let me know|please (tell|choose|select|pick))\b",
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
            if "strict_cues" in spec:
                target["strict_cues"] = target.get("strict_cues", []) + list(spec["strict_cues"])
        data["items"] = data["items"] + list(update.get("items", []))
        data["ignore"] = data["ignore"] + list(update.get("ignore", []))
        data["attributes"].update(update.get("attributes", {}))
        for act, patterns in update.get("acts", {}).items():
            if act == "question_start":
                raise ValueError("lexicon: 'acts.question_start' cannot be extended, only replaced in code")
            data["acts"][act] = data["acts"][act] + list(patterns)
    return Lexicon(data)


def _words(phrases: Iterable[str], plurals: bool = False) -> re.Pattern[str]:
    """One regex matching any phrase as whole words, longest first so "chai latte" beats "latte";
    with `plurals`, also "lattes" / "sandwiches" (group 1 is the phrase as listed)."""
    ordered = sorted(set(phrases), key=len, reverse=True)
    suffix = "(?:e?s)?" if plurals else ""
    return re.compile(
        r"(?<![\w-])("
        + "|".join(p if "\\" in p or "?" in p or "(" in p else re.escape(p) for p in ordered)
        + r")"
        + suffix
        + r"(?![\w-])"
    )


@dataclass(frozen=True)
class Lexicon:
    data: dict[str, Any]

    @cached_property
    def slot_patterns(self) -> list[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None, bool]]:
        """(slot, cue pattern, value pattern, generic) per slot."""
        out = []
        for slot, spec in self.data["slots"].items():
            cues, values = spec.get("cues", []), spec.get("values", [])
            out.append(
                (slot, _words(cues) if cues else None, _words(values) if values else None, bool(spec.get("generic")))
            )
        return out

    @cached_property
    def items(self) -> re.Pattern[str]:
        return _words(self.data["items"], plurals=True)

    @cached_property
    def strict_slot_patterns(self) -> list[tuple[str, re.Pattern[str] | None, re.Pattern[str] | None]]:
        """(slot, cue pattern, value pattern) for the strict judge: a generic slot counts only
        through its `strict_cues` when it has them ("anything else?" is not a drink question)."""
        out = []
        for slot, spec in self.data["slots"].items():
            cues = spec.get("strict_cues", spec.get("cues", [])) if spec.get("generic") else spec.get("cues", [])
            values = spec.get("values", [])
            out.append((slot, _words(cues) if cues else None, _words(values) if values else None))
        return out

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


DEFAULT = load_lexicon()

"""A seeded generator of cafe-ordering dialogues that records what every assistant turn must do.

Customers order from a small menu over several turns. Often the order leaves out something it
needs: a drink's size, hot or iced, how many of a food, the drink of a meal deal — sometimes two
such details, and sometimes the drink named for a meal deal lacks its own size or temperature,
so a second question follows the first answer. The right reply then asks about exactly one
missing detail of the item that misses it; when nothing is missing, it confirms the whole order
with every option the customer gave.

Each assistant turn's expectation is stored in the conversation's meta (`turns`: {message index:
{...}}), in the form `tunelab.eval.behaviour.judge_expected` reads:
  ask:     {"act": "ask", "slot", "item", "missing": [{"item", "slot"}], "candidates": {slot: [items]},
            "order": [...as for confirm, with null for what is missing]}
  confirm: {"act": "confirm", "order": [{"name", "size", "temperature", "quantity", "deal"}], "items"}
  greet / close: {"act": "greet"} / {"act": "close"} (not judged)
The judge lives in tunelab.eval.behaviour (whose default lexicon knows this menu's items); this
module only generates.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunelab.messages import Conversation, Message

# drink -> temperatures it comes in (one entry: that temperature is implied by the name)
DRINKS = {
    "latte": ("hot", "iced"),
    "mocha": ("hot", "iced"),
    "americano": ("hot", "iced"),
    "chai latte": ("hot", "iced"),
    "cappuccino": ("hot",),
    "flat white": ("hot",),
    "hot chocolate": ("hot",),
    "cold brew": ("iced",),
}
SIZES = ("small", "medium", "large")
FOODS = ("croissant", "blueberry muffin", "bagel", "banana bread", "cookie")
DEAL_MAINS = ("ham sandwich", "veggie wrap", "chicken panini")
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
SLOTS = ("size", "temperature", "quantity", "drink")

SYSTEM_PROMPT = (
    "You take orders at the Bean Counter cafe. If an order is missing a size, hot or iced, a quantity, or the "
    "drink of a meal deal, ask about that one detail for that item. When nothing is missing, repeat the whole "
    "order back with every option to confirm it."
)
# The same with the menu spelled out (+~140 tokens per dialogue); a lever measured in docs/cafe.md.
MENU_PROMPT = (
    "You take orders at the Bean Counter cafe. Menu: drinks come small, medium or large: latte, mocha, "
    "americano and chai latte (hot or iced), cappuccino, flat white and hot chocolate (hot only), cold brew "
    "(iced only). Food: croissant, blueberry muffin, bagel, banana bread, cookie (ask how many if unsaid). "
    "Meal deals (ham sandwich, veggie wrap, chicken panini) come with a drink. If an order is missing a "
    "size, hot or iced, a quantity, or the meal deal's drink, ask about that one detail for that item. When "
    "nothing is missing, repeat the whole order back with every option to confirm it."
)


def plural(name: str) -> str:
    return name if name.endswith("bread") else name + "s"


@dataclass
class Item:
    name: str
    kind: str = "drink"  # drink | food | deal
    size: str | None = None
    temperature: str | None = None
    quantity: int | None = 1
    deal_drink: Item | None = None

    def own_missing(self) -> list[str]:
        """Details this item (not its deal drink) still needs, in the order staff ask them."""
        if self.kind == "drink":
            return [s for s, v in (("size", self.size), ("temperature", self.temperature)) if v is None]
        if self.kind == "food":
            return ["quantity"] if self.quantity is None else []
        return ["drink"] if self.deal_drink is None else []

    def parts(self) -> list[Item]:
        return [self] + ([self.deal_drink] if self.deal_drink else [])

    def spoken(self, rng: random.Random, staff: bool = False) -> str:
        """How the customer says it (only what they gave), or how staff confirm it (staff=True:
        every option, the implied temperature of a one-temperature drink left out)."""
        if self.kind == "deal":
            drink = f" with {self.deal_drink.spoken(rng, staff)}" if self.deal_drink else ""
            return f"a {self.name} meal deal{drink}"
        if self.kind == "food":
            if self.quantity is None:
                return "some " + plural(self.name)
            return f"{NUMBERS[self.quantity]} {plural(self.name)}" if self.quantity > 1 else article(self.name)
        words = [self.size] if self.size else []
        implied = len(DRINKS[self.name]) == 1
        if self.temperature and not implied:
            words.append(self.temperature)
        if not staff and not self.size and not self.temperature and rng.random() < 0.3:
            return "just " + article(self.name)
        return article(" ".join(words + [self.name]))


def article(text: str) -> str:
    return ("an " if text[0] in "aeiou" else "a ") + text


def _drink(rng: random.Random, leave_out: tuple[str, ...] = ()) -> Item:
    name = (
        rng.choice([d for d, t in DRINKS.items() if len(t) > 1])
        if "temperature" in leave_out
        else rng.choice(list(DRINKS))
    )
    temps = DRINKS[name]
    item = Item(
        name=name,
        size=None if "size" in leave_out else rng.choice(SIZES),
        temperature=None if "temperature" in leave_out else rng.choice(temps),
    )
    if len(temps) == 1:
        item.temperature = temps[0]  # implied by the name, never missing
    return item


def _missing_item(rng: random.Random, slot: str) -> Item:
    if slot in ("size", "temperature"):
        return _drink(rng, (slot,))
    if slot == "both":
        return _drink(rng, ("size", "temperature"))
    if slot == "quantity":
        return Item(name=rng.choice(FOODS), kind="food", quantity=None)
    # a meal deal without its drink; half the time the drink the customer then names lacks a detail
    return Item(name=rng.choice(DEAL_MAINS), kind="deal")


# How many details are missing at the start: 0 (confirm straight away), 1 or 2 (two items, or both
# details of one drink). Weighted towards asks: asking is what the base model never does.
SCENARIOS = (
    (),
    ("size",),
    ("temperature",),
    ("quantity",),
    ("drink",),
    ("both",),
    ("size", "quantity"),
    ("temperature", "drink"),
    ("quantity", "temperature"),
    ("size", "drink"),
)
SCENARIO_WEIGHTS = (30, 12, 12, 10, 12, 8, 4, 4, 4, 4)


def _order(rng: random.Random, missing: tuple[str, ...]) -> list[Item]:
    """One to three items, no two with the same name (a deal's drink included: "a latte and a
    latte" has no single right read-back); the ones built from `missing` lack those details."""
    items: list[Item] = []

    def add(make) -> None:
        for _ in range(20):
            item = make()
            names = [p.name for i in items for p in i.parts()]
            if not any(p.name in names for p in item.parts()):
                items.append(item)
                return

    for slot in missing:
        add(lambda slot=slot: _missing_item(rng, slot))
    while len(items) < 1 or (len(items) < 3 and rng.random() < 0.45):
        kind = rng.choice(("food", "drink", "drink", "deal")) if len(items) < 2 else rng.choice(("food", "drink"))
        if kind == "food":
            add(lambda: Item(name=rng.choice(FOODS), kind="food", quantity=rng.choice((1, 1, 2, 3))))
        elif kind == "drink":
            add(lambda: _drink(rng))
        else:
            add(lambda: Item(name=rng.choice(DEAL_MAINS), kind="deal", deal_drink=_drink(rng)))
    rng.shuffle(items)
    return items


GREETINGS = ("Hi!", "Hello.", "Hey there.", "Good morning!", "Hi there,", "Morning!", "")
WELCOMES = (
    "Hi! What can I get for you today?",
    "Hello! What would you like?",
    "Welcome to Bean Counter! What can I get you?",
)
ORDER_OPENERS = (
    "Can I get {o}?",
    "I'd like {o}, please.",
    "Could I have {o}?",
    "{o}, please.",
    "I'll have {o}.",
    "Let me get {o}.",
    "I want {o}.",
    "Can I please order {o}?",
    "I'm after {o}.",
)
# The first phrasing of each act is the house style (see `dialogue`): every reply that asks or
# confirms first reads the order back as it stands ("Got it: a latte and two cookies."), then
# either asks ("And what size…") or asks to confirm ("Is that right?"). Reading back first puts
# the missing detail right before the decision ("a latte" with no size -> ask about its size):
# without it the model had to decide at its first token, and after 100 steps asked 0-16% of the
# time (docs/cafe.md).
ASK = {
    "size": (
        "And what size would you like for the {n}: small, medium or large?",
        "What size {n} would you like?",
        "Which size for the {n}, small, medium or large?",
        "Sure! What size should the {n} be?",
    ),
    "temperature": (
        "And would you like the {n} hot or iced?",
        "Hot or iced for the {n}?",
        "Should the {n} be hot or iced?",
        "Do you want your {n} hot or iced?",
    ),
    "quantity": (
        "And how many {p} would you like?",
        "How many {p}?",
        "How many {p} should I add?",
        "How many {p} can I get you?",
    ),
    "drink": (
        "And which drink would you like with the {n} meal deal?",
        "What drink would you like with the {n} meal deal?",
        "The {n} meal deal comes with a drink. Which drink would you like?",
        "What would you like to drink with the {n}?",
    ),
}
CONFIRM = (
    "Got it: {o}. Is that right?",
    "So that's {o}. Is that right?",
    "Let me confirm: {o}. Is that correct?",
    "Great, that's {o}. Shall I place the order?",
    "Okay, {o}. Is that everything?",
    "To confirm, you'd like {o}. Is that right?",
)
CLOSE = (
    "Thank you! Your order will be ready shortly.",
    "Great, your order is in. See you at the counter!",
    "Perfect, it will be ready in a few minutes. Thanks!",
)
YES = ("Yes, that's right.", "Yep, thanks.", "That's all, thanks!", "Correct.", "Yes please.")


def join_items(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def read_back_to_gap(rng: random.Random, items: list[Item]) -> str:
    """Staff read the order back item by item and stop at the first one that misses a detail
    ("a bagel, a large americano" when the americano lacks hot/iced and a cold brew follows).

    So every choice the reply makes is about the item it has just said: go on after a complete
    one, stop and ask after one with a gap. With the whole order read back, the choice after
    the last item depended on every item, and tuned models confirmed multi-item orders with a
    gap anywhere but last (docs/cafe.md). "and" comes before the order's last item, as in the
    confirmation, whether or not the read-back reaches it.
    """
    said = []
    for item in items:
        said.append(item.spoken(rng, staff=True))
        if any(part.own_missing() for part in item.parts()):
            break
    return join_items(said) if len(said) == len(items) else ", ".join(said)


def _answer(rng: random.Random, item: Item, slot: str, taken: set[str] = frozenset()) -> str:
    """The customer fills in the slot (and the item is updated); a named deal drink may lack details."""
    if slot == "size":
        item.size = rng.choice(SIZES)
        text = rng.choice(("{v}, please.", "Make it {v}.", "A {v} one.", "{v}", "{v} is fine."))
        return text.format(v=item.size).capitalize()
    if slot == "temperature":
        item.temperature = rng.choice(DRINKS[item.name])
        return (
            rng.choice(("{v}, please.", "{v}.", "I'd like it {v}.", "{v} would be great."))
            .format(v=item.temperature)
            .capitalize()
        )
    if slot == "quantity":
        item.quantity = rng.choice((1, 2, 3, 4))
        return (
            rng.choice(("{v}, please.", "Just {v}.", "{v} of them.", "{v}."))
            .format(v=NUMBERS[item.quantity])
            .capitalize()
        )
    leave_out = rng.choice(((), (), ("size",), ("temperature",)))
    drink = _drink(rng, leave_out)
    for _ in range(20):
        if drink.name not in taken:
            break
        drink = _drink(rng, leave_out)
    item.deal_drink = drink
    text = rng.choice(("{v}, please.", "I'll take {v}.", "{v}.", "Hmm, {v}."))
    return text.format(v=drink.spoken(rng)).capitalize()


def _missing_now(items: list[Item]) -> list[tuple[Item, str]]:
    return [(part, slot) for item in items for part in item.parts() for slot in part.own_missing()]


def _candidates(items: list[Item], slot: str) -> list[str]:
    """Items of the order the slot applies to: the ones a question about it could be about."""
    parts = [p for i in items for p in i.parts()]
    if slot == "size":
        return [p.name for p in parts if p.kind == "drink"]
    if slot == "temperature":
        return [p.name for p in parts if p.kind == "drink" and len(DRINKS[p.name]) > 1]
    return [p.name for p in parts if p.kind == ("food" if slot == "quantity" else "deal")]


def order_record(items: list[Item]) -> list[dict[str, Any]]:
    """Every item (a deal's drink as its own entry) with the options the customer gave."""
    out = []
    for part in (p for i in items for p in i.parts()):
        out.append(
            {
                "name": part.name,
                "kind": part.kind,
                "size": part.size,
                "quantity": part.quantity,
                "temperature": part.temperature,
                "implied_temperature": part.kind == "drink" and len(DRINKS[part.name]) == 1,
            }
        )
    return out


@dataclass
class Dialogue:
    messages: list[Message] = field(default_factory=list)
    turns: dict[int, dict] = field(default_factory=dict)

    def say(self, role: str, text: str, expect: dict | None = None) -> None:
        if expect is not None:
            self.turns[len(self.messages)] = expect
        self.messages.append(Message(role, text))


def _open(rng: random.Random, d: Dialogue, items: list[Item]) -> Callable[[Dialogue, str], None]:
    """The customer's opening turn(s) in `d`; returns how to say the same opening with another
    order text (for a twin dialogue: the same words with every detail given)."""
    template = rng.choice(ORDER_OPENERS)
    order_text = join_items([i.spoken(rng) for i in items])
    if rng.random() < 0.2:
        greeting, welcome = rng.choice(GREETINGS[:-1]), rng.choice(WELCOMES)
    else:
        greeting, welcome = rng.choice(GREETINGS), None

    def say_opening(dialogue: Dialogue, text: str) -> None:
        opener = template.format(o=text)
        opener = opener[0].upper() + opener[1:]
        if welcome:
            dialogue.say("user", greeting)
            dialogue.say("assistant", welcome, {"act": "greet"})
            dialogue.say("user", opener)
            return
        if greeting.endswith(","):
            opener = opener[0].lower() + opener[1:]
        dialogue.say("user", (greeting + " " + opener).strip())

    say_opening(d, order_text)
    return say_opening


def dialogue(
    rng: random.Random,
    index: int,
    system_prompt: str | None = SYSTEM_PROMPT,
    prefix: str = "cafe",
    varied_replies: bool = False,
    twins: bool = False,
) -> list[Conversation]:
    """One dialogue, and with `twins` its twin when it asks (see `generate`). The customer's words
    vary; the assistant's keep one house phrasing per act and slot unless `varied_replies`
    (measured in docs/cafe.md: with greedy decoding, one phrasing per act makes "ask or confirm?"
    a single choice instead of one split over many openers)."""
    pick = rng.choice if varied_replies else (lambda options: options[0])
    # With twins every complete order is some asking dialogue's twin, so none is drawn as such.
    missing = rng.choices(SCENARIOS, weights=(0, *SCENARIO_WEIGHTS[1:]) if twins else SCENARIO_WEIGHTS)[0]
    items = _order(rng, missing)
    d = Dialogue()
    if system_prompt:
        d.say("system", system_prompt)
    say_opening = _open(rng, d, items)
    asked = bool(_missing_now(items))
    while pending := _missing_now(items):
        target, slot = pending[0]
        name = target.name
        expect = {
            "act": "ask",
            "slot": slot,
            "item": name,
            "missing": [{"item": p.name, "slot": s} for p, s in pending],
            "candidates": {s: _candidates(items, s) for s in sorted({s for _, s in pending})},
            "order": order_record(items),
        }
        question = pick(ASK[slot]).format(n=name, p=plural(name))
        if not varied_replies:  # the house style reads the order back, up to the first gap, before asking
            question = f"Got it: {read_back_to_gap(rng, items)}. {question}"
        d.say("assistant", question, expect)
        d.say("user", _answer(rng, target, slot, {p.name for i in items for p in i.parts()}))
    order = join_items([i.spoken(rng, staff=True) for i in items])
    confirm = (
        pick(CONFIRM).format(o=order),
        {"act": "confirm", "order": order_record(items), "items": [p["name"] for p in order_record(items)]},
    )
    d.say("assistant", *confirm)
    if rng.random() < 0.4:
        d.say("user", rng.choice(YES))
        d.say("assistant", pick(CLOSE), {"act": "close"})
    convs = [
        Conversation(
            id=f"{prefix}-{index:05d}",
            messages=tuple(d.messages),
            meta={"turns": {str(k): v for k, v in d.turns.items()}},
        )
    ]
    if twins and asked:
        twin = Dialogue()
        if system_prompt:
            twin.say("system", system_prompt)
        # Every detail is given now, so spoken() draws nothing: the main stream stays as without twins.
        say_opening(twin, join_items([i.spoken(rng) for i in items]))
        twin.say("assistant", *confirm)
        convs.append(
            Conversation(
                id=f"{prefix}-{index:05d}-twin",
                messages=tuple(twin.messages),
                meta={"turns": {str(k): v for k, v in twin.turns.items()}},
            )
        )
    return convs


def generate(
    n: int,
    seed: int = 0,
    system_prompt: str | None = SYSTEM_PROMPT,
    prefix: str = "cafe",
    varied_replies: bool = False,
    twins: bool = False,
) -> list[Conversation]:
    """`n` dialogues from one seeded generator; ids are `{prefix}-{index}` so two seeds' sets can share a file.

    `twins`: after every dialogue that asks, its twin: the same opening words with every detail
    the customer gave later already in them, answered by the same confirmation. The pair differs
    only in the details, so what decides ask-or-confirm is the one thing that differs (a
    counterfactual pair; measured in docs/cafe.md). Complete orders then come only as twins, and
    `n` counts dialogues before twins.
    """
    rng = random.Random(seed)
    return [conv for i in range(n) for conv in dialogue(rng, i, system_prompt, prefix, varied_replies, twins)]

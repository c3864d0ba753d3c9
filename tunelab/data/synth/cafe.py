"""A seeded generator of cafe-ordering dialogues, and the demo's behaviour check.

Customers order from a small menu over several turns. In some dialogues the first order leaves
out something the order needs: a size, hot or iced, how many, or the drink of a meal deal. The
right assistant reply then asks about exactly that; when nothing is missing it confirms the
order. Each assistant turn's expected behaviour is stored in the conversation's meta
(`turns`: {message index: {"act": "ask"|"confirm"|"greet"|"close", "slot", "items"}}), so
replies can be scored by what they do rather than by their words.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from tunelab.types import Conversation, Message

SYSTEM_PROMPT = (
    "You take orders at the Bean Counter cafe. If an order is missing a size, hot or iced, "
    "a quantity, or the drink of a meal deal, ask for it. When the order is complete, repeat it back to confirm."
)

# drink -> temperatures it comes in
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
# What a reply must mention to count as asking about a slot.
SLOT_WORDS = {
    "size": ("size", "small", "medium", "large"),
    "temperature": ("hot", "iced", "cold"),
    "quantity": ("how many",),
    "drink": ("drink",),
}


@dataclass
class Item:
    name: str
    size: str | None = None
    temperature: str | None = None
    quantity: int | None = 1
    deal_drink: "Item | None" = None
    kind: str = "drink"  # drink | food | deal

    def missing(self) -> str | None:
        if self.kind == "drink":
            if self.size is None:
                return "size"
            if self.temperature is None:
                return "temperature"
        if self.kind == "food" and self.quantity is None:
            return "quantity"
        if self.kind == "deal":
            if self.deal_drink is None:
                return "drink"
            return self.deal_drink.missing()
        return None

    def spoken(self, rng: random.Random, full: bool = True) -> str:
        """How a customer says it (possibly leaving out details) or how staff confirm it (full)."""
        if self.kind == "deal":
            drink = f" with a {self.deal_drink.spoken(rng, full)}" if self.deal_drink else ""
            return f"{self.name} meal deal{drink}"
        words = []
        if self.size:
            words.append(self.size)
        if self.temperature and (full or len(DRINKS.get(self.name, ())) > 1):
            if not (self.temperature == "hot" and self.name == "hot chocolate"):
                words.append(self.temperature)
        words.append(self.name)
        text = " ".join(words)
        if self.kind == "food":
            if self.quantity is None:
                return "some " + plural(self.name)
            if self.quantity > 1:
                return f"{NUMBERS[self.quantity]} {plural(self.name)}"
        return ("an " if text[0] in "aeiou" else "a ") + text


def plural(name: str) -> str:
    return name if name.endswith("bread") else name + "s"


def _drink(rng: random.Random, leave_out: str | None) -> Item:
    name = rng.choice(list(DRINKS))
    temps = DRINKS[name]
    item = Item(name=name, size=rng.choice(SIZES), temperature=rng.choice(temps))
    if leave_out == "size":
        item.size = None
    if leave_out == "temperature":
        item.temperature = None
    return item


def _order(rng: random.Random, missing: str | None) -> list[Item]:
    """One to three items; if `missing` is set, exactly one item lacks that slot."""
    items: list[Item] = []
    if missing == "temperature":
        name = rng.choice([d for d, t in DRINKS.items() if len(t) > 1])
        items.append(Item(name=name, size=rng.choice(SIZES), temperature=None))
    elif missing == "size":
        items.append(_drink(rng, "size"))
        if len(DRINKS[items[0].name]) == 1:
            items[0].temperature = DRINKS[items[0].name][0]
    elif missing == "quantity":
        items.append(Item(name=rng.choice(FOODS), kind="food", quantity=None))
    elif missing == "drink":
        items.append(Item(name=rng.choice(DEAL_MAINS), kind="deal"))
    if not items:
        items.append(_drink(rng, None))
    for _ in range(rng.choice((0, 0, 1, 1, 2))):
        if rng.random() < 0.5:
            items.append(Item(name=rng.choice(FOODS), kind="food", quantity=rng.choice((1, 1, 2, 3))))
        else:
            items.append(_drink(rng, None))
    rng.shuffle(items)
    return items


GREETINGS = ("Hi!", "Hello.", "Hey there.", "Good morning!", "Hi there,", "Morning!", "")
ORDER_OPENERS = ("Can I get {o}?", "I'd like {o}, please.", "Could I have {o}?", "{o}, please.", "I'll have {o}.", "Let me get {o}.", "I want {o}.")
ASK = {
    "size": ("What size would you like for the {n}: small, medium or large?", "Sure! What size {n} would you like?", "Which size for the {n}, small, medium or large?"),
    "temperature": ("Would you like the {n} hot or iced?", "Sure, hot or iced for the {n}?", "Should the {n} be hot or iced?"),
    "quantity": ("How many {p} would you like?", "Sure, how many {p}?", "How many {p} should I add?"),
    "drink": ("Which drink would you like with your meal deal?", "What drink would you like with the {n} meal deal?", "The meal deal comes with a drink. Which drink would you like?"),
}
CONFIRM = ("So that's {o}. Is that right?", "Let me confirm: {o}. Is that correct?", "Great, that's {o}. Shall I place the order?", "Okay, {o}. Is that everything?")
CLOSE = ("Thank you! Your order will be ready shortly.", "Great, your order is in. See you at the counter!", "Perfect, it will be ready in a few minutes. Thanks!")
YES = ("Yes, that's right.", "Yep, thanks.", "That's all, thanks!", "Correct.", "Yes please.")


def join_items(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _answer(rng: random.Random, item: Item, slot: str) -> str:
    """The customer fills in the slot (and the item is updated)."""
    if slot == "size":
        item.size = rng.choice(SIZES)
        return rng.choice(("{v}, please.", "Make it {v}.", "A {v} one.", "{v}")).format(v=item.size).capitalize()
    if slot == "temperature":
        item.temperature = rng.choice(DRINKS[item.name])
        return rng.choice(("{v}, please.", "{v}.", "I'd like it {v}.")).format(v=item.temperature).capitalize()
    if slot == "quantity":
        item.quantity = rng.choice((1, 2, 3, 4))
        return rng.choice(("{v}, please.", "Just {v}.", "{v} of them.")).format(v=NUMBERS[item.quantity]).capitalize()
    drink = _drink(rng, None)
    item.deal_drink = drink
    return rng.choice(("{v}, please.", "I'll take {v}.", "{v}.")).format(v=drink.spoken(rng)).capitalize()


@dataclass
class Dialogue:
    messages: list[Message] = field(default_factory=list)
    turns: dict[int, dict] = field(default_factory=dict)

    def say(self, role: str, text: str, expect: dict | None = None) -> None:
        if expect is not None:
            self.turns[len(self.messages)] = expect
        self.messages.append(Message(role, text))


def dialogue(rng: random.Random, index: int, system_prompt: str | None = SYSTEM_PROMPT) -> Conversation:
    missing = rng.choice(SLOTS) if rng.random() < 0.6 else None
    items = _order(rng, missing)
    d = Dialogue()
    if system_prompt:
        d.say("system", system_prompt)
    opener = rng.choice(ORDER_OPENERS).format(o=join_items([i.spoken(rng, full=False) for i in items]))
    opener = opener[0].upper() + opener[1:]
    if rng.random() < 0.25:
        d.say("user", rng.choice(GREETINGS[:-1]))
        d.say("assistant", rng.choice(("Hi! What can I get for you today?", "Hello! What would you like?", "Welcome to Bean Counter! What can I get you?")), {"act": "greet"})
        d.say("user", opener)
    else:
        greeting = rng.choice(GREETINGS)
        if greeting.endswith(","):
            opener = opener[0].lower() + opener[1:]
        d.say("user", (greeting + " " + opener).strip())
    while (slot := next((i.missing() for i in items if i.missing()), None)) is not None:
        item = next(i for i in items if i.missing())
        target = item.deal_drink if item.kind == "deal" and item.deal_drink else item
        text = rng.choice(ASK[slot]).format(n=target.name, p=plural(target.name))
        d.say("assistant", text, {"act": "ask", "slot": slot})
        d.say("user", _answer(rng, target, slot))
    order = join_items([i.spoken(rng, full=True) for i in items])
    d.say("assistant", rng.choice(CONFIRM).format(o=order), {"act": "confirm", "items": item_names(items)})
    if rng.random() < 0.5:
        d.say("user", rng.choice(YES))
        d.say("assistant", rng.choice(CLOSE), {"act": "close"})
    return Conversation(id=f"cafe-{index:05d}", messages=tuple(d.messages), meta={"turns": {str(k): v for k, v in d.turns.items()}})


def item_names(items: list[Item]) -> list[str]:
    names = []
    for i in items:
        names.append(i.name)
        if i.deal_drink:
            names.append(i.deal_drink.name)
    return names


def generate(n: int, seed: int = 0, system_prompt: str | None = SYSTEM_PROMPT) -> list[Conversation]:
    rng = random.Random(seed)
    return [dialogue(rng, i, system_prompt) for i in range(n)]


def judge_reply(reply: str, expect: dict) -> bool:
    """Did the reply do the right thing? ask: a question naming the missing slot; confirm: names every item."""
    text = reply.lower()
    if expect["act"] == "ask":
        asks = "?" in text
        return asks and any(re.search(rf"\b{re.escape(w)}\b", text) for w in SLOT_WORDS[expect["slot"]])
    if expect["act"] == "confirm":
        names_all = all(name in text for name in expect["items"])
        asks_slot = any(w in text for w in ("what size", "hot or iced", "how many", "which drink"))
        return names_all and not asks_slot
    return True

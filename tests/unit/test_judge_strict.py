"""The strict judge (`tunelab.eval.behaviour.judge_expected`) on its hard cases, one test each,
and the cafe generator's records that it reads."""

from __future__ import annotations

import json

import pytest

from tunelab.data.synth import cafe
from tunelab.eval.behaviour import DEFAULT_LEXICON, judge_expected, parse_order, score_pair


def drink(name: str, size: str | None, temperature: str | None) -> dict:
    implied = len(cafe.DRINKS[name]) == 1
    return {
        "name": name,
        "kind": "drink",
        "size": size,
        "quantity": 1,
        "temperature": cafe.DRINKS[name][0] if implied else temperature,
        "implied_temperature": implied,
    }


def food(name: str, quantity: int | None) -> dict:
    return {
        "name": name,
        "kind": "food",
        "size": None,
        "quantity": quantity,
        "temperature": None,
        "implied_temperature": False,
    }


def deal(name: str) -> dict:
    return {
        "name": name,
        "kind": "deal",
        "size": None,
        "quantity": 1,
        "temperature": None,
        "implied_temperature": False,
    }


def ask(order: list[dict], missing: list[tuple[str, str]]) -> dict:
    slots = {s for _, s in missing}
    applies = {
        "size": lambda e: e["kind"] == "drink",
        "temperature": lambda e: e["kind"] == "drink" and not e["implied_temperature"],
        "quantity": lambda e: e["kind"] == "food",
        "drink": lambda e: e["kind"] == "deal",
    }
    return {
        "act": "ask",
        "slot": missing[0][1],
        "item": missing[0][0],
        "missing": [{"item": i, "slot": s} for i, s in missing],
        "candidates": {s: [e["name"] for e in order if applies[s](e)] for s in slots},
        "order": order,
    }


# Reported cases: a confirmation that contains a slot word is not an ask.
AMERICANO_NO_TEMP = ask(
    [food("cookie", 1), drink("cappuccino", "medium", None), drink("americano", "medium", None)],
    [("americano", "temperature")],
)
LATTE_NO_SIZE = ask([drink("latte", None, "iced"), drink("mocha", "large", "hot")], [("latte", "size")])
COOKIES_NO_QTY = ask([food("cookie", None), drink("flat white", "small", None)], [("cookie", "quantity")])
DEAL_NO_DRINK = ask([deal("ham sandwich"), food("bagel", 1)], [("ham sandwich", "drink")])
DEAL_DRINK_NO_SIZE = ask([deal("veggie wrap"), drink("latte", None, "hot")], [("latte", "size")])


@pytest.mark.parametrize(
    "reply,expect,right",
    [
        (
            "Let me confirm: a cookie, a medium hot cappuccino and a medium americano. Is that correct?",
            AMERICANO_NO_TEMP,
            False,
        ),
        ("Okay, a large iced chai latte, two cookies and a hot flat white. Is that everything?", COOKIES_NO_QTY, False),
        ("Would you like the americano hot or iced?", AMERICANO_NO_TEMP, True),
        ("Hot or iced?", AMERICANO_NO_TEMP, True),  # the americano is the only drink that can be either
        ("Would you like the cappuccino hot or iced?", AMERICANO_NO_TEMP, False),  # the wrong item
        ("What size would you like for the americano?", AMERICANO_NO_TEMP, False),  # the wrong slot
        ("Is there anything else I can get you?", AMERICANO_NO_TEMP, False),  # asks nothing missing
        ("What size would you like for the latte?", LATTE_NO_SIZE, True),
        ("Which size, small, medium or large?", LATTE_NO_SIZE, False),  # two drinks: which one?
        ("What size would you like for the mocha?", LATTE_NO_SIZE, False),  # the mocha's size was given
        ("What size would you like for the latte and the mocha?", LATTE_NO_SIZE, False),
        ("Sure, a large hot mocha and an iced latte. What size should the latte be?", LATTE_NO_SIZE, True),
        ("Would you like your latte hot or iced?", LATTE_NO_SIZE, False),  # asks again what was given
        ("How many cookies would you like?", COOKIES_NO_QTY, True),
        ("Would you like a cookie with that?", COOKIES_NO_QTY, False),
        ("Which drink would you like with your meal deal?", DEAL_NO_DRINK, True),
        (
            "What would you like to drink with the ham sandwich? We have lattes, mochas and cold brew.",
            DEAL_NO_DRINK,
            True,
        ),
        ("Would you like anything else with the ham sandwich?", DEAL_NO_DRINK, False),  # "anything else" is not a drink
        ("What size would you like for the latte in your meal deal?", DEAL_DRINK_NO_SIZE, True),
        ("So that's a veggie wrap meal deal with a hot latte. Is that right?", DEAL_DRINK_NO_SIZE, False),
        # a read-back of the order so far, then the question (the house style)
        (
            "Got it: an iced latte and a large hot mocha. And what size would you like for the latte?",
            LATTE_NO_SIZE,
            True,
        ),
        (
            "Got it: a large iced latte and a large hot mocha. And what size would you like for the latte?",
            LATTE_NO_SIZE,
            False,
        ),
        (
            "Got it: an iced latte, a large hot mocha and a cookie. And what size would you like for the latte?",
            LATTE_NO_SIZE,
            False,
        ),
        ("Sure, a large hot mocha and an iced latte. What size?", LATTE_NO_SIZE, False),  # which of the two?
        # the house style reads back up to the item with the gap and stops there
        (
            "Got it: a large hot mocha, an iced latte. And what size would you like for the latte?",
            ask([drink("mocha", "large", "hot"), drink("latte", None, "iced"), food("cookie", 2)], [("latte", "size")]),
            True,
        ),
        (
            "Got it: a small cold brew, some banana bread. And how many banana bread would you like?",
            ask([drink("cold brew", "small", None), food("banana bread", None)], [("banana bread", "quantity")]),
            True,
        ),
        (
            "Got it: a small cold brew, a banana bread. And how many banana bread would you like?",  # says one
            ask([drink("cold brew", "small", None), food("banana bread", None)], [("banana bread", "quantity")]),
            False,
        ),
        # a garbled read-back: options for no item (a base-model reply from the demo)
        ("Got it: medium, medium or large. And what size would you like for the latte?", LATTE_NO_SIZE, False),
    ],
)
def test_ask_hard_cases(reply: str, expect: dict, right: bool) -> None:
    verdict = judge_expected(reply, expect)
    assert verdict.right is right, verdict.reason


ORDER = [
    drink("americano", "large", "iced"),
    food("cookie", 2),
    deal("chicken panini"),
    drink("mocha", "small", "hot"),
    drink("cappuccino", "medium", None),
]
CONFIRM = {"act": "confirm", "order": ORDER}


@pytest.mark.parametrize(
    "reply,right",
    [
        (
            "Let me confirm: a large iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that correct?",
            True,
        ),
        # the implied temperature may be said
        (
            "So that's a large iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium hot "
            "cappuccino. Is that right?",
            True,
        ),
        # ... but not contradicted
        (
            "So that's a large iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium iced "
            "cappuccino. Is that right?",
            False,
        ),
        # a changed option: size
        (
            "So that's a medium iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that right?",
            False,
        ),
        # a changed option: hot/iced
        (
            "So that's a large hot americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that right?",
            False,
        ),
        # a changed quantity
        (
            "So that's a large iced americano, three cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that right?",
            False,
        ),
        # an option left out ("iced americano" after "make it large")
        (
            "So that's an iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that right?",
            False,
        ),
        # an item left out
        (
            "So that's a large iced americano, two cookies and a chicken panini meal deal with a small hot mocha. Is that right?",
            False,
        ),
        # the wrong item
        (
            "So that's a large iced latte, two cookies, a chicken panini meal deal with a small hot mocha and a medium "
            "cappuccino. Is that right?",
            False,
        ),
        # an item never ordered
        (
            "So that's a large iced americano, two cookies, a chicken panini meal deal with a small hot mocha, a medium "
            "cappuccino and a croissant. Is that right?",
            False,
        ),
        # right words, but not a confirmation: the order is announced as placed
        (
            "A large iced americano, two cookies, a chicken panini meal deal with a small hot mocha and a medium cappuccino "
            "will be ready shortly!",
            False,
        ),
        # an item said twice is two of it (found by the audit: a meal deal read back twice)
        (
            "So that's a large iced americano, two cookies, a chicken panini meal deal with a small hot mocha, a medium "
            "cappuccino and a chicken panini meal deal with a small hot mocha. Is that right?",
            False,
        ),
        # options after the item, in parentheses
        (
            "To confirm: an americano (large, iced), two cookies, a chicken panini meal deal with a mocha (small, hot) and a "
            "medium cappuccino. Is that right?",
            True,
        ),
    ],
)
def test_confirm_hard_cases(reply: str, right: bool) -> None:
    verdict = judge_expected(reply, CONFIRM)
    assert verdict.right is right, verdict.reason


def test_parse_order_reads_quantities_plurals_and_deals() -> None:
    said = parse_order("Okay: two cookies, some croissants and a ham sandwich meal deal with a large iced chai latte.")
    assert [(m.name, m.size, m.temperature, m.quantity, m.plural) for m in said] == [
        ("cookie", None, None, 2, True),
        ("croissant", None, None, None, True),
        ("ham sandwich", None, None, 1, False),
        ("chai latte", "large", "iced", 1, False),
    ]


def test_every_menu_item_is_known_to_the_judge() -> None:
    names = {*cafe.DRINKS, *cafe.FOODS, *cafe.DEAL_MAINS}
    assert names <= set(DEFAULT_LEXICON["items"])


@pytest.mark.parametrize("varied", [True, False])  # the old variety of phrasings; the house style's read-backs
def test_the_generators_own_replies_are_judged_right(varied: bool) -> None:
    """Every reference reply the generator writes passes the judge for its own record — and the
    record of another turn fails it, so the judge is not satisfied by any reply."""
    convs = cafe.generate(300, seed=11, varied_replies=varied)
    judged = wrong_elsewhere = 0
    for conv in convs:
        turns = {int(k): v for k, v in conv.meta["turns"].items() if v["act"] in ("ask", "confirm")}
        records = list(turns.values())
        for index, expect in turns.items():
            verdict = judge_expected(conv.messages[index].content, expect)
            assert verdict.right, (conv.messages[index].content, verdict.reason)
            judged += 1
            other = next((r for r in records if r is not expect and r["act"] != expect["act"]), None)
            if other is not None:
                assert not judge_expected(conv.messages[index].content, other).right
                wrong_elsewhere += 1
    assert judged > 500 and wrong_elsewhere > 200


def test_generator_covers_every_slot_and_second_questions() -> None:
    convs = cafe.generate(400, seed=3)
    asks = [t for c in convs for t in c.meta["turns"].values() if t["act"] == "ask"]
    assert {t["slot"] for t in asks} == set(cafe.SLOTS)
    second = [c for c in convs if sum(t["act"] == "ask" for t in c.meta["turns"].values()) >= 2]
    assert len(second) > 40  # a second missing detail after the first is answered
    deal_then_size = [
        c
        for c in second
        if [t["slot"] for t in c.meta["turns"].values() if t["act"] == "ask"][:2]
        in (["drink", "size"], ["drink", "temperature"])
    ]
    assert deal_then_size


def test_score_pair_uses_the_record_when_given() -> None:
    reply = "Let me confirm: a cookie, a medium hot cappuccino and a medium americano. Is that correct?"
    reference = "Would you like the americano hot or iced?"
    strict = score_pair(reply, reference, expected=AMERICANO_NO_TEMP)
    assert (strict.reference_act, strict.predicted_act, strict.correct) == ("ask", "confirm", False)
    assert "confirm instead of asking" in strict.detail["reason"]


def test_a_broken_record_in_a_data_file_names_file_line_and_field(tmp_path) -> None:
    from tunelab.eval.contexts import build_contexts
    from tunelab.eval.runner import load_conversations

    conv = cafe.generate(1, seed=4)[0].to_openai()
    index = next(k for k, v in conv["meta"]["turns"].items() if v["act"] == "confirm")
    conv["meta"]["turns"][index]["order"] = "a latte"  # hostile: text where the order list belongs
    path = tmp_path / "held.jsonl"
    path.write_text("\ufeff" + json.dumps(conv) + "\n", encoding="utf-8")  # with a BOM
    with pytest.raises(ValueError, match=rf"held.jsonl:1: meta.turns.{index}.order: the confirm record needs a list"):
        build_contexts(load_conversations(path))

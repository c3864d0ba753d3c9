"""Dialogue-act classifier and appropriateness/correctness scoring."""

from __future__ import annotations

import json

import pytest

from tunelab.eval.behaviour import LABELS, classify, load_lexicon, missing_slots, reply_form, score_pair, score_pairs
from tunelab.messages import Message, ToolCall


def _call(name: str, **args: object) -> dict:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
    }


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("How many shots would you like?", "shots"),
        ("Single or double?", "shots"),
        ("What size would you like that in?", "size"),
        ("Small, medium or large?", "size"),
        ("How many lattes would you like?", "quantity"),
        ("Would you like it hot or iced?", "temperature"),
        ("Which milk would you like?", "milk"),
        ("Would you like oat or almond?", "milk"),
        ("Regular or decaf?", "caffeine"),
        ("Any sweetener or syrup with that?", "sweetener"),
        ("What flavor would you like?", "flavor"),
        ("Can I get a name for the order?", "name"),
        ("Is this for here or to go?", "pickup"),
        ("What time would you like to pick it up?", "pickup"),
        ("Would you like anything to eat with that?", "food"),
        ("What can I get for you today?", "drink"),
        ("Would you like a hot chocolate?", "drink"),  # an item, not a temperature question
        ("Do you want English Breakfast tea or Lavender Earl Grey tea?", "drink"),  # not a flavor question
        ("what size would you like that in", "size"),  # no question mark
    ],
)
def test_ask_and_its_slot(text: str, slot: str) -> None:
    act = classify(text)
    assert (act.act, act.slot) == ("ask", slot)


@pytest.mark.parametrize(
    ("text", "act"),
    [
        # real agent turns from Taskmaster-4
        ("is the order displayed correct and ready to send off to be made?", "confirm"),
        ("OK. Just confirm the order all looks correct and I'll send it off to be made for you.", "confirm"),
        ("Please check the details of your order. Are you ready to send it to the coffee bar?", "confirm"),
        ("To confirm, an extra large spiced Cortado with whole milk?", "confirm"),
        ("Sure. Here's your Latte on the screen. Does it look okay?", "confirm"),
        ("ok, then you can pick up your drink over at the bar in a few minutes.", "closing"),
        ("OK. Your order will be ready shortly. Have a Brew-tiful day!", "closing"),
        (
            "great i have confirmed your order and it will be ready shortly. thank you for being a loyal customer",
            "closing",
        ),
        ("You're welcome, and your order is coming right up!", "closing"),
        ("OK, it will be at the coffee bar soon.", "closing"),
        ("We have vanilla, sugar free vanilla, hazelnut, chocolate sauce, caramel sauce, honey, and sugar.", "inform"),
        ("It is just steamed milk and microfoam", "inform"),
        # the tuned model's inform on Taskmaster-4 (docs/taskmaster.md): a look at the menu is no confirmation
        (
            "We have a lot of teas including black, herbal, and oolong teas. Please take a look at our menu for more details.",
            "inform",
        ),
        ("I'm sorry but we don't have that in our menu, would you like to order something else?", "steer"),
        ("I'm sorry, I cannot help you with that, would you like to order a beverage from the menu, please?", "steer"),
        ("I dont see Mocha on our menu. Did you mean a Macchiato?", "steer"),
        ("I don't know the answer to that but I can help you order coffee or tea.", "steer"),
        ("Sorry, that isn't on our menu. Do you want something else?", "steer"),
        ("Sure, how many shots?", "ask"),
        ("Hello! What would you like to order?", "ask"),
        # hand-written
        ("Let's get back to your order: what size?", "steer"),
        ("Enjoy your coffee, goodbye!", "closing"),
        ("   ", "none"),
    ],
)
def test_act_of_replies(text: str, act: str) -> None:
    assert classify(text).act == act


def test_a_question_with_sorry_is_still_an_ask() -> None:
    assert classify("Sorry, what size did you want?").act == "ask"


def test_tool_calls_from_message_dict_and_text() -> None:
    from_dict = classify(_call("add_order_item", menu_item_id="latte-1", quantity="1"))
    from_message = classify(
        Message(
            role="assistant", tool_calls=(ToolCall("add_order_item", '{"quantity": "1", "menu_item_id": "latte-1"}'),)
        )
    )
    from_text = classify(
        '<tool_call>{"name": "add_order_item", "arguments": {"menu_item_id": "latte-1", "quantity": "1"}}</tool_call>'
    )
    assert from_dict.act == from_message.act == from_text.act == "tool_call"
    # argument order does not matter, the values do
    assert from_dict.tool_calls == from_message.tool_calls == from_text.tool_calls
    assert from_text.tool_call_from_text and not from_dict.tool_call_from_text
    assert classify('{"not": "a call"}').act == "inform"


# Replies of SmolLM2-135M tuned on Taskmaster-4 (700, 800 and 1,000 dialogues), read: each sets out
# to call a tool and breaks the JSON; the judge read them as prose and counted the first right
# against a statement reference, the second against a steer.
BROKEN_CALLS = [
    '<tool_call>{"name": "get_menu_items", "arguments": {"query": "Coff")}}</tool_call>',
    '<tool_call>{"name": "get_addons", "arguments": {"query": "I am sorry, I do not have a Cappuccino on the menu. '
    "Would you like to order something else?",
    '<tool_call>{"name": "update_order_item", "arguments": {"order_item_id": "72509", "attributes": '
    '[{"attribute_id": "name", "option": "addon_id"}}}</tool_call>',
    '{"name": "add_order_item", "arguments": {"menu_item_id": "latte-1", "quantity": "1"',
]


def test_a_broken_tool_call_is_a_failed_call_not_prose() -> None:
    statement = "We have a large variety of drinks including latte, mocha and americano."
    steer = "I'm sorry, we don't have that. Would you like to order something else?"
    ref = _call("get_menu_items", query="Coffee")
    for reply in BROKEN_CALLS:
        act = classify(reply)
        assert act.act == "tool_call" and act.tool_calls == () and act.tool_call_from_text, reply
        assert reply_form(reply) == "tool_call"
        for reference in (statement, steer):
            verdict = score_pair(reply, reference)
            assert not verdict.appropriate and not verdict.correct, (reply, reference)
        # against a call it is the right move, written wrong: no name, no arguments
        verdict = score_pair(reply, ref)
        assert verdict.appropriate and not verdict.correct and not verdict.detail["name_correct"]
    # prose with braces, JSON that is no call, and talk about tools stay what they were
    assert reply_form("Your total is {5.00}. Anything else?") == "question"
    assert reply_form('{"size": "large"}') == "statement"
    assert classify("I can call the store's tool to check that for you.").act == "inform"


# Replies of the tuned Taskmaster models that ask without a question mark after a lead-in, read.
QUESTIONS_AFTER_A_LEAD_IN = [
    "ok, is this correct",
    "okay, is this correct",
    "Sure, can you confirm the order is correct on the screen",
    "Okay great, what size would you like",
]


def test_a_question_after_a_lead_in_asks_even_without_its_question_mark() -> None:
    for reply in QUESTIONS_AFTER_A_LEAD_IN:
        assert reply_form(reply) == "question", reply
    assert classify("Okay great, what size would you like").slots == ("size",)
    # a statement after a lead-in stays one; a request after a thank-you is no question (a reference, read)
    for reply in (
        "Okay, your order will be ready soon at the coffee bar.",
        "Great, I'll send it to the coffee bar.",
        "Well, in the chai latte, is chai concentrate, some milk, and about 12 oz.",
        "Thank you, may you please wait so that we could go ahead and get your order ready.",
    ):
        assert reply_form(reply) == "statement", reply
    # Taskmaster's text turns are right when the reply takes the reference's form
    assert reply_form("ok, is this correct") == reply_form("Does this new order appear good to you now?")
    assert reply_form("ok, is this correct") != reply_form("OK, your order will be ready soon.")


def test_confirm_mentions_ignore_the_coffee_bar() -> None:
    act = classify("So that's one large iced latte with oat milk, to the coffee bar?")
    assert act.act == "confirm"
    assert set(act.mentions) == {"large", "iced", "latte", "oat"}


def test_appropriate_is_not_correct_when_the_wrong_slot_is_asked() -> None:
    right = score_pair("What size would you like?", "Which size do you want?")
    wrong = score_pair("Would you like oat milk?", "Which size do you want?")
    assert right.appropriate and right.correct
    assert wrong.appropriate and not wrong.correct
    assert wrong.detail == {"asked": "milk", "wanted": ["size"]}


def test_missing_slot_given_explicitly_overrides_the_reference() -> None:
    score = score_pair("How many shots?", "What size?", missing=["shots"])
    assert score.correct


def test_confirm_needs_the_reference_items() -> None:
    assert score_pair("Is one iced latte correct?", "So that's one iced latte, correct?").correct
    missing = score_pair("Is one latte correct?", "So that's one iced latte, correct?")
    assert missing.appropriate and not missing.correct and missing.detail["missing_mentions"] == ["iced"]


def test_tool_call_name_and_arguments_are_scored_separately() -> None:
    ref = _call("add_order_item", menu_item_id="latte-1", quantity="1")
    preds = [
        _call("add_order_item", quantity="1", menu_item_id="latte-1"),
        _call("add_order_item", menu_item_id="mocha-1", quantity="1"),
        _call("add_order_item", menu_item_id="Latte-1 ", quantity="1"),
        _call("get_menu_items", query="latte"),
        "Sure, one latte.",
    ]
    result = score_pairs(preds, [ref] * 5)
    assert result["tool_call"] == {
        "n": 5,
        "name_accuracy": 0.6,
        "args_exact_accuracy": 0.2,
        "args_normalised_accuracy": 0.4,
    }
    assert result["per_act"]["tool_call"] == {"n": 5, "appropriateness": 0.8, "correctness": 0.2}


def test_score_pairs_totals_and_confusion_matrix() -> None:
    refs = ["How many shots?", "Is this correct?", "Your order will be ready soon.", "We don't have that, sorry."]
    preds = ["What size?", "Does the order look right?", "Is this correct?", ""]
    result = score_pairs(preds, refs)
    assert result["n"] == 4
    assert result["appropriateness"] == 0.5 and result["correctness"] == 0.25
    matrix = result["confusion"]["matrix"]
    idx = {label: i for i, label in enumerate(LABELS)}
    assert matrix[idx["ask"]][idx["ask"]] == 1 and matrix[idx["closing"]][idx["confirm"]] == 1
    assert matrix[idx["steer"]][idx["none"]] == 1 and sum(map(sum, matrix)) == 4
    assert result["per_act"]["inform"] == {"n": 0, "appropriateness": None, "correctness": None}
    with pytest.raises(ValueError, match="3 predictions but 4 references"):
        score_pairs(preds[:3], refs)


def test_lexicon_is_extensible_data(tmp_path) -> None:
    assert classify("Would you like it in a mug?").slot != "cup"
    path = tmp_path / "lexicon.json"
    path.write_text(
        json.dumps({"slots": {"cup": {"cues": ["mug", "cup"], "values": ["ceramic"]}}, "items": ["babyccino"]})
    )
    lexicon = load_lexicon(path)
    assert classify("Would you like it in a mug?", lexicon).slot == "cup"
    assert "babyccino" in classify("So that's one babyccino, correct?", lexicon).mentions
    with pytest.raises(ValueError, match="question_start"):
        load_lexicon(extra={"acts": {"question_start": ["^x"]}})


def test_missing_slots_from_the_last_tool_result() -> None:
    context = [
        {"role": "user", "content": "an espresso"},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps(
                {"order_id": "1", "unfilled_attributes": [{"attribute_id": "espresso-shots", "options": ["Single"]}]}
            ),
        },
    ]
    assert missing_slots(context) == ("shots",)
    assert missing_slots(context[:1]) == ()

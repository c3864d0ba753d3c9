"""Rule-aware repair of teacher replies: each repair, its hard cases, and the re-check against every rule."""

from __future__ import annotations

import pytest

from tunelab.prompts.repair import clean_question, cut_to, list_to_prose, pieces, repair
from tunelab.prompts.rules import CheckItem, PromptFileError, check_all, parse_prompt, passes_all, sentences

ITEM = CheckItem(question="Can I get a latte with oat milk?")


def spec(*rules, closing=("Anything else?",)):
    base = [
        {"kind": "max_sentences", "n": 3},
        {"id": "no_list", "kind": "format", "format": "no_list"},
        {"kind": "ends_with_question", "closing_questions": list(closing)},
        {"id": "not_an_ai", "kind": "must_not_contain", "phrase": "as an AI"},
    ]
    return parse_prompt({"prompt": "You are a barista.", "rules": list(rules) or base})


def ok(s, text):
    return passes_all(check_all(s, text, ITEM))


def test_a_passing_reply_is_returned_unchanged():
    s = spec()
    r = repair(s, "Sure, one oat latte. Anything else?", ITEM)
    assert (r.text, r.steps, r.reason) == ("Sure, one oat latte. Anything else?", [], "passed")


@pytest.mark.parametrize(
    "reply, expected",
    [
        # too many sentences: cut at a boundary with room for the closing question
        (
            "Sure! One latte with oat milk. It costs $4. It will be ready in five minutes. Enjoy.",
            "Sure! One latte with oat milk. Anything else?",
        ),
        # cut by the token limit mid-sentence: the unfinished fragment goes, not half of it
        (
            "Of course, an oat milk latte it is. We also have almond and",
            "Of course, an oat milk latte it is. Anything else?",
        ),
        # a decimal point and an ellipsis are not where a cut may fall wrongly: the checker's own count decides
        (
            "It costs 3.50 dollars… Oat milk is free. Want it hot. Great choice.",
            "It costs 3.50 dollars… Oat milk is free. Anything else?",
        ),
    ],
)
def test_cut_to_the_sentence_limit_and_add_the_closing_question(reply, expected):
    s = spec()
    r = repair(s, reply, ITEM)
    assert r.text == expected and ok(s, r.text)
    assert "question_added" in r.steps


def test_list_becomes_prose_short_items_joined_long_ones_sentences():
    assert (
        list_to_prose("We have these milks:\n- Oat\n- Soy\n- **Almond**") == "We have these milks: Oat, Soy and Almond."
    )
    assert (
        list_to_prose("1. Whole milk is creamy and rich, good for a latte\n2) Oat milk is sweeter and foams well")
        == "Whole milk is creamy and rich, good for a latte. Oat milk is sweeter and foams well."
    )
    assert list_to_prose("Options:\n* Hot\n\n* Iced\nWhich one?") == "Options: Hot and Iced. Which one?"
    s = spec()
    r = repair(s, "Our syrups:\n- Vanilla\n- Caramel\n- Hazelnut", ITEM)
    assert r.text == "Our syrups: Vanilla, Caramel and Hazelnut. Anything else?" and r.steps == [
        "list_to_prose",
        "question_added",
    ]


def test_a_forbidden_phrase_takes_its_sentence_with_it():
    s = spec()
    r = repair(s, "As an AI, I cannot drink coffee. Your latte is on its way! Anything else?", ITEM)
    assert r.text == "Your latte is on its way! Anything else?" and r.steps == ["forbidden_removed"] and ok(s, r.text)
    # nothing but the forbidden sentence: nothing of the reply is left, so no target
    r = repair(s, "As an AI I have no preferences.", ITEM)
    assert r.text is None and "nothing" in r.reason


def test_an_unrepairable_rule_or_a_rule_marked_repair_false_blocks_repair():
    s = spec(
        {"kind": "language", "expected": "en"}, {"kind": "ends_with_question", "closing_questions": ["Anything else?"]}
    )
    r = repair(s, "Конечно, латте на овсяном молоке.", ITEM)
    assert r.text is None and r.reason == "not repairable: language"
    s = spec({"kind": "ends_with_question", "repair": False, "closing_questions": ["Anything else?"]})
    r = repair(s, "One latte coming up.", ITEM)
    assert r.text is None and "ends_with_question" in r.reason


def test_a_repair_that_would_break_another_rule_is_refused():
    # a one-sentence limit leaves no room for a closing question beside the answer
    s = spec({"kind": "max_sentences", "n": 1}, {"kind": "ends_with_question", "closing_questions": ["Anything else?"]})
    assert repair(s, "One latte coming up.", ITEM).text is None
    # the closing question pushes the reply over a word limit: re-checked, refused
    s = spec(
        {"kind": "max_words", "n": 6},
        {"kind": "ends_with_question", "closing_questions": ["Would you like anything else today?"]},
    )
    r = repair(s, "One oat latte coming up.", ITEM)
    assert r.text is None and r.reason == "still fails: max_words"


def test_closing_question_written_by_the_teacher_when_the_file_lists_none():
    s = spec({"kind": "ends_with_question"})
    asked = []

    def closer(reply):
        asked.append(reply)
        return "Would you like it iced?"

    r = repair(s, "One latte with oat milk.", ITEM, closer)
    assert (
        r.text == "One latte with oat milk. Would you like it iced?"
        and r.steps == ["question_generated"]
        and asked == ["One latte with oat milk."]
    )
    assert repair(s, "One latte.", ITEM, lambda reply: None).text is None  # the teacher wrote no usable question
    assert repair(s, "One latte.", ITEM).text is None  # no list and no teacher


def test_clean_question_and_pieces():
    assert clean_question('"Would you like a pastry with that?"\nThanks!') == "Would you like a pastry with that?"
    assert clean_question("Enjoy your coffee.") is None
    assert clean_question("Hot or iced? And which size?") is None
    assert pieces("One. Two!\nThree? four") == ["One.", "Two!", "Three?", "four"]
    assert len(sentences(" ".join(cut_to(pieces("A b. C d. E f. G h."), 2)))) == 2


def test_prompt_file_repair_flag_and_closing_questions_are_validated():
    with pytest.raises(PromptFileError, match="'repair' must be true or false"):
        parse_prompt({"prompt": "p", "rules": [{"kind": "ends_with_question", "repair": "no"}]})
    with pytest.raises(PromptFileError, match="must end with"):
        parse_prompt({"prompt": "p", "rules": [{"kind": "ends_with_question", "closing_questions": ["Bye."]}]})

"""System prompt files and the machine checks of their rules."""

from __future__ import annotations

import pytest
import yaml

from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs
from tunelab.prompts.rules import (
    RULE_KINDS,
    CheckItem,
    PromptFileError,
    Rule,
    check,
    check_all,
    detect_language,
    dump_prompt,
    is_answerable,
    is_off_topic,
    load_prompt,
    parse_prompt,
    passes_all,
)

HELPDESK = parse_prompt(yaml.safe_load(PROMPT_YAML), "helpdesk.yaml")


def rule(kind: str, **params) -> Rule:
    required, optional = RULE_KINDS[kind]
    return Rule(id=kind, kind=kind, params={**optional, **params})


def by_id(rule_id: str) -> Rule:
    return next(r for r in HELPDESK_RULES if r.id == rule_id)


HELPDESK_RULES = HELPDESK.rules
Q = CheckItem(
    "When is the library open?",
    {"role": "student"},
    ("The library is open from 8:00 to 22:00 on weekdays.", "Dormitory rooms are assigned by the housing office."),
)


def test_unknown_rule_kind_names_file_and_rule(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("prompt: hi\nrules:\n  - kind: max_sentences\n    n: 2\n  - kind: be_nice\n", encoding="utf-8")
    with pytest.raises(PromptFileError, match=r"p\.yaml: rules\[1\]: unknown rule kind 'be_nice'"):
        load_prompt(path)


@pytest.mark.parametrize(
    "rules, message",
    [
        ([{"kind": "max_words"}], r"rules\[0\] \(max_words\): missing parameter\(s\) \['n'\]"),
        ([{"kind": "max_words", "n": 5, "m": 1}], r"unknown parameter\(s\) \['m'\]"),
        ([{"kind": "format", "format": "yaml"}], "must be one of"),
        ([{"kind": "ends_with_question"}, {"kind": "ends_with_question"}], "duplicate rule id"),
        ([{"kind": "grounded"}], "dont_know"),
        (["max_words"], "must be a mapping"),
    ],
)
def test_bad_rules_are_errors(rules, message):
    with pytest.raises(PromptFileError, match=message):
        parse_prompt({"prompt": "x", "rules": rules}, "f.yaml")


def test_prompt_file_round_trips():
    again = parse_prompt(yaml.safe_load(dump_prompt(HELPDESK)))
    assert again.prompt == HELPDESK.prompt
    assert [(r.id, r.kind, r.params) for r in again.rules] == [(r.id, r.kind, r.params) for r in HELPDESK.rules]


def test_language_is_script_based():
    assert detect_language("Когда открыта библиотека?") == "ru"
    assert detect_language("When is it open?") == "en"
    lang = rule("language")
    ru_q = CheckItem("Когда открыта библиотека?")
    assert check(lang, "Библиотека открыта с 8:00.", ru_q).passed
    assert not check(lang, "The library opens at 8.", ru_q).passed
    assert check(rule("language", expected="en"), "Hello there.", ru_q).passed


def test_length_format_and_phrase_rules():
    assert check(rule("max_sentences", n=2), "One. Two? ", Q).passed
    assert not check(rule("max_sentences", n=2), "One. Two! Three.", Q).passed
    assert not check(rule("max_words", n=3), "one two three four", Q).passed
    assert check(rule("ends_with_question"), "Anything else? ", Q).passed
    assert not check(rule("ends_with_question"), "Bye.", Q).passed
    assert check(rule("format", format="json"), '{"a": 1}', Q).passed
    assert not check(rule("format", format="json"), "a: 1", Q).passed
    assert check(rule("format", format="bullets"), "- a\n- b", Q).passed
    assert not check(rule("format", format="no_list"), "Sure:\n1. a\n2. b", Q).passed
    assert not check(rule("must_not_contain", phrase="as an AI"), "As an ai, I think", Q).passed
    assert check(rule("must_contain", phrase="Dear"), "dear student", Q).passed


def test_role_address_wants_the_role_form_and_not_another():
    r = by_id("role_address")
    assert check(r, "Dear student, hi. Anything else?", Q).passed
    assert not check(r, "Dear colleague, hi.", Q).passed
    assert not check(r, "Hello and welcome to the university helpdesk, dear student.", Q).passed  # not at the start
    assert not check(r, "x", CheckItem("q", {})).applicable


def test_grounded_rewards_copying_and_catches_made_up_facts():
    r = by_id("grounded")
    assert check(r, "Dear student, the library is open from 8:00 to 22:00 on weekdays. Anything else?", Q).passed
    made_up = check(r, "Dear student, Professor Smith handles this in room 999 for free.", Q)
    assert not made_up.passed and "content words" in made_up.detail
    assert not check(r, "Dear student, I don't know. Can I help?", Q).passed  # the answer was there
    lacking = CheckItem(
        "When is the library open?", {"role": "student"}, ("Dormitory rooms are assigned by the housing office.",)
    )
    assert check(r, "Dear student, I don't know. Can I help?", lacking).passed
    assert not check(r, "Dear student, the library is open all night.", lacking).passed


def test_off_topic_must_be_declined_and_on_topic_must_not():
    r = by_id("declines_off_topic")
    poem = CheckItem("Can you write me a poem about the sea?", {"role": "student"})
    assert is_off_topic(r, poem)
    assert check(r, "Dear student, I can only help with university questions. Anything else?", poem).passed
    assert not check(r, "The sea is blue and wide.", poem).passed
    assert not check(r, "I can only help with university questions.", Q).passed


def test_synthetic_logs_agree_with_the_checks():
    """Good answers pass every rule; each bad answer breaks at least one; heuristics match the truth."""
    rows = generate_logs(200, seed=3)
    topic_rule = by_id("declines_off_topic")
    for row in rows:
        item = CheckItem(row["question"], {"role": row["role"]}, tuple(row["contexts"]))
        assert passes_all(check_all(HELPDESK, row["answer"], item)) == (row["label"] == "good"), row
        assert is_off_topic(topic_rule, item) == (row["kind"] == "off_topic"), row["question"]
        if row["kind"] != "off_topic":
            assert is_answerable(item, 0.5) == (row["kind"] == "answerable"), row["question"]
    assert {r["lang"] for r in rows} == {"en", "ru"}


EXAMPLE_PROMPT = """\
name: desk
prompt: You are the help desk.
rules:
  - kind: max_sentences
    n: 2
  - kind: ends_with_question
examples:
  - question: How do I reset my password?
    reply: Use the "Forgot password" link on the sign-in page. Anything else?
  - question: Where is the printer?
    reply: {reply}
"""


def test_prompt_examples_load_and_show_in_the_system_prompt(tmp_path):
    from tunelab.prompts.rules import Example, system_prompt

    path = tmp_path / "desk.yaml"
    path.write_text(EXAMPLE_PROMPT.format(reply="Next to room 12. Can I help with anything else?"), encoding="utf-8")
    spec = load_prompt(path)
    assert spec.examples == (
        Example("How do I reset my password?", 'Use the "Forgot password" link on the sign-in page. Anything else?'),
        Example("Where is the printer?", "Next to room 12. Can I help with anything else?"),
    )
    text = system_prompt(spec)
    assert text.startswith("You are the help desk.\n\nExamples of good replies:") and "Where is the printer?" in text
    assert parse_prompt(yaml.safe_load(dump_prompt(spec))).examples == spec.examples


@pytest.mark.parametrize(
    "reply, message",
    [
        # names the file, the line of the example, the example and the rule with its detail
        ("Next to room 12.", r"desk\.yaml:10: examples\[1\]\.reply breaks rule 'ends_with_question'"),
        ("One. Two. Three?", r"desk\.yaml:10: examples\[1\]\.reply breaks rule 'max_sentences' \(3 sentences\)"),
        (
            '"Next to room 12. Anything else?',
            r"desk\.yaml:10: examples\[1\]\.reply fails the sanity check \(unbalanced quotes\)",
        ),
    ],
)
def test_an_example_that_breaks_a_rule_is_an_error_naming_file_line_example_and_rule(tmp_path, reply, message):
    path = tmp_path / "desk.yaml"
    path.write_text(EXAMPLE_PROMPT.format(reply=yaml.safe_dump(reply).strip()), encoding="utf-8")
    with pytest.raises(PromptFileError, match=message):
        load_prompt(path)


@pytest.mark.parametrize(
    "examples, message",
    [
        ([{"question": f"q{i}?", "reply": "Yes?"} for i in range(6)], "holds 6 exchanges; at most 5"),
        ([{"question": "q?"}], r"examples\[0\]: an example is a mapping with exactly 'question' and 'reply'"),
        ([{"question": "q?", "reply": "Yes?", "id": 1}], r"exactly 'question' and 'reply'"),
        ([{"question": "q?", "reply": " "}], "non-empty strings"),
        ({"question": "q?", "reply": "Yes?"}, "'examples' must be a list"),
    ],
)
def test_malformed_examples_are_errors(examples, message):
    with pytest.raises(PromptFileError, match=message):
        parse_prompt({"prompt": "p", "rules": [{"kind": "ends_with_question"}], "examples": examples}, "p.yaml")


def test_the_shipped_evaluation_prompts_load_with_forty_and_forty_distinct_questions():
    """examples/bake_prompts: three personas and rule mixes, one Russian with three examples;
    the held-out questions are none of the training ones."""
    from pathlib import Path

    from tunelab.config import load
    from tunelab.data.logs import read_logs

    root = Path(__file__).resolve().parents[2] / "examples" / "bake_prompts"
    kinds = set()
    for name in ("bike_share", "pharmacy", "ru_internet"):
        cfg = load(root / name / "bake.yaml")
        spec = load_prompt(root / name / "prompt.yaml")
        kinds |= {r.kind for r in spec.rules}
        train = [r.question for r in read_logs(str(root / name / "train.jsonl"), cfg.logs, questions_only=True).records]
        held = [
            r.question for r in read_logs(str(root / name / "heldout.jsonl"), cfg.logs, questions_only=True).records
        ]
        assert (
            len(set(train)) == 40
            and len(set(held)) == 40
            and not {q.casefold() for q in train} & {q.casefold() for q in held}
        )
        language = "ru" if name == "ru_internet" else "en"
        assert {detect_language(q) for q in train + held} == {language}
        assert len(spec.examples) == (3 if language == "ru" else 0)
    assert {"max_words", "max_sentences", "must_contain", "must_not_contain", "format", "language"} <= kinds

"""Rule-aware repair of teacher replies: each repair, its hard cases, the closing question when the
prompt lists none, the sanity check's rejects, and the re-check of every target against every rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunelab.prompts.repair import (
    CLOSING_QUESTIONS,
    closing_candidates,
    cut_to,
    list_to_prose,
    phrase_sentences,
    phrase_statements,
    pieces,
    repair,
    sign_offs,
    with_headroom,
)
from tunelab.prompts.rules import (
    CheckItem,
    PromptFileError,
    check_all,
    detect_language,
    parse_prompt,
    passes_all,
    sentences,
)
from tunelab.prompts.sanity import sanity_problem

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
    # no closing question leaves room under the word limit for a whole sentence of the reply: refused
    s = spec(
        {"kind": "max_words", "n": 6},
        {"kind": "ends_with_question", "closing_questions": ["Would you like anything else today?"]},
    )
    r = repair(s, "One oat latte coming up.", ITEM)
    assert r.text is None and r.reason == "nothing of the reply left"
    # a cut that would remove the phrase a rule requires: re-checked against every rule, refused
    s = spec({"kind": "max_sentences", "n": 1}, {"kind": "must_contain", "phrase": "five minutes"})
    r = repair(s, "One oat latte. Ready in five minutes.", ITEM)
    assert r.text is None and r.reason == "still fails: must_contain"


def test_closing_question_from_the_built_in_bank_when_the_rule_lists_none_english():
    s = spec({"kind": "max_sentences", "n": 3}, {"kind": "ends_with_question"})
    r = repair(s, "One latte with oat milk. It will be ready in five minutes.", ITEM)
    body, question = r.text.rsplit(". ", 1)
    assert body == "One latte with oat milk. It will be ready in five minutes"
    assert question in CLOSING_QUESTIONS["en"] and r.steps == ["question_added"] and ok(s, r.text)
    # the same reply always gets the same question (resume recomputes repairs from raw replies)
    assert repair(s, "One latte with oat milk. It will be ready in five minutes.", ITEM).text == r.text


def test_closing_question_in_russian_for_a_russian_prompt_that_lists_none():
    s = parse_prompt(
        {
            "prompt": "Ты помощник службы поддержки интернет-провайдера.",
            "rules": [
                {"kind": "language", "expected": "ru"},
                {"kind": "max_sentences", "n": 3},
                {"kind": "ends_with_question"},
            ],
        }
    )
    item = CheckItem(question="Как перезагрузить роутер?")
    r = repair(s, "Выключите роутер из розетки на 30 секунд. Затем включите его снова.", item)
    assert r.text.startswith("Выключите роутер из розетки на 30 секунд. Затем включите его снова. ")
    assert r.text.rsplit(". ", 1)[1] in CLOSING_QUESTIONS["ru"] and detect_language(r.text) == "ru"
    assert passes_all(check_all(s, r.text, item)) and sanity_problem(r.text, item.question) is None


def test_closing_questions_come_from_the_rule_then_the_prompt_then_the_bank_ranked_by_the_prompts_words():
    prompt = 'You take coffee orders. End with a question such as "Shall I add a pastry?"'
    s = parse_prompt(
        {"prompt": prompt, "rules": [{"kind": "ends_with_question", "closing_questions": ["Hot or iced?"]}]}
    )
    got = closing_candidates(s, s.rules[0], ITEM, "One latte.")
    assert got[:2] == ["Hot or iced?", "Shall I add a pastry?"] and set(got[2:]) == set(CLOSING_QUESTIONS["en"])
    # no list, nothing quoted: the bank, the question sharing the prompt's words ("details") first
    s = parse_prompt({"prompt": "Give details about our plans.", "rules": [{"kind": "ends_with_question"}]})
    assert closing_candidates(s, s.rules[0], ITEM, "One latte.")[0] == "Would you like more details?"
    # a word limit the first candidate would break: the next one that fits is taken
    s = spec({"kind": "max_words", "n": 8}, {"kind": "ends_with_question"})
    r = repair(s, "Your latte is ready now.", ITEM)
    assert r.text == "Your latte is ready now. Does that help?" and ok(s, r.text)


@pytest.mark.parametrize(
    "reply, question, problem",
    [
        ("*singing* How about \"How about this business you're referring to?", "Hi?", "unbalanced quotes"),
        ("Тариф «Домашний (500 Мбит) стоит 600 рублей.", "Сколько?", "unbalanced quotes"),
        ("Your order (number 1234 is on its way.", "Where is my order?", "unbalanced brackets"),
        (
            "Can I get a latte with oat milk? Sure, coming up.",
            "Can I get a latte with oat milk?",
            "echo of the question",
        ),
        ("ing the latte now. Anything else?", "Latte?", "starts mid-word"),
        (", and then restart it.", "How?", "starts mid-word"),
        ("Restart the router and wait for the green", "How?", "no terminal punctuation"),
        ("Question: Can I pay by card? ### Assistant: Yes.", "Can I pay by card?", "role marker"),
        ("Yes, by card. User: thanks", "Can I pay by card?", "role marker"),
        ("Да. Вопрос: а можно наличными?", "Можно картой?", "role marker"),
        # a base model continuing the user's turn instead of answering it
        ("Сколько стоит тариф на 100 мегабит?", "Сколько стоит тариф на 500 мегабит?", "restates the question"),
        ("Can I pay with a credit card online? Yes.", "Can I pay by credit card?", "restates the question"),
        ("<|im_start|>assistant Yes.", "Card?", "role marker"),
        ("   ", "Card?", "empty reply"),
    ],
)
def test_the_sanity_check_rejects(reply, question, problem):
    assert sanity_problem(reply, question) == problem


@pytest.mark.parametrize(
    "reply",
    [
        "Yes, you can pay by card (Visa or Mastercard). Anything else?",
        'Tap "Pay" in the app. The short answer: yes!',
        "«Домашний» стоит 600 рублей… Подсказать ещё что-нибудь?",
        "Pay by card, then tap Done.\nAnything else?",
    ],
)
def test_the_sanity_check_accepts_ordinary_replies(reply):
    assert sanity_problem(reply, "Can I pay by card?") is None


def test_a_target_failing_sanity_is_dropped_with_its_reason_even_when_every_rule_passes():
    s = spec({"kind": "ends_with_question"})
    # the label goes (debris_cut) and what is left only repeats the question
    r = repair(s, "Question: Can I get a latte with oat milk?", ITEM)
    assert r.text is None and r.reason == "sanity: echo of the question" and r.steps == ["debris_cut"]
    r = repair(s, '*singing* How about "this business?', ITEM)
    assert r.text is None and r.reason == "sanity: unbalanced quotes"
    # a passing reply cut off by the token limit loses its unfinished last sentence instead
    s = spec({"kind": "max_sentences", "n": 3})
    r = repair(s, "One oat latte. It takes five minutes and", ITEM)
    assert (r.text, r.steps) == ("One oat latte.", ["fragment_dropped"])


PIECES = [
    "Sure, one oat latte.",
    "It costs $4.50!",
    "Ready in five minutes.",
    "As an AI, I don't drink coffee.",
    "We also have almond and",
    "- Oat\n- Soy\n- Almond",
    "1. Hot\n2. Iced",
    "Would you like a pastry?",
    'Try our "Winter Special".',
    'I said "yes',
    "Can I get a latte with oat milk?",
    "Question: what size?",
    "User: thanks",
    "Our syrups:",
    "la la",
    "",
    "- Bean Team",
]
SPECS = [
    spec(),
    spec(
        {"kind": "language", "expected": "en"},
        {"kind": "max_words", "n": 25},
        {"id": "no_list", "kind": "format", "format": "no_list"},
        {"kind": "ends_with_question"},
        {"id": "not_an_ai", "kind": "must_not_contain", "phrase": "as an AI"},
    ),
    spec({"kind": "max_sentences", "n": 2}, {"kind": "must_not_contain", "phrase": "almond"}),
    parse_prompt(
        {
            "prompt": "You are a barista. Always tell the customer to ask our barista about allergens.",
            "rules": [
                {"kind": "max_sentences", "n": 3},
                {"kind": "must_contain", "phrase": "barista"},
                {"kind": "must_not_contain", "phrase": "almond"},
                {"kind": "ends_with_question"},
            ],
        }
    ),
]


SIGNED = parse_prompt(  # a required phrase the prompt quotes only in a sign-off
    {
        "prompt": 'You are a barista. Keep it under 25 words. Sign off every reply with "- Bean Team".',
        "rules": [
            {"kind": "max_words", "n": 25},
            {"kind": "must_contain", "phrase": "Bean Team"},
            {"kind": "must_not_contain", "phrase": "almond"},
            {"id": "no_list", "kind": "format", "format": "no_list"},
        ],
    }
)
SPECS.append(SIGNED)


@given(
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=7),
    st.sampled_from(range(len(SPECS))),
    st.sampled_from([0.0, 0.15, 0.5]),
)
def test_every_repaired_target_passes_every_rule_and_the_sanity_check(parts, which, headroom):
    s = SPECS[which]
    reply = "\n".join(parts) if which == 1 else " ".join(parts)
    r = repair(s, reply, ITEM, headroom)
    if r.text is not None:
        assert ok(s, r.text), (reply, r)
        body = r.text.removesuffix(" - Bean Team") if s is SIGNED else r.text  # a sign-off has no full stop
        assert sanity_problem(body, ITEM.question) is None, (reply, r)
    else:
        assert r.reason and r.reason != "repaired"
    # headroom never costs a target: what repairs at the limit repairs with headroom
    assert r.text is not None or repair(s, reply, ITEM).text is None, (reply, r)


def test_headroom_lowers_length_limits_by_a_rounded_share_never_below_one():
    s = parse_prompt(
        {
            "prompt": "p",
            "rules": [
                {"kind": "max_sentences", "n": 4},
                {"kind": "max_words", "n": 60},
                {"id": "three", "kind": "max_sentences", "n": 3},
                {"id": "one", "kind": "max_sentences", "n": 1},
                {"kind": "ends_with_question"},
            ],
        }
    )
    limits = {r.id: r.params.get("n") for r in with_headroom(s, 0.15).rules}
    assert limits == {"max_sentences": 3, "max_words": 51, "three": 3, "one": 1, "ends_with_question": None}
    assert with_headroom(s, 0.9).rules[3].params["n"] == 1
    assert with_headroom(s, 0.0) is s
    assert {r.params["n"] for r in s.rules if r.kind == "max_words"} == {60}  # the prompt's own spec unchanged


def test_headroom_cuts_a_reply_at_the_limit_and_falls_back_to_the_limit_when_nothing_would_be_left():
    s = spec({"kind": "max_sentences", "n": 4}, {"id": "no_list", "kind": "format", "format": "no_list"})
    at_limit = "One oat latte. It costs $4.50. Ready in five minutes. Enjoy it."
    assert repair(s, at_limit, ITEM).text == at_limit  # passes as written
    r = repair(s, at_limit, ITEM, 0.15)
    assert (r.text, r.steps) == ("One oat latte. It costs $4.50. Ready in five minutes.", ["sentences_cut"])
    # ten words, the closing question among them: eight leave no room for the one sentence, so ten hold
    ten = spec({"kind": "max_words", "n": 10}, {"kind": "ends_with_question", "closing_questions": ["Anything else?"]})
    r = repair(ten, "One oat latte, ready in five minutes. It costs $4.50.", ITEM, 0.15)
    assert r.text == "One oat latte, ready in five minutes. Anything else?"


def test_pieces_and_cut_to():
    assert pieces("One. Two!\nThree? four") == ["One.", "Two!", "Three?", "four"]
    assert len(sentences(" ".join(cut_to(pieces("A b. C d. E f. G h."), 2)))) == 2
    assert cut_to(pieces("One two three. Four five six. Seven."), None, 6) == ["One two three.", "Four five six."]


def test_prompt_file_repair_flag_and_closing_questions_are_validated():
    with pytest.raises(PromptFileError, match="'repair' must be true or false"):
        parse_prompt({"prompt": "p", "rules": [{"kind": "ends_with_question", "repair": "no"}]})
    with pytest.raises(PromptFileError, match="must end with"):
        parse_prompt({"prompt": "p", "rules": [{"kind": "ends_with_question", "closing_questions": ["Bye."]}]})


def test_a_line_wrapped_inside_a_sentence_is_joined_not_made_two_sentences():
    """A teacher that wraps long lines: the repair must not read each line as a sentence and glue a
    full stop after "sign in," or after "The" (seen in a bake of a bike-share prompt)."""
    s = spec()
    wrapped = "Sure, to unlock a bike you sign in,\nthen tap the bike on the map. The\nnext step is the code."
    r = repair(s, wrapped, ITEM)
    assert r.steps[0] == "lines_joined" and "question_added" in r.steps
    assert (
        r.text
        == "Sure, to unlock a bike you sign in, then tap the bike on the map. The next step is the code. Anything else?"
    )
    assert ",." not in r.text and ok(s, r.text)


@pytest.mark.parametrize(
    "text",
    [
        "Hello\nWe have oat milk.",  # a capital after the break: a sentence of its own, as the checker counts
        "We have:\n- oat\n- soy",  # list lines are list_to_prose's
        "It costs 4.\nthen again, oat is free.",  # a break after a full stop stays a break
        "Total: 12\n3 items",  # a digit does not continue a sentence
    ],
)
def test_real_line_breaks_are_kept(text):
    from tunelab.prompts.repair import join_wrapped_lines

    assert join_wrapped_lines(text) == text


def test_a_russian_wrapped_line_is_joined_too():
    from tunelab.prompts.repair import join_wrapped_lines

    assert join_wrapped_lines("Проверьте, что роутер\nвключён.") == "Проверьте, что роутер включён."


PHARMACY = (
    "You are CareLine, the assistant of an online pharmacy.\n\nRules:\n"
    "- Answer in at most four sentences.\n"
    "- Whenever the question touches a medicine, a dose or a symptom, tell the customer to check with\n"
    "  one of our pharmacists; for order questions, mention that a pharmacist checks every order.\n"
    '  Either way the word "pharmacist" must be in your reply.\n'
)


def pharmacy(*extra):
    rules = [{"kind": "max_sentences", "n": 4}, {"kind": "must_contain", "phrase": "pharmacist"}, *extra]
    return parse_prompt({"prompt": PHARMACY, "rules": rules})


def test_a_required_phrase_gets_the_sentence_the_prompt_asks_for():
    assert [s for s, _ in phrase_sentences(PHARMACY, "pharmacist")] == [
        "Please check with one of our pharmacists.",
        "A pharmacist checks every order.",
    ]
    s = pharmacy()
    # the instruction sharing words with the question wins: an order question gets the order sentence
    order = CheckItem(question="Where is my order? I ordered five days ago.")
    r = repair(s, "Your order is on its way. It should arrive soon. Track it in your account. Thanks!", order)
    assert r.text == (
        "Your order is on its way. It should arrive soon. Track it in your account. A pharmacist checks every order."
    )
    assert r.steps == ["sentences_cut", "phrase_added"] and passes_all(check_all(s, r.text, order))
    dose = CheckItem(question="What dose of ibuprofen is safe for a child?")
    r = repair(s, "It depends on the weight of the child. Read the leaflet.", dose)
    assert (
        r.text == "It depends on the weight of the child. Read the leaflet. Please check with one of our pharmacists."
    )
    # the phrase sentence goes before the closing question and counts toward the sentence limit
    s = pharmacy({"kind": "ends_with_question", "closing_questions": ["Anything else?"]})
    r = repair(s, "It depends on the weight. Read the leaflet. Weigh the child first.", dose)
    assert (
        r.text == "It depends on the weight. Read the leaflet. Please check with one of our pharmacists. Anything else?"
    )


def test_a_required_phrase_no_instruction_asks_for_stays_unrepairable():
    # the word is required but the prompt never says what to say with it: no sentence to invent
    s = parse_prompt({"prompt": "You are a barista.", "rules": [{"kind": "must_contain", "phrase": "oat"}]})
    r = repair(s, "One latte coming up.", ITEM)
    assert r.text is None and r.reason == "not repairable: must_contain"
    # Russian instructions are not turned into sentences (the verb would need conjugating)
    s = parse_prompt(
        {
            "prompt": "Всегда советуй клиенту позвонить оператору.",
            "rules": [{"kind": "must_contain", "phrase": "оператор"}],
        }
    )
    assert repair(s, "Перезагрузите роутер.", CheckItem(question="Не работает интернет")).text is None


ENERGY = (
    "You are the chat assistant of Hearth Energy, a home electricity and gas supplier.\n"
    "Keep your replies short, 40 words at most. Almost everything can be done in the customer's\n"
    "online account (readings, bills, payments), so always mention their online account in your reply.\n"
    "Your online account is never to be shared."
)


def test_a_required_phrase_the_prompt_only_names_gets_the_prompts_own_statement():
    # "always mention their online account" says what, not which sentence: the statement of fact
    # before it, told to the customer, is the sentence; the instruction and the lines that address
    # the assistant ("You are ...", "Your online account is never ...") are not
    assert phrase_sentences(ENERGY, "online account") == [
        (
            "Almost everything can be done in your online account.",
            "Almost everything can be done in the customer's online account (readings, bills, payments)",
        )
    ]
    assert phrase_statements("Readings go in the user’s online account - ask for one.", "online account") == [
        ("Readings go in your online account.", "Readings go in the user’s online account")
    ]
    assert phrase_statements("Всё можно сделать в личном кабинете клиента.", "кабинет") == []  # English only
    s = parse_prompt(
        {
            "prompt": ENERGY,
            "rules": [
                {"kind": "max_words", "n": 40},
                {"kind": "must_contain", "phrase": "online account"},
                {"kind": "must_not_contain", "phrase": "promise"},
            ],
        }
    )
    item = CheckItem(question="Why did my bill go up this month?")
    reply = (
        "Your bill went up because the last reading was estimated and winter use is higher. "
        "Send a real reading and the next bill will be corrected. I promise it will be lower next month."
    )
    r = repair(s, reply, item)
    assert r.text == (
        "Your bill went up because the last reading was estimated and winter use is higher. Send a real reading "
        "and the next bill will be corrected. Almost everything can be done in your online account."
    )
    assert r.steps == ["forbidden_removed", "phrase_added"] and passes_all(check_all(s, r.text, item))
    # an instruction to pass something on still wins over a statement
    both = ENERGY + "\nTell the customer to check their online account first."
    assert [t for t, _ in phrase_sentences(both, "online account")] == ["Please check your online account first."]


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("Yes, by card. User: thanks, bye", "Yes, by card."),
        ("Answer: Yes, by card.\n### Question: and cash?", "Yes, by card."),
        ("Ответ: Да, картой. Вопрос: а наличными?", "Да, картой."),
    ],
)
def test_role_labels_around_the_reply_are_cut_off(reply, expected):
    s = spec({"kind": "max_sentences", "n": 3})
    r = repair(s, reply, CheckItem(question="Can I pay by card?"))
    assert (r.text, r.steps) == (expected, ["debris_cut"])


def test_a_target_that_copies_an_example_reply_is_dropped():
    s = parse_prompt(
        {
            "prompt": "You are the assistant of an energy supplier. Mention the online account.",
            "rules": [{"kind": "must_contain", "phrase": "online account"}],
            "examples": [
                {
                    "question": "whats my customer reference",
                    "reply": "Your customer reference is at the top of every bill and in your online account.",
                }
            ],
        }
    )
    item = CheckItem(question="My bill doubled this month, why?")
    # the teacher parrots the example: it passes the rule the example was written to pass, and is no reply
    r = repair(s, "Your customer reference is at the top of every bill and in your online account.", item)
    assert r.text is None and r.reason == "sanity: copies an example"
    # the same words in another order, or a few of them, are a reply in the example's style
    ok_reply = "Your bill doubled because the reading was estimated; send a real one in your online account."
    assert repair(s, ok_reply, item).reason == "passed"
    assert sanity_problem("The meter number is at the top of every bill.", "Q?", [s.examples[0].reply]) is None
    assert (
        sanity_problem("It is at the top of every bill and in your online account.", "Q?", [s.examples[0].reply])
        == "copies an example"
    )


def test_a_required_phrase_the_prompt_quotes_in_a_sign_off_ends_the_reply():
    assert sign_offs('Always reply in English. Sign off every reply with\n  "- Northline Help".', "Northline Help") == [
        "- Northline Help"
    ]
    assert sign_offs("End each answer with 'Team Hearth'.", "Hearth") == ["Team Hearth"]
    assert sign_offs('Never say "Northline Help" twice.', "Northline Help") == []  # a quote, but no sign-off
    long = "One oat latte with vanilla, ready in five minutes at the counter. We also have soy, coconut and hazelnut milk for every single drink on our menu."
    r = repair(SIGNED, long, ITEM)
    assert (r.text, r.steps) == (
        "One oat latte with vanilla, ready in five minutes at the counter. - Bean Team",
        ["sentences_cut", "sign_off_added"],
    )  # cut to 25 words with the sign-off's two counted
    # the teacher's own sign-off is kept where it is and never cut off
    assert repair(SIGNED, "One oat latte. - Bean Team", ITEM).reason == "passed"
    r = repair(SIGNED, "One oat latte. Ready in five minutes and - Bean Team", ITEM)
    assert (r.text, r.steps) == ("One oat latte. - Bean Team", ["fragment_dropped"])

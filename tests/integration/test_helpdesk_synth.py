"""The built-in helpdesk logs teach what the prompt asks: every good answer passes every
machine-checkable rule, the answer can only come from reading the passages (random facts), the
hard question kinds are well represented, and the demo's held-out questions have no reworded or
translated twin in training. No model needed."""

from __future__ import annotations

import collections

import pytest
import yaml

from tunelab.data.synth.helpdesk import (
    ATTRIBUTES,
    KIND_WEIGHTS,
    OFF_TOPIC,
    OFF_TOPIC_REQUESTS,
    OFF_TOPIC_SUBJECTS,
    PROMPT_YAML,
    SERVICES,
    generate_logs,
    off_topic_request,
    passage,
    question_text,
    random_facts,
)
from tunelab.demos.helpdesk import split_by_group, split_check
from tunelab.prompts.rules import CheckItem, check_all, is_answerable, is_off_topic, parse_prompt, passes_all

SPEC = parse_prompt(yaml.safe_load(PROMPT_YAML))


def failures(row: dict) -> list[str]:
    # The item carries no answerable/off-topic flags: the rules judge from the text, as on model replies.
    results = check_all(SPEC, row["answer"], CheckItem(row["question"], {"role": row["role"]}, tuple(row["contexts"])))
    return [f"{r.rule}: {r.detail}" for r in results if r.applicable and not r.passed]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_every_good_answer_passes_every_rule(seed):
    rows = generate_logs(300, seed=seed)
    good = [r for r in rows if r["label"] == "good"]
    assert len(good) > 200
    broken = [(r["id"], r["answer"], failures(r)) for r in good if failures(r)]
    assert not broken, broken[:3]
    # and the bad ones are bad by the same rules (their comment names the flaw)
    assert all(
        not passes_all(
            check_all(SPEC, r["answer"], CheckItem(r["question"], {"role": r["role"]}, tuple(r["contexts"])))
        )
        for r in rows
        if r["label"] == "bad"
    )


def test_hard_question_kinds_and_both_languages_are_well_represented():
    good = [r for r in generate_logs(300, seed=0) if r["label"] == "good"]
    kinds = collections.Counter(r["kind"] for r in good)
    assert set(kinds) == set(KIND_WEIGHTS)
    assert kinds["unanswerable"] >= 0.15 * len(good) and kinds["off_topic"] >= 0.15 * len(good)
    assert collections.Counter(r["lang"] for r in good)["ru"] >= 0.25 * len(good)
    assert collections.Counter(r["role"] for r in good).most_common()[-1][1] >= 0.2 * len(good)


def test_every_question_wording_is_on_topic_and_answered_by_its_own_passage():
    """All 45 services x 5 attributes x 3 wordings x 2 languages, as the checker sees them: the
    question is on-topic and its passage answers it; every off-topic request is off-topic."""
    import random

    rng = random.Random(0)
    topic = next(r for r in SPEC.rules if r.kind == "declines_off_topic")
    wrong = []
    for service in SERVICES:
        for attribute in ATTRIBUTES:
            for lang in ("en", "ru"):
                for wording in range(3):
                    q = question_text(service, attribute, lang, wording)
                    p = passage(service, attribute, lang, random_facts(rng, lang, "north"))
                    if is_off_topic(topic, CheckItem(q)) or not is_answerable(CheckItem(q, contexts=(p,)), 0.5):
                        wrong.append((q, p))
    assert not wrong, wrong[:3]
    assert len(SERVICES) >= 40
    assert all(is_off_topic(topic, CheckItem(q)) for qs in OFF_TOPIC.values() for q in qs)
    composed = [
        off_topic_request(r, s, lang)
        for lang in OFF_TOPIC_REQUESTS
        for r in range(len(OFF_TOPIC_REQUESTS[lang]))
        for s in range(len(OFF_TOPIC_SUBJECTS))
    ]
    assert len(set(composed)) == 2 * 8 * 20
    assert [q for q in composed if not is_off_topic(topic, CheckItem(q))] == []


def test_facts_are_drawn_per_row_and_copied_into_the_good_answer():
    """The same question comes with different facts, and the good answer holds the passage's."""
    rows = [r for r in generate_logs(600, seed=0) if r["label"] == "good" and r["kind"] == "answerable"]
    answers_by_question = collections.defaultdict(set)
    for r in rows:
        answers_by_question[r["question"]].add(r["answer"].split(", ", 1)[1])
        body = r["answer"].split(", ", 1)[1].rsplit(" ", 6)[0]
        assert any(body.lower()[:40] in c.lower() for c in r["contexts"]), r
    repeated = [a for a in answers_by_question.values() if len(a) > 1]
    assert len(repeated) >= 10  # the same wording, answered differently because its passage differs
    assert len({r["group"] for r in rows}) >= 120  # of 225 service attributes, from ~250 answerable rows


def test_demo_split_holds_out_whole_wording_groups():
    """The demo's split (20 % of rows by wording group): no held-out question, nor a rewording or
    translation of it, appears in training; the held-out part still mixes all kinds and languages."""
    logs = generate_logs(600, seed=0)
    train, held = split_by_group(logs, 0.2, seed=0)
    assert 0.15 * len(logs) <= len(held) <= 0.3 * len(logs) and len(train) + len(held) == len(logs)
    check = split_check(logs, {r["id"] for r in held})
    assert check["heldout_groups"] >= 30 and check["trained_groups"] >= 150
    assert check["same_wording_in_training"] == [] and check["same_group_in_training"] == []
    assert {r["kind"] for r in held} == set(KIND_WEIGHTS) and {r["lang"] for r in held} == {"en", "ru"}
    leaky = [{**r, "id": "x"} for r in held[:1]]  # the check does catch a held-out group that is also trained on
    assert split_check(logs + leaky, {r["id"] for r in held})["same_group_in_training"] == [held[0]["group"]]


def test_a_wording_belongs_to_one_group_only():
    """Holding out whole groups only prevents leaks if no wording (nor a near rewording, e.g. a
    fixed off-topic request that a composed one repeats) sits in two groups."""
    groups = collections.defaultdict(set)
    for seed in range(4):
        for r in generate_logs(800, seed=seed):
            groups[" ".join(r["question"].casefold().split())].add(r["group"])
    assert [q for q, g in groups.items() if len(g) > 1] == []
    cats = [
        r
        for r in generate_logs(2000, seed=0)
        if r["question"]
        in ("Tell me a joke about cats.", "Write me a poem about the sea.", "Can you write me a poem about the sea?")
    ]
    assert len({r["group"] for r in cats if "cats" in r["question"]}) == 1
    assert len({r["group"] for r in cats if "sea" in r["question"]}) == 1


def test_good_replies_fit_the_demo_generation_budget(smol_dir):
    """A correct Russian reply costs 3-4 times the tokens of an English one; the demo must let the
    model finish it, or a right answer is graded as missing its closing question."""
    from transformers import AutoTokenizer

    from tunelab.demos.helpdesk import EVAL_NEW_TOKENS

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    good = [r for r in generate_logs(600, seed=1) if r["label"] == "good"]
    longest = max(good, key=lambda r: len(tokenizer(r["answer"])["input_ids"]))
    assert longest["lang"] == "ru"
    assert len(tokenizer(longest["answer"])["input_ids"]) + 1 <= EVAL_NEW_TOKENS - 10, longest[
        "answer"
    ]  # +1: end of turn


@pytest.mark.slow
def test_helpdesk_demo_runs_logs_to_bake_to_adherence(tmp_path, tiny_model_dir, monkeypatch):
    """`tunelab demo --scenario helpdesk`, small (tiny model, 40 questions, 2 steps): logs and
    sets written, bake trained on the training groups only, and the adherence table over held-out
    questions for the three conditions, printed and saved."""
    import functools

    from typer.testing import CliRunner

    from tunelab import rundir
    from tunelab.cli import app
    from tunelab.demos import helpdesk as helpdesk_demo

    small = functools.partial(helpdesk_demo.run_helpdesk_demo, n_questions=40, max_steps=2, eval_questions=4)
    monkeypatch.setattr(helpdesk_demo, "run_helpdesk_demo", small)
    result = CliRunner().invoke(
        app, ["demo", "--scenario", "helpdesk", "--model", tiny_model_dir, "--seed", "3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "| **all rules** |" in result.output and "bar (all rules >= 80%" in result.output
    logs = rundir.read_jsonl(tmp_path / "logs.jsonl")
    assert f"read {len(logs)} = kept {len(logs)} + rejected 0" in result.output
    report = rundir.read_json(tmp_path / "adherence.json")
    assert (
        report["split_check"]["same_group_in_training"] == []
        and report["split_check"]["same_wording_in_training"] == []
    )
    trained = {r["question"] for r in rundir.read_jsonl(tmp_path / "logs_train.jsonl")}
    evaluated = {p["question"] for p in rundir.read_jsonl(tmp_path / "adherence_predictions.jsonl")}
    assert len(evaluated) == 4 and not evaluated & trained
    assert set(report["conditions"]) == {"base without prompt", "base with prompt", "baked without prompt"}
    assert report["prompt_tokens_saved_per_request"] > 300  # the whole prompt is no longer sent
    summary = rundir.read_json(tmp_path / "bake" / "summary.json")
    assert summary["steps"] == 2 and summary["model"] == tiny_model_dir  # --model reached the bake
    assert logs == generate_logs(40, seed=3)  # and --seed the generator
    assert {"sft.jsonl", "kto.jsonl", "dpo.jsonl"} <= {p.name for p in (tmp_path / "sets").iterdir()}
    sft_users = [r["messages"][0]["content"] for r in rundir.read_jsonl(tmp_path / "sets" / "sft.jsonl")]
    assert sft_users and not [
        q for q in evaluated for text in sft_users if text.endswith(f"Question: {q}")
    ]  # training groups only

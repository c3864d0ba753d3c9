"""Bake with a prompt as people write it: the examples reach the teacher as few-shot turns, every
sample is a target or a drop with its reason, and a teacher that cannot follow the prompt stops
bake before training with the routes that work."""

from __future__ import annotations

import contextlib
import json

import pytest

from tunelab.config import load
from tunelab.messages import Message
from tunelab.prompts.rules import CheckItem, parse_prompt
from tunelab.train import bake_teacher

SPEC = parse_prompt(
    {
        "prompt": "You are the help desk of a bike share. At most two sentences, end with a question.",
        "rules": [
            {"kind": "language", "expected": "en"},
            {"kind": "max_sentences", "n": 2},
            {"kind": "ends_with_question"},
        ],
        "examples": [{"question": "How do I unlock a bike?", "reply": "Scan the code on the bike. Anything else?"}],
    },
    "bikes.yaml",
)
QUESTIONS = [
    (f"q{i}", f"Question {i} about a bike?", CheckItem(question=f"Question {i} about a bike?")) for i in range(4)
]


class ScriptedTeacher:
    """The teacher interface of bake_teacher (sample(conversations, indices, seed) -> replies),
    answering from a script and recording what it was asked."""

    def __init__(self, reply):
        self.reply, self.asked = reply, []

    def sample(self, conversations, indices, seed, max_new_tokens=None, temperature=None):
        self.asked += list(conversations)
        return [self.reply(conv[-1].content, i) for conv, i in zip(conversations, indices)]


def config(tmp_path, **bake):
    return load(
        data={
            "data": {"train": "q.jsonl"},
            # one round of two samples a question unless a test asks for k
            "bake": {"targets": ["teacher"], "samples_per_question": 2, "passing_per_question": None, **bake},
            "output": {"dir": str(tmp_path)},
        }
    )


def test_the_teacher_gets_the_examples_as_few_shot_turns_and_every_sample_is_kept_or_dropped_by_reason(tmp_path):
    replies = {
        0: "You can ride until midnight.",  # repaired: a closing question from the built-in bank
        1: "Question: can I ride at night? ### Assistant: yes",  # labels cut, "can I ride..." left: dropped by sanity
        2: "Велосипеды работают круглосуточно.",  # wrong language: not repairable
        3: "Sure. Ride as long as you like. Bikes are everywhere. Enjoy",  # fragment dropped, cut, question added
    }
    teacher = ScriptedTeacher(lambda q, i: replies[int(q.split()[1])])
    samples, report = bake_teacher.sample_targets(
        teacher, SPEC, QUESTIONS, config(tmp_path), tmp_path / "samples.jsonl"
    )
    assert teacher.asked[0] == (
        Message("system", SPEC.prompt),
        Message("user", "How do I unlock a bike?"),
        Message("assistant", "Scan the code on the bike. Anything else?"),
        Message("user", "Question 0 about a bike?"),
    )
    assert report["usable"] + sum(report["dropped_by_reason"].values()) == report["sampled"] == 8
    assert report["dropped_by_reason"] == {"sanity: starts mid-word": 2, "not repairable: language": 2}
    assert report["pass_rate_by_rule"]["before_repair"]["ends_with_question"] == 0.0
    assert report["pass_rate_by_rule"]["after_repair"]["ends_with_question"] == pytest.approx(4 / 8)
    targets = {s["id"]: s["target"] for s in samples if s["target"]}
    assert targets["q0"].startswith("You can ride until midnight. ") and targets["q0"].endswith("?")
    assert targets["q3"].startswith("Sure. ") and targets["q3"].endswith("?")


def test_a_teacher_with_no_usable_replies_stops_bake_with_the_routes_that_work(tmp_path):
    # what the issue saw from a base model: template debris, no reply to learn from
    teacher = ScriptedTeacher(lambda q, i: f"Question: {q} ### Assistant: Question: {q} ### Assistant:")
    cfg = config(tmp_path, passing_per_question=2, max_samples_per_question=4)
    _, report = bake_teacher.sample_targets(teacher, SPEC, QUESTIONS, cfg, tmp_path / "samples.jsonl")
    assert report["kept"] == 0 and report["targets_per_question"] == 0
    with pytest.raises(bake_teacher.TeacherCannotFollow) as raised:
        bake_teacher.check_can_follow(report, cfg.bake, SPEC.path, tmp_path / "data_report.json")
    message = str(raised.value)
    assert message.startswith("bikes.yaml: the teacher cannot follow this prompt: 0 usable targets for 4 questions")
    assert "Rules it failed most: max_sentences failed 16 of 16 samples, ends_with_question failed 16 of 16" in message
    assert "sanity: echo of the question: 16" in message  # the labels cut off, the question is all that is left
    assert "`examples:`" in message and "bake.targets [logged, teacher]" in message and "endpoint" in message
    assert "bake.min_targets_per_question" in message
    # a prompt file that has examples already is not told to add some: a small teacher copies them
    with pytest.raises(bake_teacher.TeacherCannotFollow) as raised:
        bake_teacher.check_can_follow(report, cfg.bake, SPEC.path, tmp_path / "data_report.json", examples=1)
    assert "add up to five" not in str(raised.value) and "1 `examples:` were not enough" in str(raised.value)
    # the threshold is the config's: at 0 bake goes on whatever the teacher wrote
    bake_teacher.check_can_follow(report, config(tmp_path, min_targets_per_question=0).bake, SPEC.path, tmp_path)


@pytest.mark.slow
def test_bake_stops_before_training_when_the_tiny_teacher_writes_nothing_usable(tmp_path, tiny_model_dir):
    from tunelab import rundir
    from tunelab.train.run import run

    questions = rundir.write_jsonl(
        tmp_path / "questions.jsonl",
        [
            {"question": q}
            for q in (
                "Can I rent two bikes?",
                "Where do I return it?",
                "Is there a day pass?",
                "Do you have e-bikes?",
                "How much per hour?",
                "Can kids ride?",
            )
        ],
    )
    prompt = tmp_path / "prompt.yaml"
    prompt.write_text(
        "prompt: You are the help desk of a bike share.\n"
        "rules:\n  - kind: max_sentences\n    n: 2\n  - kind: ends_with_question\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    cfg = load(
        data={
            "model": {"name": tiny_model_dir},
            "data": {"train": str(questions), "val_fraction": 0},
            "train": {"recipe": "bake", "max_steps": 2, "batch_size": 2},
            "bake": {
                "system_prompt_file": str(prompt),
                "targets": ["teacher"],
                "samples_per_question": 1,
                "passing_per_question": None,
                "max_new_tokens": 6,
            },
            "logs": {"template": "{{ question }}"},
            "output": {"dir": str(out)},
        }
    )
    with pytest.raises(bake_teacher.TeacherCannotFollow, match="the teacher cannot follow this prompt"):
        run(cfg)  # a random 2-layer model writes token soup: nothing passes the rules and sanity
    report = json.loads((out / "data_report.json").read_text(encoding="utf-8"))
    assert report["teacher"]["sampled"] == 6 and report["teacher"]["kept"] < 3
    assert report["teacher"]["usable"] + sum(report["teacher"]["dropped_by_reason"].values()) == 6
    assert not (out / "adapter").exists() and not (out / "summary.json").exists()


def test_a_base_model_teacher_is_shown_one_plain_document_without_end_of_sequence_tokens(
    tmp_path, tiny_model_dir, monkeypatch
):
    from tunelab.generation import replies
    from tunelab.models.load import load_model

    model, tokenizer = load_model(tiny_model_dir)
    asked = []
    monkeypatch.setattr(replies, "generate_replies", lambda m, t, prompts, s, progress: asked.extend(prompts) or [])
    conversation = bake_teacher.teacher_messages(
        SPEC, "Can I ride at night?", [("How do I unlock a bike?", "Scan it.")]
    )
    teacher = bake_teacher.LocalTeacher(model, tokenizer, config(tmp_path), lambda: contextlib.nullcontext())
    teacher.sample([conversation], [0], seed=0)  # an instruct model: its own chat template
    assert asked[-1] == replies.render_prompts(tokenizer, [conversation])[0]
    tokenizer.chat_template = None  # a base model: no chat template of its own
    teacher.sample([conversation], [0], seed=0)
    text = tokenizer.decode(asked[-1], skip_special_tokens=False)
    assert tokenizer.eos_token not in text
    assert text.endswith(
        "### User:\nHow do I unlock a bike?\n### Assistant:\nScan it.\n\n"
        "### User:\nCan I ride at night?\n### Assistant:\n"
    )
    assert SPEC.prompt in text

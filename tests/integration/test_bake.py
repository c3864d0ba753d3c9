"""recipe bake: held-out split, aligned reply tokens, the distillation loss, and a tiny end-to-end run."""

from __future__ import annotations

import json
import os

import pytest
import torch

from tunelab.data.logs import LogRecord
from tunelab.prompts.rules import PromptSpec
from tunelab.train.recipes.bake import BakeCollator, build_examples, question_groups, reply_kl, split_by_question

QUESTIONS = [
    "When is the library open?",
    "What is the tuition payment deadline?",
    "Who assigns dormitory rooms?",
    "How can I request an exam retake?",
    "Where can I replace a lost student card?",
    "How do staff request annual leave?",
    "Where can I reset my account password?",
    "Who receives the academic scholarship?",
    "When must I submit my master's thesis?",
    "Когда открыта библиотека?",
]


def test_held_out_questions_are_never_trained_on():
    records = [
        LogRecord(id=f"{i}", question=QUESTIONS[i % 10], answer="a", label=True, tags={"role": "x"}) for i in range(60)
    ]
    train, held = split_by_question(records, 0.2, seed=0)
    assert len(train) + len(held) == 60 and held
    assert not {r.question for r in train} & {r.question for r in held}
    assert len({r.question for r in held}) == 2


def test_rewordings_and_scrubbed_variants_stay_on_one_side():
    groups = question_groups(
        [
            "What is the tuition payment deadline?",
            "By when must the tuition payment be made?",
            "When is the library open? My email is [EMAIL] and my phone is [PHONE].",
            "When is the library open?",
            "Who will win the football match tonight?",
        ]
    )
    assert sorted(map(len, groups)) == [1, 2, 2]
    records = [
        LogRecord(id=f"{i}-{j}", question=q, answer="a", label=True)
        for i, q in enumerate(
            [
                "When is the library open?",
                "Until what time is the library open on weekdays?",
                "When is the library open? My email is [EMAIL].",
                *QUESTIONS[1:9],
            ]
        )
        for j in range(3)
    ]
    library_held = 0
    for seed in range(8):
        train, held = split_by_question(records, 0.2, seed=seed)
        sides = {"held" if r in held else "train" for r in records if "library" in r.question}
        assert held and len(sides) == 1, seed
        library_held += sides == {"held"}
    assert 0 < library_held < 8  # the library group does get held out, always whole


def test_one_huge_group_of_questions_is_not_held_out_whole():
    """Questions that share words transitively form one big group; holding it out would take far
    more than the asked fraction, so smaller groups are held out instead."""
    big = [
        f"Where is the library room {n} for the {w} course?"
        for n, w in enumerate(["maths", "physics", "history", "music", "law", "art", "biology", "chemistry"])
    ]
    records = [LogRecord(id=f"{i}", question=q, answer="a", label=True) for i, q in enumerate(big + QUESTIONS[1:9])]
    assert max(map(len, question_groups([r.question.lower() for r in records]))) >= 8
    for seed in range(6):
        train, held = split_by_question(records, 0.2, seed=seed)
        assert 1 <= len(held) <= 5 and not any("library room" in r.question for r in held), seed


def test_reply_kl_is_zero_for_equal_distributions_and_positive_otherwise():
    torch.manual_seed(0)
    # student: 1 prompt token + 3 reply tokens; teacher: 3 prompt tokens + the same 3 reply tokens
    s_labels = torch.tensor([[-100, 5, 6, 7]])
    t_labels = torch.tensor([[-100, -100, -100, 5, 6, 7]])
    reply_logits = torch.randn(3, 11)
    s_logits = torch.cat([reply_logits, torch.randn(1, 11)]).unsqueeze(0)  # positions 0..2 predict the reply
    t_logits = torch.cat([torch.randn(2, 11), reply_logits, torch.randn(1, 11)]).unsqueeze(0)
    assert reply_kl(s_logits, s_labels, t_logits, t_labels).item() == pytest.approx(0.0, abs=1e-6)
    other = t_logits.clone()
    other[0, 3] += torch.randn(11) * 3
    assert reply_kl(s_logits, s_labels, other, t_labels).item() > 0.01


def test_teacher_and_student_views_hold_the_same_reply_tokens(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    spec = PromptSpec(name="p", prompt="You are a helpdesk. Always greet the user. " * 5)
    rows, skipped = build_examples(
        tokenizer,
        [("User: role=student\nQuestion: Когда открыта библиотека?", "Уважаемый студент, с 8:00. Что-то ещё?")],
        spec,
        True,
        512,
    )
    assert skipped == {"too_long": 0, "reply_tokens_differ": 0}
    row = rows[0]
    student = [t for t in row["labels"] if t != -100]
    teacher = [t for t in row["teacher_labels"] if t != -100]
    assert student == teacher and student
    assert len(row["teacher_input_ids"]) > len(row["input_ids"]) + 40  # the prompt is only on the teacher side
    assert "Уважаемый студент" in tokenizer.decode(student)
    batch = BakeCollator(tokenizer.pad_token_id)(
        [row, {**row, "input_ids": row["input_ids"][:-2], "labels": row["labels"][:-2]}]
    )
    assert batch["input_ids"].shape == batch["attention_mask"].shape and batch["attention_mask"][1, -1] == 0


@pytest.mark.slow
def test_bake_end_to_end_on_a_tiny_model(tmp_path, tiny_model_dir):
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs
    from tunelab.models.load import load_model
    from tunelab.train.run import run

    logs = rundir.write_jsonl(tmp_path / "logs.jsonl", generate_logs(24, seed=2))
    rundir.write_text(tmp_path / "prompt.yaml", PROMPT_YAML)
    out = tmp_path / "run"
    cfg = load(
        data={
            "model": {"name": tiny_model_dir},
            "data": {"train": str(logs), "val_fraction": 0.25},
            "train": {
                "recipe": "bake",
                "max_steps": 2,
                "batch_size": 2,
                "logging_steps": 1,
                "eval_steps": 2,
                "save_steps": 2,
            },
            "bake": {
                "system_prompt_file": str(tmp_path / "prompt.yaml"),
                "targets": ["logged", "teacher", "distill"],
                "samples_per_question": 1,
                "passing_per_question": None,  # one round: one sample a question
                "max_teacher_questions": 2,
                "max_new_tokens": 4,
            },
            "output": {"dir": str(out)},
        }
    )
    summary = run(cfg)
    assert summary["steps"] == 2 and summary["teacher"]["sampled"] == 2
    assert {
        "config.yaml",
        "data_report.json",
        "metrics.jsonl",
        "adapter",
        "summary.json",
        "heldout.jsonl",
        "prompt.yaml",
        "teacher_samples.jsonl",
    } <= set(os.listdir(out))
    report = json.loads((out / "data_report.json").read_text(encoding="utf-8"))
    assert report["read"] == report["kept"] + report["rejected"]
    assert report["train_records"] + report["heldout_records"] == report["after_hygiene"]
    held = {r["question"] for r in rundir.read_jsonl(out / "heldout.jsonl")}
    trained = {r["question"] for r in rundir.read_jsonl(logs)} - held
    assert held and trained and not held & trained
    assert [r["name"] for r in rundir.read_metrics(out, name="loss")]
    model, _ = load_model(str(out))
    assert type(model).__name__ == "PeftModelForCausalLM"
    merged, _ = load_model(str(out), merge=True)  # what adherence times: no adapter layers left
    assert not any("lora" in name for name, _ in merged.named_modules())


@pytest.mark.slow
def test_bake_resumes_from_the_last_complete_checkpoint(tmp_path, tiny_model_dir):
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs
    from tunelab.train.run import run

    logs = rundir.write_jsonl(tmp_path / "logs.jsonl", generate_logs(24, seed=2))
    rundir.write_text(tmp_path / "prompt.yaml", PROMPT_YAML)
    out = tmp_path / "run"

    def config(steps):
        return load(
            data={
                "model": {"name": tiny_model_dir},
                "data": {"train": str(logs), "val_fraction": 0.25},
                "train": {
                    "recipe": "bake",
                    "max_steps": steps,
                    "batch_size": 2,
                    "logging_steps": 1,
                    "eval_steps": 1,
                    "save_steps": 1,
                },
                "bake": {
                    "system_prompt_file": str(tmp_path / "prompt.yaml"),
                    "targets": ["logged", "teacher"],
                    "samples_per_question": 1,
                    "max_teacher_questions": 2,
                    "max_new_tokens": 4,
                },
                "output": {"dir": str(out)},
            }
        )

    run(config(2))
    samples = (out / "teacher_samples.jsonl").read_text(encoding="utf-8")
    with pytest.raises(FileExistsError):
        run(config(4))
    summary = run(config(4), resume=True)
    assert summary["steps"] == 4
    assert (out / "teacher_samples.jsonl").read_text(encoding="utf-8") == samples  # same data under the checkpoint
    steps = [r["step"] for r in rundir.read_metrics(out, name="loss")]
    assert steps == [1, 2, 3, 4]  # continued at step 3, nothing logged twice


def test_the_teacher_samples_in_bf16_where_the_cpu_has_it_and_training_stays_fp32(
    tmp_path, tiny_model_dir, monkeypatch
):
    import torch

    from tunelab.config import load
    from tunelab.models.hardware import AUTO_ENV
    from tunelab.train.recipes.bake import _fast_sampler

    def cfg(**bake):
        return load(
            data={
                "model": {"name": tiny_model_dir},
                "data": {"train": "q.jsonl"},
                "train": {"recipe": "bake"},
                "bake": {"targets": ["teacher"], **bake},
                "output": {"dir": str(tmp_path)},
            }
        )

    monkeypatch.setenv(AUTO_ENV, "bf16_base")  # a CPU with native bf16, as the probe would find it
    sampler = _fast_sampler(cfg())
    assert sampler is not None and next(sampler.parameters()).dtype == torch.bfloat16
    assert _fast_sampler(cfg(targets=["logged"])) is None  # nothing to sample
    monkeypatch.setenv(AUTO_ENV, "fp32")  # an AVX2-only CPU: the training model samples, in fp32
    assert _fast_sampler(cfg()) is None


def test_a_prompts_few_targets_are_trained_for_bake_min_steps(tmp_path):
    from tunelab.config import load
    from tunelab.train.recipes.bake import with_min_steps

    def cfg(**train):
        return load(
            data={
                "data": {"train": "q.jsonl"},
                "train": {"recipe": "bake", "batch_size": 1, **train},
                "bake": {"targets": ["teacher"]},
                "output": {"dir": "run"},
            }
        )

    assert with_min_steps(cfg(), 80).train.max_steps == 400  # 80 targets: five passes, not one
    assert with_min_steps(cfg(epochs=6), 80).train.max_steps is None  # 480 steps already
    assert with_min_steps(cfg(), 555).train.max_steps is None  # the helpdesk logs: one pass is enough
    assert with_min_steps(cfg(max_steps=50), 80).train.max_steps == 50  # as configured
    assert with_min_steps(cfg(batch_size=8), 80).train.max_steps == 400  # 10 steps a pass
    c = cfg()
    c.bake.min_steps = 0
    assert with_min_steps(c, 80).train.max_steps is None
    # the studio's progress bar counts the same steps bake trains (data_report.json's examples)
    from tunelab import rundir
    from tunelab.studio.runner import total_steps

    rundir.write_json(tmp_path / "data_report.json", {"examples": 80})
    assert total_steps(cfg(), tmp_path) == with_min_steps(cfg(), 80).train.max_steps == 400
    rundir.write_json(tmp_path / "data_report.json", {"examples": 555})
    assert total_steps(cfg(), tmp_path) == 555

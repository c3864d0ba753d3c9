"""Extra bake inputs: a question file and teacher paraphrases, never leaking held-out questions."""

from __future__ import annotations

import json

import pytest

from tunelab import rundir
from tunelab.config import ConfigError, LogsConfig, load
from tunelab.data.logs import LogRecord
from tunelab.train.bake_inputs import clean_paraphrase, drop_heldout, paraphrase, read_question_file


def rec(i: str, question: str, answer: str = "", label: bool = False) -> LogRecord:
    return LogRecord(
        id=i,
        question=question,
        answer=answer,
        label=label,
        tags={"role": "student"},
        contexts=("The library opens at 8:00.",),
    )


@pytest.mark.parametrize(
    "original, reply, expected",
    [
        ("When does the library open?", "At what time does the library open?", "At what time does the library open?"),
        (
            "When does the library open?",
            'Rewritten question: "What are the library\'s opening hours?"\nHope this helps!',
            "What are the library's opening hours?",
        ),
        (
            "Когда открыта библиотека?",
            "Вопрос: В какое время работает библиотека?",
            "В какое время работает библиотека?",
        ),
        ("When does the library open?", "when does the   library open?", None),  # unchanged
        ("When does the library open?", "The library opens at 8.", None),  # an answer, not a question
        ("When does the library open?", "What time? And where?", None),  # two questions
        ("When does the library open?", "", None),
        ("Когда работает бассейн?", "Who builds the physics program?", None),  # another language
        ("When does the library open?", "Which business decides to bake cookies?", None),  # about something else
    ],
)
def test_clean_paraphrase(original, reply, expected):
    assert clean_paraphrase(original, reply) == expected


def test_drop_heldout_removes_held_questions_and_their_rewordings():
    held = [rec("h", "What is the tuition payment deadline?")]
    candidates = [
        rec("a", "what is the tuition payment deadline?"),
        rec("b", "By when is the tuition payment deadline?"),
        rec("c", "Where is the gym?"),
    ]
    kept, dropped = drop_heldout(candidates, held)
    assert [r.id for r in kept] == ["c"] and dropped == 2
    assert drop_heldout(candidates, []) == (candidates, 0)


def test_question_file_needs_only_questions_and_reports_bad_rows(tmp_path):
    path = tmp_path / "questions.jsonl"
    rows = [
        {"question": "Where is the gym?", "role": "staff", "contexts": ["The gym is in building C."]},
        {"question": "Write to me at ivan.petrov@example.com: when is the exam?"},
        {"role": "student"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    records, report = read_question_file(str(path), LogsConfig(), tmp_path / "rejected")
    assert (report["read"], report["kept"], report["rejected"]) == (4, 2, 2)
    rejected_rows = rundir.read_jsonl(report["rejected_file"])
    assert [r["source"] for r in rejected_rows] == [f"{path}:3", f"{path}:4"]
    assert rejected_rows[0]["field"] == "question"
    assert (
        records[0].tags == {"role": "staff"}
        and records[0].contexts == ("The gym is in building C.",)
        and not records[0].label
    )
    assert "[EMAIL]" in records[1].question  # the logs' hygiene applies to the question file too


def test_question_file_without_teacher_targets_is_a_config_error():
    for targets in (["logged"], ["logged", "distill"]):  # distill with logged answers distils over those answers only
        with pytest.raises(ConfigError, match="questions_file"):
            load(data={"data": {"train": "logs.jsonl"}, "bake": {"questions_file": "q.jsonl", "targets": targets}})
    for targets in (["teacher"], ["distill"], ["logged", "teacher", "distill"]):
        load(data={"data": {"train": "logs.jsonl"}, "bake": {"questions_file": "q.jsonl", "targets": targets}})


def test_paraphrases_keep_their_originals_tags_contexts_and_answer(smol_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    model = AutoModelForCausalLM.from_pretrained(smol_dir)
    records = [
        rec("1", "When does the library open?", "It opens at 8:00. Anything else?", True),
        rec("2", "When does the library open?", "At 8:00, see you there! Anything else?", True),
        rec("3", "How do I reset my password?", "Use the portal. Anything else?", True),
    ]
    config = load(data={"data": {"train": "logs.jsonl"}})
    out, stats = paraphrase(model, tokenizer, records, 3, config)
    assert stats["asked"] == 6  # two distinct questions, three samples each
    assert (
        stats["unusable"] + stats["duplicate"] + stats["kept_wordings"] == stats["asked"] and stats["kept_wordings"] > 0
    )
    by_original = {"1": records[0], "2": records[1], "3": records[2]}
    for r in out:
        original = by_original[r.id.split("~")[0]]
        assert r.question.endswith("?") and r.question.casefold() != original.question.casefold()
        assert (r.answer, r.label, r.tags, r.contexts) == (
            original.answer,
            original.label,
            original.tags,
            original.contexts,
        )
    # both records of the shared question get the same rewrites
    assert sorted(r.question for r in out if r.id.startswith("1~")) == sorted(
        r.question for r in out if r.id.startswith("2~")
    )


@pytest.mark.slow
def test_bake_trains_on_paraphrases_and_file_questions_and_resumes_on_the_same_ones(tmp_path, smol_dir):
    from tunelab import rundir
    from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs
    from tunelab.train.run import run

    logs = rundir.write_jsonl(tmp_path / "logs.jsonl", generate_logs(10, seed=4))
    questions = tmp_path / "questions.jsonl"
    rows = rundir.read_jsonl(logs)
    rundir.write_jsonl(
        questions,
        [
            {"question": "Where is the chess club?", "role": "student"},
            {"question": "Когда работает бассейн?", "role": "staff"},
            {"role": "applicant"},
        ],
    )  # no question: rejected, written out
    rundir.write_text(tmp_path / "prompt.yaml", PROMPT_YAML)
    out = tmp_path / "run"

    def config(steps):
        return load(
            data={
                "model": {"name": smol_dir},
                "data": {"train": str(logs), "val_fraction": 0.2},
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
                    "paraphrases": 2,
                    "questions_file": str(questions),
                    "samples_per_question": 1,
                    "max_new_tokens": 8,
                },
                "output": {"dir": str(out)},
            }
        )

    run(config(1))
    report = rundir.read_json(out / "data_report.json")
    para, qfile = report["paraphrases"], report["questions_file"]
    assert para["unusable"] + para["duplicate"] + para["kept_wordings"] == para["asked"] and para["records"] > 0
    assert (
        report["train_records"] + report["heldout_records"] == report["after_hygiene"]
        and report["paraphrased_records"] == para["records"]
    )
    assert (qfile["read"], qfile["kept"], qfile["rejected"]) == (3, 2, 1) and qfile["used"] + qfile[
        "dropped_heldout"
    ] == 2
    assert rundir.read_jsonl(qfile["rejected_file"])[0]["field"] == "question"
    held = {r["question"] for r in rundir.read_jsonl(out / "heldout.jsonl")}
    saved = rundir.read_jsonl(out / "paraphrases.jsonl")
    assert len(saved) == para["records"] and not held & {r["question"] for r in saved}
    trained_ids = {r["id"] for r in rows} - {r["id"] for r in rundir.read_jsonl(out / "heldout.jsonl")}
    assert {r["of"] for r in saved} <= trained_ids  # rewrites of training questions only
    sampled = {s["question"] for s in rundir.read_jsonl(out / "teacher_samples.jsonl")}
    assert {r["question"] for r in saved} <= sampled  # the teacher answered the rewrites ...
    assert (
        len(sampled & {"Where is the chess club?", "Когда работает бассейн?"}) == qfile["used"]
    )  # ... and the file's questions
    before = (out / "paraphrases.jsonl").read_text(encoding="utf-8")
    summary = run(config(2), resume=True)
    assert summary["steps"] == 2 and (out / "paraphrases.jsonl").read_text(encoding="utf-8") == before

"""Extra bake inputs: a question file and teacher paraphrases, never leaking held-out questions."""

from __future__ import annotations

import json

import pytest

from tunelab.config import ConfigError, load
from tunelab.data.logs import LogRecord
from tunelab.train.bake_inputs import clean_paraphrase, drop_heldout, paraphrase, read_question_file


def rec(i: str, question: str, answer: str = "", label: bool = False) -> LogRecord:
    return LogRecord(id=i, question=question, answer=answer, label=label, tags={"role": "student"}, contexts=("The library opens at 8:00.",))


@pytest.mark.parametrize("original, reply, expected", [
    ("When does the library open?", "At what time does the library open?", "At what time does the library open?"),
    ("When does the library open?", "Rewritten question: \"What are the library's opening hours?\"\nHope this helps!", "What are the library's opening hours?"),
    ("Когда открыта библиотека?", "Вопрос: В какое время работает библиотека?", "В какое время работает библиотека?"),
    ("When does the library open?", "when does the   library open?", None),  # unchanged
    ("When does the library open?", "The library opens at 8.", None),  # an answer, not a question
    ("When does the library open?", "What time? And where?", None),  # two questions
    ("When does the library open?", "", None),
])
def test_clean_paraphrase(original, reply, expected):
    assert clean_paraphrase(original, reply) == expected


def test_drop_heldout_removes_held_questions_and_their_rewordings():
    held = [rec("h", "What is the tuition payment deadline?")]
    candidates = [rec("a", "what is the tuition payment deadline?"), rec("b", "By when is the tuition payment deadline?"),
                  rec("c", "Where is the gym?")]
    kept, dropped = drop_heldout(candidates, held)
    assert [r.id for r in kept] == ["c"] and dropped == 2
    assert drop_heldout(candidates, []) == (candidates, 0)


def test_question_file_needs_only_questions_and_reports_bad_rows(tmp_path):
    path = tmp_path / "questions.jsonl"
    rows = [{"question": "Where is the gym?", "role": "staff", "contexts": ["The gym is in building C."]},
            {"question": "Write to me at ivan.petrov@example.com: when is the exam?"},
            {"role": "student"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n", encoding="utf-8")
    config = load(data={"data": {"train": "logs.jsonl"}, "train": {"recipe": "bake"},
                        "bake": {"system_prompt_file": "p.yaml", "questions_file": str(path), "targets": ["teacher"]}})
    records, report = read_question_file(config)
    assert (report["read"], report["kept"], report["rejected"]) == (4, 2, 2)
    assert [r["source"] for r in report["rejected_rows"]] == [f"{path}:3", f"{path}:4"]
    assert report["rejected_rows"][0]["field"] == "question"
    assert records[0].tags == {"role": "staff"} and records[0].contexts == ("The gym is in building C.",) and not records[0].label
    assert "[EMAIL]" in records[1].question  # the logs' hygiene applies to the question file too


def test_question_file_without_teacher_targets_is_a_config_error():
    with pytest.raises(ConfigError, match="questions_file"):
        load(data={"data": {"train": "logs.jsonl"}, "bake": {"questions_file": "q.jsonl", "targets": ["logged"]}})


def test_paraphrases_keep_their_originals_tags_contexts_and_answer(smol_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    model = AutoModelForCausalLM.from_pretrained(smol_dir)
    records = [rec("1", "When does the library open?", "It opens at 8:00. Anything else?", True),
               rec("2", "When does the library open?", "At 8:00, see you there! Anything else?", True),
               rec("3", "How do I reset my password?", "Use the portal. Anything else?", True)]
    config = load(data={"data": {"train": "logs.jsonl"}, "bake": {"paraphrases": 3}})
    out, stats = paraphrase(model, tokenizer, records, 3, config)
    assert stats["asked"] == 6  # two distinct questions, three samples each
    assert stats["unusable"] + stats["duplicate"] + stats["kept_wordings"] == stats["asked"]
    by_original = {"1": records[0], "2": records[1], "3": records[2]}
    for r in out:
        original = by_original[r.id.split("~")[0]]
        assert r.question.endswith("?") and r.question.casefold() != original.question.casefold()
        assert (r.answer, r.label, r.tags, r.contexts) == (original.answer, original.label, original.tags, original.contexts)
    # both records of the shared question get the same rewrites
    assert sorted(r.question for r in out if r.id.startswith("1~")) == sorted(r.question for r in out if r.id.startswith("2~"))

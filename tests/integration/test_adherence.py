"""Adherence evaluation: per-rule pass rates per condition, the bar, the table, a tiny real run."""

from __future__ import annotations

import pytest
import yaml

from tunelab.data.logs import LogRecord
from tunelab.data.synth.helpdesk import PROMPT_YAML
from tunelab.eval.adherence import Condition, evaluate, meets_bar, summarise, table
from tunelab.prompts.rules import parse_prompt

SPEC = parse_prompt(
    {
        "prompt": "Be brief and end with a question.",
        "rules": [{"kind": "max_sentences", "n": 1}, {"kind": "ends_with_question"}],
    }
)


def row(s1, q):
    return {"rules": {"max_sentences": s1, "ends_with_question": q}, "passed_all": bool(s1 and q)}


def report(prompted_rows, baked_rows):
    conds = {
        "base with prompt": {
            "with_prompt": True,
            **summarise(SPEC, prompted_rows),
            "prompt_tokens": 50,
            "latency_s": 0.2,
            "prefill_s": 0.05,
        },
        "baked without prompt": {
            "with_prompt": False,
            **summarise(SPEC, baked_rows),
            "prompt_tokens": 10,
            "latency_s": 0.1,
            "prefill_s": 0.01,
        },
    }
    return {"conditions": conds}


def test_summary_pass_rates_and_the_bar():
    prompted = [row(True, False), row(True, True), row(False, False), row(True, None)]
    s = summarise(SPEC, prompted)
    assert s["rules"]["max_sentences"] == {"pass_rate": 0.75, "applicable": 4}
    assert s["rules"]["ends_with_question"] == {"pass_rate": 1 / 3, "applicable": 3}  # None = not applicable
    assert s["overall"] == 0.25
    good = [row(True, True)] * 9 + [row(True, False)]
    assert meets_bar(report(prompted, good))["met"]
    short = [row(True, True)] * 7 + [row(False, False)] * 3
    bar = meets_bar(report(prompted, short))
    assert not bar["met"] and not bar["overall_ok"] and bar["rules_worse_than_prompted"] == ["max_sentences"]
    text = table(report(prompted, good))
    assert "| ends_with_question | 33% (3) | 90% (10) |" in text and "| **all rules** | **25%** | **90%** |" in text


@pytest.mark.slow
def test_evaluate_runs_every_condition_on_distinct_questions(tmp_path, tiny_model_dir):
    spec = parse_prompt(yaml.safe_load(PROMPT_YAML))
    records = [
        LogRecord(
            id=str(i),
            question=q,
            answer="x",
            label=True,
            tags={"role": "student"},
            contexts=("The library is open from 8:00.",),
        )
        for i, q in enumerate(["When is the library open?", "Когда открыта библиотека?", "When is the library open?"])
    ]
    conds = [
        Condition("base without prompt", tiny_model_dir, False),
        Condition("base with prompt", tiny_model_dir, True),
    ]
    result = evaluate(spec, records, conds, out_dir=tmp_path, max_new_tokens=3)
    assert result["questions"] == 2
    with_p, without = result["conditions"]["base with prompt"], result["conditions"]["base without prompt"]
    assert with_p["prompt_tokens"] > without["prompt_tokens"] + 200
    assert set(with_p["rules"]) == {r.id for r in spec.rules}
    assert (tmp_path / "adherence.json").exists()
    assert len((tmp_path / "adherence_predictions.jsonl").read_text(encoding="utf-8").splitlines()) == 4

"""`tunelab demo --scenario helpdesk`: feedback logs -> bake -> adherence table.

1. Writes the built-in university-helpdesk prompt (prompt.yaml) and synthetic English/Russian
   logs (logs.jsonl) into `out`.
2. Reads the logs (with hygiene), writes statistics and the SFT/KTO/DPO sets to `out/sets/`.
3. Bakes the prompt into SmolLM2-135M-Instruct (recipe bake) in `out/bake/`.
4. Measures adherence on the held-out questions for the base model without and with the prompt
   and the baked model without it; writes adherence.json, adherence.md and the predictions.
The held-out questions are whole groups of reworded questions (bake.split_by_question);
split_check confirms from the generator's topic labels that no held-out topic was trained on.
Defaults: 300 logged questions, targets=logged (the 135M teacher, sampled with the prompt, passed
all rules in 0 of 8 samples, so teacher targets only cost time), 48 LoRA steps of 4 examples at
learning rate 1e-3, 40 held-out questions: 26 minutes wall, 17 minutes of CPU, on one thread of a
shared 2-core machine. With these settings the baked model does NOT yet reach the issue's bar on
topics it never saw (18% all rules; see README), it over-declines unseen questions.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import load
from tunelab.data.hygiene import clean
from tunelab.data.logs import LogRecord, read_logs
from tunelab.data.preference import write_sets
from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs
from tunelab.eval import adherence
from tunelab.prompts import load_prompt

log = logging.getLogger(__name__)


def bake_config(out: Path, model: str, max_steps: int, teacher_questions: int, targets: list[str], samples: int = 1,
                learning_rate: float = 5e-4) -> dict[str, Any]:
    return {
        "model": {"name": model},
        "data": {"train": str(out / "logs.jsonl"), "val_fraction": 0.2, "max_length": 1024},
        "train": {"recipe": "bake", "max_steps": max_steps, "batch_size": 4, "learning_rate": learning_rate, "logging_steps": 5,
                  "eval_steps": max_steps, "save_steps": max_steps, "warmup_ratio": 0.05,
                  "group_by_length": True},  # less padding: replies in Russian run to twice the tokens
        "bake": {"system_prompt_file": str(out / "prompt.yaml"), "targets": targets, "samples_per_question": samples,
                 "max_teacher_questions": teacher_questions, "max_new_tokens": 80},
        "output": {"dir": str(out / "bake")},
    }


def split_check(logs: list[dict[str, Any]], held_ids: set[str]) -> dict[str, Any]:
    """How the held-out questions relate to the trained ones, using what only the generator knows:
    the topic and language of each question. A held-out question whose topic and language also
    occur in training would have a reworded twin there."""
    from tunelab.train.bake import _norm

    held = [r for r in logs if r["id"] in held_ids]
    train = [r for r in logs if r["id"] not in held_ids]
    trained_q = {_norm(r["question"]) for r in train}
    trained_topics = {(r["topic"], r["lang"]) for r in train if r["topic"]}
    return {"heldout_questions": len({_norm(r["question"]) for r in held}), "trained_questions": len(trained_q),
            "same_wording_in_training": sorted({r["question"] for r in held if _norm(r["question"]) in trained_q}),
            "same_topic_and_language_in_training": sorted({f"{r['topic']}/{r['lang']}" for r in held if (r["topic"], r["lang"]) in trained_topics})}


def run_helpdesk_demo(out: Path, *, model: str = "smollm2-135m", n_questions: int = 300, max_steps: int = 48,
                      teacher_questions: int = 8, eval_questions: int = 40, targets: tuple[str, ...] = ("logged",), seed: int = 0,
                      learning_rate: float = 1e-3) -> dict[str, Any]:
    from tunelab.train import bake

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_text(out / "prompt.yaml", PROMPT_YAML)
    logs = generate_logs(n_questions, seed=seed)
    rundir.write_jsonl(out / "logs.jsonl", logs)
    config = load(data=bake_config(out, model, max_steps, teacher_questions, list(targets), learning_rate=learning_rate))
    read = read_logs(out / "logs.jsonl", config.logs)
    records, hygiene = clean(read.records, config.logs.hygiene)
    sets = write_sets(records, out / "sets", config.logs.template)
    summary = bake.train(config)
    spec = load_prompt(out / "prompt.yaml")
    held = [LogRecord(id=r["id"], question=r["question"], answer=r["answer"], label=r["label"] == "good",
                      tags={t: r[t] for t in config.logs.columns.tags if r.get(t)}, contexts=tuple(r["contexts"]))
            for r in rundir.read_jsonl(out / "bake" / bake.HELDOUT)]
    leaks = split_check(logs, {r.id for r in held})
    log.info("held-out split: %s", leaks)
    report = adherence.evaluate(spec, held, adherence.default_conditions(model, str(out / "bake")), out_dir=out,
                                template=config.logs.template, max_questions=eval_questions)
    report["bar"] = adherence.meets_bar(report)
    report["split_check"] = leaks
    markdown = adherence.table(report)
    rundir.write_json(out / adherence.SCORES, report)
    rundir.write_text(out / "adherence.md", markdown + "\n")
    return {"out": str(out), "logs": {"read": read.n_read, "kept": len(read.records), "rejected": len(read.rejected), "hygiene": hygiene.to_dict()},
            "sets": {k: v for k, v in sets.items() if k != "stats"}, "stats": sets["stats"], "bake": summary, "adherence": report, "table": markdown}

"""`tunelab demo --scenario helpdesk`: feedback logs -> bake -> adherence table.

1. Writes the built-in university-helpdesk prompt (prompt.yaml) and synthetic English/Russian
   logs (logs.jsonl) into `out`.
2. Reads the logs (with hygiene), writes statistics and the SFT/KTO/DPO sets to `out/sets/`.
3. Bakes the prompt into SmolLM2-135M-Instruct (recipe bake) in `out/bake/`.
4. Measures adherence on the held-out questions for the base model without and with the prompt
   and the baked model without it; writes adherence.json, adherence.md and the predictions.
The defaults are sized for a small CPU budget: 30 LoRA steps of 4 examples, 8 teacher samples, 24
held-out questions (about 10 minutes on two free cores; much longer when the cores are shared).
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


def bake_config(out: Path, model: str, max_steps: int, teacher_questions: int, targets: list[str], samples: int = 1) -> dict[str, Any]:
    return {
        "model": {"name": model},
        "data": {"train": str(out / "logs.jsonl"), "val_fraction": 0.2, "max_length": 1024},
        "train": {"recipe": "bake", "max_steps": max_steps, "batch_size": 4, "learning_rate": 5e-4, "logging_steps": 5,
                  "eval_steps": max_steps, "save_steps": max_steps, "warmup_ratio": 0.05},
        "bake": {"system_prompt_file": str(out / "prompt.yaml"), "targets": targets, "samples_per_question": samples,
                 "max_teacher_questions": teacher_questions, "max_new_tokens": 80},
        "output": {"dir": str(out / "bake")},
    }


def run_helpdesk_demo(out: Path, *, model: str = "smollm2-135m", n_questions: int = 300, max_steps: int = 30,
                      teacher_questions: int = 8, eval_questions: int = 24, targets: tuple[str, ...] = ("logged", "teacher"), seed: int = 0) -> dict[str, Any]:
    from tunelab.train import bake

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_text(out / "prompt.yaml", PROMPT_YAML)
    rundir.write_jsonl(out / "logs.jsonl", generate_logs(n_questions, seed=seed))
    config = load(data=bake_config(out, model, max_steps, teacher_questions, list(targets)))
    read = read_logs(out / "logs.jsonl", config.logs)
    records, hygiene = clean(read.records, config.logs.hygiene)
    sets = write_sets(records, out / "sets", config.logs.template)
    summary = bake.train(config)
    spec = load_prompt(out / "prompt.yaml")
    held = [LogRecord(id=r["id"], question=r["question"], answer=r["answer"], label=r["label"] == "good",
                      tags={t: r[t] for t in config.logs.columns.tags if r.get(t)}, contexts=tuple(r["contexts"]))
            for r in rundir.read_jsonl(out / "bake" / bake.HELDOUT)]
    report = adherence.evaluate(spec, held, adherence.default_conditions(model, str(out / "bake")), out_dir=out,
                                template=config.logs.template, max_questions=eval_questions)
    report["bar"] = adherence.meets_bar(report)
    markdown = adherence.table(report)
    rundir.write_json(out / adherence.SCORES, report)
    rundir.write_text(out / "adherence.md", markdown + "\n")
    return {"out": str(out), "logs": {"read": read.n_read, "kept": len(read.records), "rejected": len(read.rejected), "hygiene": hygiene.to_dict()},
            "sets": {k: v for k, v in sets.items() if k != "stats"}, "stats": sets["stats"], "bake": summary, "adherence": report, "table": markdown}

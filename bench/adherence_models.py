"""How well different base models follow the helpdesk system prompt, on one helpdesk run's
held-out questions: each model without and with the prompt, rule by rule, and per language.

    .venv/bin/python bench/adherence_models.py --run runs/helpdesk [--models smollm2-135m,gemma3-270m]
        [--baked]   # also the run's baked adapter (on the model it was trained on)

`--run` is the output folder of `tunelab demo --scenario helpdesk --out DIR` (prompt.yaml and
bake/heldout.jsonl). Writes DIR/adherence_models/ (adherence.json, adherence.md, predictions) and prints the table plus the
share of Russian replies written in Russian and two Russian replies per condition, since how the
small models cope with Russian is the question this answers.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, help="a helpdesk demo output folder")
    parser.add_argument("--models", default="smollm2-135m,gemma3-270m")
    parser.add_argument("--baked", action="store_true", help="also evaluate the run's baked model without the prompt")
    parser.add_argument("--questions", type=int, default=40)
    args = parser.parse_args()

    from tunelab import rundir
    from tunelab.config import LogsConfig
    from tunelab.data.logs import LogRecord
    from tunelab.eval import adherence
    from tunelab.prompts.rules import load_prompt
    from tunelab.train.recipes.bake import HELDOUT

    run = Path(args.run)
    spec = load_prompt(run / "prompt.yaml")
    trained_on = rundir.read_json(run / "bake" / "summary.json")["model"] if args.baked else ""
    tags = LogsConfig().columns.tags  # the helpdesk demo reads its logs with the default mapping
    held = [
        LogRecord(
            id=r["id"],
            question=r["question"],
            answer=r["answer"],
            label=r["label"] == "good",
            tags={t: r[t] for t in tags if r.get(t)},
            contexts=tuple(r["contexts"]),
        )
        for r in rundir.read_jsonl(run / "bake" / HELDOUT)
    ]
    conditions = []
    for model in args.models.split(","):
        conditions += [
            adherence.Condition(f"{model} without prompt", model, False),
            adherence.Condition(f"{model} with prompt", model, True),
        ]
    if args.baked:
        conditions.append(adherence.Condition(f"baked {trained_on} without prompt", str(run / "bake"), False))
    out = run / "adherence_models"
    from tunelab.demos.helpdesk import EVAL_NEW_TOKENS  # the demo's budget: Russian replies need it

    report = adherence.evaluate(
        spec, held, conditions, out_dir=out, max_questions=args.questions, max_new_tokens=EVAL_NEW_TOKENS
    )
    by_language = per_language(rundir.read_jsonl(out / rundir.ADHERENCE_PREDICTIONS))
    rundir.write_json(out / rundir.ADHERENCE, {**report, "by_language": by_language})
    table = adherence.table(report)
    rundir.write_text(out / "adherence.md", table + "\n")
    print(table)
    print(json.dumps(by_language, ensure_ascii=False, indent=1))


def per_language(predictions: list[dict]) -> dict[str, dict]:
    """Per condition and question language: all-rules and language-rule pass rates, two replies."""
    out: dict[str, dict] = {}
    for p in predictions:
        lang = "ru" if any("\u0400" <= ch <= "\u04ff" for ch in p["question"]) else "en"
        cell = out.setdefault(p["condition"], {}).setdefault(
            lang, {"n": 0, "all_rules": 0, "language_rule": 0, "examples": []}
        )
        cell["n"] += 1
        cell["all_rules"] += bool(p["passed_all"])
        cell["language_rule"] += bool(p["rules"].get("language"))
        if len(cell["examples"]) < 2:
            cell["examples"].append({"question": p["question"], "reply": p["reply"][:300]})
    return out


if __name__ == "__main__":
    main()

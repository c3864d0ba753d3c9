"""Bake a system prompt into SmolLM2-135M-Instruct from a prompt file and real questions only.

End to end: Taskmaster-4 user requests/questions (examples/bake_questions/extract_questions.py)
-> recipe bake with teacher targets (sample until k pass, rule-aware repair; optional distill)
-> adherence on the held-out questions (base without/with the prompt, baked without) with 95%
Wilson intervals -> embedding similarity (MiniLM) of the baked model's replies to the prompted
base's replies, so rules met by empty or off-topic replies would show. Prints CPU, threads, wall
and CPU seconds.

    OMP_NUM_THREADS=2 nice -n 10 python bench/bake_without_answers.py --out runs/bake-bench
    # a lever off, reusing the first run's teacher samples and base conditions:
    python bench/bake_without_answers.py --out runs/bake-norepair --no-repair --reuse runs/bake-bench
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "bake_questions"


def cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def table_with_ci(predictions: list[dict], conditions: list[str], rules: list[str]) -> str:
    from tunelab.eval.metrics import wilson

    lines = ["| rule | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
    for rule in [*rules, "all rules"]:
        cells = []
        for c in conditions:
            rows = [p for p in predictions if p["condition"] == c]
            verdicts = (
                [p["passed_all"] for p in rows]
                if rule == "all rules"
                else [p["rules"][rule] for p in rows if p["rules"][rule] is not None]
            )
            lo, hi = wilson(sum(verdicts), len(verdicts))
            cells.append(f"{sum(verdicts) / max(1, len(verdicts)):.0%} [{lo:.0%}–{hi:.0%}] (n={len(verdicts)})")
        lines.append(f"| {'**all rules**' if rule == 'all rules' else rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[1].parent / "shared/data/taskmaster4"),
        help="Taskmaster-4 folder",
    )
    parser.add_argument("--questions", type=int, default=330, help="questions extracted; about a third are held out")
    parser.add_argument("--heldout-fraction", type=float, default=0.33)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--k", type=int, default=2, help="bake.passing_per_question")
    parser.add_argument("--budget", type=int, default=6, help="bake.max_samples_per_question")
    parser.add_argument("--per-round", type=int, default=2, help="bake.samples_per_question")
    parser.add_argument("--no-repair", action="store_true")
    parser.add_argument("--distill", action="store_true", help="add KL to the prompted teacher")
    parser.add_argument("--reuse", type=Path, help="an earlier --out: reuse its teacher samples and base conditions")
    args = parser.parse_args()
    import torch

    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.logs import read_logs
    from tunelab.eval import adherence
    from tunelab.eval.embed import semantic_similarity
    from tunelab.models import hardware
    from tunelab.prompts.rules import load_prompt
    from tunelab.train.recipes import bake

    began, cpu0 = time.time(), cpu_seconds()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    questions = out / "questions.jsonl"
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "extract_questions.py"),
            args.data,
            "-o",
            str(questions),
            "--limit",
            str(args.questions),
        ],
        check=True,
    )
    run_dir = out / "bake"
    if args.reuse:  # the same questions and split, so the saved samples answer them
        run_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.reuse / "bake" / bake.TEACHER_SAMPLES, run_dir / bake.TEACHER_SAMPLES)
    config = load(
        data={
            "model": {"name": "smollm2-135m"},
            "data": {"train": str(questions), "val_fraction": args.heldout_fraction, "max_length": 512},
            "train": {
                "recipe": "bake",
                "max_steps": args.steps,
                "batch_size": 8,
                "learning_rate": 5e-4,
                "logging_steps": 10,
                "eval_steps": args.steps,
                "save_steps": args.steps,
                "warmup_ratio": 0.05,
            },
            "bake": {
                "system_prompt_file": str(EXAMPLE / "prompt.yaml"),
                "targets": ["teacher", "distill"] if args.distill else ["teacher"],
                "samples_per_question": args.per_round,
                "passing_per_question": args.k,
                "max_samples_per_question": args.budget,
                "repair": not args.no_repair,
                "rewording_jaccard": 0.67,
                "max_new_tokens": 96,
            },
            "logs": {"columns": {"question": "question", "tags": []}},
            "output": {"dir": str(run_dir)},
        }
    )
    summary = bake.train(config)
    bake_wall, bake_cpu = time.time() - began, cpu_seconds() - cpu0
    spec = load_prompt(EXAMPLE / "prompt.yaml")
    held = read_logs(run_dir / bake.HELDOUT, config.logs, questions_only=True).records
    conditions = adherence.default_conditions("smollm2-135m", str(run_dir))
    if args.reuse:
        conditions = conditions[2:]
    report = adherence.evaluate(spec, held, conditions, out_dir=out, max_questions=len(held), max_new_tokens=96)
    predictions = rundir.read_jsonl(out / rundir.ADHERENCE_PREDICTIONS)
    if args.reuse:
        predictions = [
            p
            for p in rundir.read_jsonl(args.reuse / rundir.ADHERENCE_PREDICTIONS)
            if p["condition"] != "baked without prompt"
        ] + predictions
    by = {
        c: {p["id"]: p["reply"] for p in predictions if p["condition"] == c}
        for c in ("base without prompt", "base with prompt", "baked without prompt")
    }
    ids = list(by["base with prompt"])
    similarity = {
        c: sum(semantic_similarity([by[c][i] for i in ids], [by["base with prompt"][i] for i in ids])) / len(ids)
        for c in ("base without prompt", "baked without prompt")
    }
    empty = {c: sum(not r.strip() for r in by[c].values()) for c in by}
    # Rules met by saying little: mean words per reply, and replies that mostly repeat the question
    # (word-set Jaccard above 0.5), e.g. "Can I get two lattes today?" back to the same question.
    question = {p["id"]: p["question"] for p in predictions}
    words = lambda text: set(re.findall(r"[a-z]+", text.lower()))  # noqa: E731
    echoes = {
        c: sum(
            len(words(r) & words(question[i])) / max(1, len(words(r) | words(question[i]))) > 0.5
            for i, r in by[c].items()
        )
        for c in by
    }
    mean_words = {c: sum(len(r.split()) for r in by[c].values()) / max(1, len(by[c])) for c in by}
    names = ["base without prompt", "base with prompt", "baked without prompt"]
    md = table_with_ci(predictions, names, [r.id for r in spec.rules])
    md += (
        "\n| similarity to the prompted base's reply (MiniLM cosine, mean) | "
        + f"{similarity['base without prompt']:.2f} | 1.00 | {similarity['baked without prompt']:.2f} |"
    )
    data_report = rundir.read_json(run_dir / rundir.DATA_REPORT)
    t = data_report["teacher"]
    result = {
        "cpu": hardware.cpu_model(),
        "threads": torch.get_num_threads(),
        "bake_wall_s": bake_wall,
        "bake_cpu_s": bake_cpu,
        "total_wall_s": time.time() - began,
        "total_cpu_s": cpu_seconds() - cpu0,
        "train_records": data_report["train_records"],
        "heldout_records": data_report["heldout_records"],
        "examples": data_report["examples"],
        "steps": summary["steps"],
        "teacher": {
            k: t[k]
            for k in (
                "questions",
                "sampled",
                "passed",
                "repaired",
                "usable",
                "kept",
                "pass_rate_all_rules",
                "pass_rate_by_rule",
                "repairs",
                "not_repaired",
                "questions_without_passing_reply",
                "samples_per_question",
            )
        },
        "similarity_to_prompted_base": similarity,
        "empty_replies": empty,
        "echoing_replies": echoes,
        "mean_words": mean_words,
        "args": {k: str(v) for k, v in vars(args).items()},
        "bar": adherence.meets_bar(report) if not args.reuse else None,
    }
    rundir.write_json(out / "results.json", result)
    rundir.write_text(out / "results.md", md + "\n")
    print(md)
    print(json.dumps(result, indent=1))
    print(
        f"CPU {result['cpu']}, torch threads {result['threads']}; bake wall {bake_wall:.0f} s, bake CPU {bake_cpu:.0f} s; "
        f"total wall {result['total_wall_s']:.0f} s, CPU {result['total_cpu_s']:.0f} s"
    )


if __name__ == "__main__":
    main()

"""Adherence to a system prompt's machine-checkable rules, on held-out questions only.

Three conditions by default: the base model without the prompt, the base model with it, and the
baked model without it. For each: every rule's pass rate (over the questions the rule applies
to), the share of questions passing all rules ("overall"), the mean prompt length in tokens, and
latency: generation time per reply (batched, so its share of a batch) and prompt-processing
(prefill) time per request measured one request at a time, which isolates what the long prompt
costs. Tokens saved per request = prompt tokens with the prompt - prompt tokens of the baked model.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import GENERATION_BATCH
from tunelab.data.logs import LogRecord, compile_template, render_user_turn
from tunelab.prompts.rules import CheckItem, PromptSpec, check_all, passes_all, system_prompt

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Condition:
    name: str  # e.g. "base, no prompt"
    model: str  # registry name, model dir or run dir
    with_prompt: bool


def default_conditions(base: str, baked: str) -> list[Condition]:
    return [
        Condition("base without prompt", base, False),
        Condition("base with prompt", base, True),
        Condition("baked without prompt", baked, False),
    ]


def _item(r: LogRecord) -> CheckItem:
    return CheckItem(question=r.question, tags=dict(r.tags), contexts=tuple(r.contexts))


def distinct_questions(records: Sequence[LogRecord], template: Any, limit: int | None = None) -> list[LogRecord]:
    seen: dict[str, LogRecord] = {}
    for r in records:
        seen.setdefault(render_user_turn(r, template), r)
    return list(seen.values())[:limit]


def prefill_seconds(model: Any, prompts: Sequence[Sequence[int]], n: int = 8) -> float:
    """Median time of one forward pass over a prompt, one request at a time, on up to n prompts."""
    import torch

    times = []
    with torch.inference_mode():
        for p in list(prompts)[:n]:
            ids = torch.tensor([list(p)])
            began = time.perf_counter()
            model(input_ids=ids)
            times.append(time.perf_counter() - began)
    return statistics.median(times) if times else 0.0


def run_condition(
    model: Any,
    tokenizer: Any,
    spec: PromptSpec,
    questions: Sequence[LogRecord],
    template: Any,
    with_prompt: bool,
    settings: Any,
) -> dict[str, Any]:
    from tunelab.generation.replies import generate_replies, render_prompts
    from tunelab.messages import chat

    # with the prompt: its text and its example exchanges, as a user of the prompt would send them
    system = system_prompt(spec) if with_prompt else None
    messages = [chat(render_user_turn(q, template), system=system) for q in questions]
    prompts = render_prompts(tokenizer, messages)
    replies = generate_replies(model, tokenizer, prompts, settings, description="adherence")
    rows = []
    for q, reply in zip(questions, replies):
        results = check_all(spec, reply.text, _item(q))
        rows.append(
            {
                "id": q.id,
                "question": q.question,
                "tags": dict(q.tags),
                "reply": reply.text,
                "passed_all": passes_all(results),
                "rules": {r.rule: (r.passed if r.applicable else None) for r in results},
                "details": {r.rule: r.detail for r in results if r.applicable and not r.passed},
            }
        )
    return {
        "rows": rows,
        "prompt_tokens": statistics.mean(len(p) for p in prompts),
        "latency_s": statistics.mean(r.latency_s for r in replies),
        "new_tokens": statistics.mean(r.new_tokens for r in replies),
        "prefill_s": prefill_seconds(model, prompts),
    }


def summarise(spec: PromptSpec, rows: list[dict[str, Any]]) -> dict[str, Any]:
    rules = {}
    for rule in spec.rules:
        verdicts = [r["rules"][rule.id] for r in rows if r["rules"][rule.id] is not None]
        rules[rule.id] = {"pass_rate": sum(verdicts) / len(verdicts) if verdicts else None, "applicable": len(verdicts)}
    return {"overall": sum(r["passed_all"] for r in rows) / len(rows) if rows else 0.0, "rules": rules, "n": len(rows)}


def evaluate(
    spec: PromptSpec,
    records: Sequence[LogRecord],
    conditions: Sequence[Condition],
    out_dir: str | Path | None = None,
    template: str | None = None,
    max_questions: int | None = None,
    max_new_tokens: int = 96,
    batch_size: int = GENERATION_BATCH,
) -> dict[str, Any]:
    """Generate greedily for every condition on the distinct held-out questions; score; write files."""
    from tunelab.generation.replies import GenerationSettings
    from tunelab.models.load import load_model

    compiled = compile_template(template)
    questions = distinct_questions(records, compiled, max_questions)
    if not questions:
        raise ValueError("adherence: no held-out questions to evaluate")
    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    results: dict[str, Any] = {}
    predictions = []
    loaded: dict[str, tuple[Any, Any]] = {}
    for cond in conditions:
        if cond.model not in loaded:
            loaded.clear()  # one model in memory at a time
            # merged: a baked adapter folded into the weights, so latency compares like with like
            loaded[cond.model] = load_model(cond.model, merge=True, dtype="auto")
        model, tokenizer = loaded[cond.model]
        log.info("adherence: %s (%d questions)", cond.name, len(questions))
        run = run_condition(model, tokenizer, spec, questions, compiled, cond.with_prompt, settings)
        results[cond.name] = {
            "model": cond.model,
            "with_prompt": cond.with_prompt,
            **summarise(spec, run["rows"]),
            **{k: run[k] for k in ("prompt_tokens", "latency_s", "new_tokens", "prefill_s")},
        }
        predictions += [{"condition": cond.name, **row} for row in run["rows"]]
    report = {"prompt": spec.name, "questions": len(questions), "conditions": results, **_savings(results)}
    if out_dir is not None:
        rundir.write_jsonl(Path(out_dir) / rundir.ADHERENCE_PREDICTIONS, predictions)
        rundir.write_json(Path(out_dir) / rundir.ADHERENCE, report)
    return report


def _savings(results: dict[str, Any]) -> dict[str, Any]:
    prompted = [v for v in results.values() if v["with_prompt"]]
    baked = [v for k, v in results.items() if not v["with_prompt"] and k.startswith("baked")]
    if not prompted or not baked:
        return {}
    p, b = prompted[0], baked[-1]
    return {
        "prompt_tokens_saved_per_request": p["prompt_tokens"] - b["prompt_tokens"],
        "latency_saved_s_per_reply": p["latency_s"] - b["latency_s"],
        "prefill_saved_s_per_request": p["prefill_s"] - b["prefill_s"],
    }


def meets_bar(
    report: dict[str, Any],
    prompted: str = "base with prompt",
    baked: str = "baked without prompt",
    overall: float = 0.8,
) -> dict[str, Any]:
    """The bar a bake must clear: baked passes all rules on >= `overall` of questions and each rule at least as often as the prompted base."""
    c = report["conditions"]
    worse = [
        rule
        for rule, v in c[baked]["rules"].items()
        if v["pass_rate"] is not None
        and c[prompted]["rules"][rule]["pass_rate"] is not None
        and v["pass_rate"] < c[prompted]["rules"][rule]["pass_rate"]
    ]
    return {
        "overall_ok": c[baked]["overall"] >= overall,
        "rules_worse_than_prompted": worse,
        "met": c[baked]["overall"] >= overall and not worse,
    }


def table(report: dict[str, Any]) -> str:
    """A Markdown table: one row per rule, one column per condition."""
    names = list(report["conditions"])
    lines = ["| rule | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    rules = list(next(iter(report["conditions"].values()))["rules"])
    fmt = lambda x: "n/a" if x is None else f"{x:.0%}"  # noqa: E731
    for rule in rules:
        cells = [
            f"{fmt(report['conditions'][n]['rules'][rule]['pass_rate'])} ({report['conditions'][n]['rules'][rule]['applicable']})"
            for n in names
        ]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    lines.append(
        "| **all rules** | " + " | ".join(f"**{report['conditions'][n]['overall']:.0%}**" for n in names) + " |"
    )
    lines.append(
        "| prompt tokens | " + " | ".join(f"{report['conditions'][n]['prompt_tokens']:.0f}" for n in names) + " |"
    )
    lines.append(
        "| s per reply (batched) | " + " | ".join(f"{report['conditions'][n]['latency_s']:.3f}" for n in names) + " |"
    )
    lines.append(
        "| prefill s per request | " + " | ".join(f"{report['conditions'][n]['prefill_s']:.3f}" for n in names) + " |"
    )
    return "\n".join(lines)

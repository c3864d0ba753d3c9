"""Teacher targets for recipe bake: sample until k replies pass, repair, resume, report.

For each question the teacher (with the system prompt) is sampled in rounds of
bake.samples_per_question until bake.passing_per_question replies are usable targets or
bake.max_samples_per_question were drawn. A reply is usable when it passes every rule as written,
or, with bake.repair, after the rule-aware repair of tunelab/prompts/repair.py (re-checked against
every rule). Questions are sampled a chunk at a time (batched generation) and each finished
chunk's samples are appended to teacher_samples.jsonl, so an interrupted bake resumes where it
stopped (`tunelab train --resume`); repairs are recomputed from the saved raw replies, so the
file is the same whatever bake.repair says.

Two teachers: a local model (the base with its adapter off, or bake.teacher as a model), or an
OpenAI-compatible endpoint (bake.teacher as a mapping) through the rubric's HTTP client, its answers
cached by (model, prompt, sample index) in teacher_cache.sqlite.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab.config import BakeConfig, Config, TeacherEndpoint
from tunelab.messages import Message, chat
from tunelab.prompts.repair import Repaired, clean_question, repair
from tunelab.prompts.rules import CheckItem, PromptSpec, check_all

log = logging.getLogger(__name__)
CHUNK_QUESTIONS = 8  # questions sampled together: 8 x 2 samples fill a generation batch of 16
CACHE = "teacher_cache.sqlite"
SAVED = (
    "id",
    "question",
    "sample",
    "reply",
    "passed",
    "failed_rules",
)  # a saved sample; verdicts and repairs are recomputed
CLOSER_INSTRUCTION = (
    "Here is a reply to a customer:\n{reply}\n\nWrite one short, friendly question that could end this reply, "
    "offering further help. Reply with the question only."
)


class LocalTeacher:
    """A local model sampled in batches; `mode()` is the context it generates in (adapter off)."""

    def __init__(self, model: Any, tokenizer: Any, config: Config, mode: Callable[[], Any]):
        self.model, self.tokenizer, self.config, self.mode = model, tokenizer, config, mode

    def sample(
        self,
        conversations: Sequence[tuple[Message, ...]],
        indices: Sequence[int],
        seed: int,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> list[str]:
        from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts

        b = self.config.bake
        prompts = render_prompts(self.tokenizer, conversations)
        settings = GenerationSettings(
            max_new_tokens=max_new_tokens or b.max_new_tokens,
            do_sample=True,
            temperature=temperature or b.temperature,
            batch_size=16,
            seed=seed,
        )
        with self.mode():
            return [r.text for r in generate_replies(self.model, self.tokenizer, prompts, settings, progress=False)]


class EndpointTeacher:
    """An OpenAI-compatible endpoint through the rubric's HTTP client (timeouts, counted retries) and cache."""

    def __init__(self, endpoint: TeacherEndpoint, config: Config, cache_path: Path):
        from tunelab.eval.rubric import RubricJudge, RubricSettings

        self.config = config
        self.client = RubricJudge(
            RubricSettings(
                base_url=endpoint.base_url,
                model=endpoint.model,
                api_key_env=endpoint.api_key_env,
                timeout=endpoint.timeout,
                retries=endpoint.retries,
                cache_path=cache_path,
            )
        )
        self.cached = self.requested = 0

    def sample(
        self,
        conversations: Sequence[tuple[Message, ...]],
        indices: Sequence[int],
        seed: int,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
    ) -> list[str]:
        b, out = self.config.bake, []
        temperature, max_new_tokens = temperature or b.temperature, max_new_tokens or b.max_new_tokens
        for messages, index in zip(conversations, indices):
            wire = [{"role": m.role, "content": m.content} for m in messages]
            # the cache key: (model, the whole request, which sample of it); a repeated bake asks nothing again
            key = json.dumps(
                {"messages": wire, "temperature": temperature, "max_tokens": max_new_tokens, "sample": index},
                ensure_ascii=False,
            )
            raw = self.client.cache.get(self.client.settings.model, key)
            if raw is None:
                raw = self.client.complete(wire, temperature=temperature, max_tokens=max_new_tokens)
                self.client.cache.put(self.client.settings.model, key, raw)
                self.requested += 1
            else:
                self.cached += 1
            out.append(raw.strip())
        return out

    def close(self) -> None:
        self.client.close()


def make_closer(teacher: Any, seed: int) -> Callable[[str], str | None]:
    """A closing question written by the teacher for one reply (used when the prompt file lists none)."""

    def closer(reply: str) -> str | None:
        text = teacher.sample(
            [(Message("user", CLOSER_INSTRUCTION.format(reply=reply)),)], [0], seed, max_new_tokens=32, temperature=0.7
        )[0]
        return clean_question(text)

    return closer


def check_sample(
    spec: PromptSpec, reply: str, item: CheckItem, use_repair: bool, closer: Callable[[str], str | None] | None
) -> dict[str, Any]:
    """A saved raw reply -> its verdicts, and its target (the reply, its repair, or None)."""
    results = check_all(spec, reply, item)
    failed = [r.rule for r in results if r.applicable and not r.passed]
    fixed = (
        repair(spec, reply, item, closer)
        if (use_repair and failed and reply.strip())
        else Repaired(None if failed else reply, [], "")
    )
    return {
        "passed": not failed,
        "failed_rules": failed,
        "rules": {r.rule: r.passed for r in results if r.applicable},
        "target": fixed.text if reply.strip() else None,
        "repair_steps": fixed.steps,
        "repair_reason": fixed.reason,
    }


def read_saved(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Rows of teacher_samples.jsonl; a half-written last line (a killed bake) is skipped and counted."""
    if not path.exists():
        return [], 0
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):  # cut the half-written tail, or the next append would run into it
        path.write_text(text[: text.rfind("\n") + 1], encoding="utf-8")
    rows, broken = [], 0
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            broken += 1
    return rows, broken


def _done(b: BakeConfig, usable: int, drawn: int) -> bool:
    if b.passing_per_question is None:
        return drawn >= b.samples_per_question
    return usable >= b.passing_per_question or drawn >= b.max_samples_per_question


def sample_chunk(
    teacher: Any,
    spec: PromptSpec,
    chunk: list[tuple[str, str, CheckItem]],
    config: Config,
    chunk_index: int,
    closer: Callable[[str], str | None] | None,
) -> list[dict[str, Any]]:
    """Rounds over one chunk of (id, user turn, check item) until each question is done."""
    b, rows = config.bake, []
    usable, drawn = Counter(), Counter()
    for round_index in range(b.max_samples_per_question):
        open_qs = [q for q in chunk if not _done(b, usable[q[0]], drawn[q[0]])]
        if not open_qs:
            break
        asked = [
            (q, drawn[q[0]] + j)
            for q in open_qs
            for j in range(min(b.samples_per_question, b.max_samples_per_question - drawn[q[0]]))
        ]
        seed = (
            config.train.seed + 1000 * chunk_index + round_index
        )  # a new seed each round: the same seed redraws the same replies
        replies = teacher.sample([chat(q[1], system=spec.prompt) for q, _ in asked], [i for _, i in asked], seed)
        for (q, index), reply in zip(asked, replies):
            row = {"id": q[0], "question": q[2].question, "sample": index, "reply": reply}
            verdict = check_sample(spec, reply, q[2], b.repair, closer)
            drawn[q[0]] += 1
            usable[q[0]] += verdict["target"] is not None
            rows.append(row | verdict)
    return rows


def sample_targets(
    teacher: Any,
    spec: PromptSpec,
    questions: list[tuple[str, str, CheckItem]],
    config: Config,
    path: Path,
    closer: Callable[[str], str | None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every question's samples (saved ones first, the rest sampled and appended to `path`) with
    their verdicts and targets, and the teacher section of the data report."""
    from tunelab.generation.replies import progress_bar

    saved, broken = read_saved(path)
    done, fresh = {r["id"] for r in saved}, []
    todo = [q for q in questions if q[0] not in done]
    if saved:
        log.info("teacher samples: %d questions already sampled in %s, %d to go", len(done), path, len(todo))
    with progress_bar(True) as bar, path.open("a", encoding="utf-8") as out:
        task = bar.add_task("teacher samples (questions)", total=len(questions), completed=len(questions) - len(todo))
        for n, start in enumerate(range(0, len(todo), CHUNK_QUESTIONS)):
            chunk = todo[start : start + CHUNK_QUESTIONS]
            rows = sample_chunk(teacher, spec, chunk, config, n + len(done), closer)
            out.write("".join(json.dumps({k: r[k] for k in SAVED}, ensure_ascii=False) + "\n" for r in rows))
            out.flush()
            fresh += rows
            bar.advance(task, len(chunk))
    items = {q[0]: q[2] for q in questions}
    samples = [
        r | check_sample(spec, r["reply"], items[r["id"]], config.bake.repair, closer)
        for r in saved
        if r["id"] in items
    ] + fresh
    return samples, teacher_report(spec, samples, config.bake, resumed=len(done), broken_lines=broken)


def choose_targets(samples: list[dict[str, Any]], k: int | None) -> list[dict[str, Any]]:
    """The samples used as targets: at most k per question, unrepaired passes first."""
    by_question: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        if s["target"] is not None and s["target"].strip():
            by_question.setdefault(s["id"], []).append(s)
    chosen = []
    for rows in by_question.values():
        rows.sort(key=lambda s: (not s["passed"], s["sample"]))
        chosen += rows[:k] if k else rows
    return chosen


def teacher_report(
    spec: PromptSpec, samples: list[dict[str, Any]], b: BakeConfig, resumed: int = 0, broken_lines: int = 0
) -> dict[str, Any]:
    """Per rule: how often the teacher passed as written and after repair; repairs by kind; questions without a target."""
    ids = list(dict.fromkeys(s["id"] for s in samples))
    usable = [s for s in samples if s["target"] is not None]
    before, after = {}, {}
    for rule in spec.rules:
        verdicts = [s for s in samples if rule.id in s["rules"]]
        before[rule.id] = sum(s["rules"][rule.id] for s in verdicts) / len(verdicts) if verdicts else None
        after[rule.id] = (
            sum(s["rules"][rule.id] or s["target"] is not None for s in verdicts) / len(verdicts) if verdicts else None
        )
    repaired = [s for s in usable if not s["passed"]]
    failed = Counter(s["repair_reason"].split(":")[0] for s in samples if s["target"] is None and s["repair_reason"])
    return {
        "questions": len(ids),
        "sampled": len(samples),
        "passed": sum(s["passed"] for s in samples),
        "repaired": len(repaired),
        "usable": len(usable),
        "kept": len(choose_targets(samples, b.passing_per_question)),
        "pass_rate_all_rules": {
            "before_repair": sum(s["passed"] for s in samples) / max(1, len(samples)),
            "after_repair": len(usable) / max(1, len(samples)),
        },
        "pass_rate_by_rule": {"before_repair": before, "after_repair": after},
        "failures_by_rule": {r.id: sum(r.id in s["failed_rules"] for s in samples) for r in spec.rules},
        "repairs": dict(Counter(step for s in repaired for step in s["repair_steps"])),
        "not_repaired": dict(failed),
        "questions_without_passing_reply": {
            "before_repair": sum(not any(s["passed"] for s in samples if s["id"] == q) for q in ids),
            "after_repair": sum(not any(s["target"] is not None for s in samples if s["id"] == q) for q in ids),
        },
        "samples_per_question": {
            "mean": len(samples) / max(1, len(ids)),
            "max": max(Counter(s["id"] for s in samples).values(), default=0),
        },
        "repaired_pairs": [
            {"question": s["question"], "reply": s["reply"], "target": s["target"], "steps": s["repair_steps"]}
            for s in repaired[:8]
        ],
        "resumed_questions": resumed,
        "broken_saved_lines": broken_lines,
    }

"""Teacher targets for recipe bake: sample until k replies pass, repair, resume, report.

For each question the teacher (with the system prompt) is sampled in rounds of
bake.samples_per_question until bake.passing_per_question replies are usable targets or
bake.max_samples_per_question were drawn. A reply is usable when it passes every rule as written,
or, with bake.repair, after the rule-aware repair of tunelab/prompts/repair.py (re-checked against
every rule) and passes the plain sanity check of tunelab/prompts/sanity.py. The teacher sees the
prompt as the system turn and the prompt file's `examples:` as few-shot turns before the question,
so a base model is shown the form, not only told it. Questions are sampled a chunk at a time
(batched generation) and each finished
chunk's samples are appended to teacher_samples.jsonl, so an interrupted bake resumes where it
stopped (`tunelab train --resume`); repairs are recomputed from the saved raw replies, so the
file is the same whatever bake.repair says.

A base model (no chat template of its own) is shown the conversation as one plain document
(`document`). Two teachers: a local model (the base with its adapter off, or bake.teacher as a model), or an
OpenAI-compatible endpoint (bake.teacher as a mapping) through the rubric's HTTP client, its answers
cached by (model, prompt, sample index) in teacher_cache.sqlite.

Before training, `check_can_follow` stops bake when the teacher could not follow the prompt (fewer
usable targets per question than bake.min_targets_per_question), naming the rules it failed most
and the routes that work, instead of training on scraps.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tunelab.config import BakeConfig, Config, TeacherEndpoint
from tunelab.messages import Message
from tunelab.prompts.repair import Repaired, repair
from tunelab.prompts.rules import CheckItem, PromptSpec, check_all
from tunelab.prompts.sanity import sanity_problem

log = logging.getLogger(__name__)
CHUNK_QUESTIONS = 32  # questions sampled together: 32 x 2 samples fill a generation batch of 64
CACHE = "teacher_cache.sqlite"
SAVED = (
    "id",
    "question",
    "sample",
    "reply",
    "passed",
    "failed_rules",
)  # a saved sample; verdicts and repairs are recomputed


class TeacherCannotFollow(RuntimeError):
    """The teacher's samples gave too few usable targets to train on; the message says what to do."""


def teacher_messages(spec: PromptSpec, user_turn: str, shots: Sequence[tuple[str, str]]) -> tuple[Message, ...]:
    """What the teacher is asked: the prompt as system turn, the example exchanges, the question."""
    turns = [Message("system", spec.prompt)]
    for question, reply in shots:
        turns += [Message("user", question), Message("assistant", reply)]
    return (*turns, Message("user", user_turn))


def document(messages: Sequence[Message]) -> str:
    """A conversation as one plain document for a base model: the system prompt as its opening
    paragraph, the turns labelled as tunelab's default template labels them (### User, ### Assistant),
    and no end-of-sequence token between them (the template puts one after each). Given the eos after every
    turn, Gemma 3 270M base went on as if a new document began, restating the question in each of 16
    Russian samples; laid out as one document it answered (15 of 16 usable after repair)."""
    text = ""
    for m in messages:
        if m.role == "system":
            text += m.content.strip() + "\n\n"
        elif m.role == "assistant":
            text += f"### Assistant:\n{m.content.strip()}\n\n"
        else:
            text += f"### {m.role.capitalize()}:\n{m.content.strip()}\n"
    return text + "### Assistant:\n"


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
        from tunelab.data.tokenize import DEFAULT_TEMPLATE, ensure_template
        from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts

        b = self.config.bake
        ensure_template(self.tokenizer)
        if self.tokenizer.chat_template == DEFAULT_TEMPLATE:
            prompts = [self.tokenizer(document(c))["input_ids"] for c in conversations]
        else:
            prompts = render_prompts(self.tokenizer, conversations)
        settings = GenerationSettings(
            max_new_tokens=max_new_tokens or b.max_new_tokens,
            do_sample=True,
            temperature=temperature or b.temperature,
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


def _as_written(spec: PromptSpec, reply: str, item: CheckItem, failed: list[str]) -> Repaired:
    """Without repair: the reply itself when it passes every rule and the sanity check."""
    if not reply.strip():
        return Repaired(None, [], "empty reply")
    if failed:
        return Repaired(None, [], "fails rules (repair off)")
    problem = sanity_problem(reply, item.question, [e.reply for e in spec.examples])
    return Repaired(None, [], f"sanity: {problem}") if problem else Repaired(reply, [], "passed")


def check_sample(
    spec: PromptSpec, reply: str, item: CheckItem, use_repair: bool, headroom: float = 0.0
) -> dict[str, Any]:
    """A saved raw reply -> its verdicts against the prompt's rules, and its target (the reply, its
    repair, or None with the reason; with repair on, fitted with `headroom` under length limits)."""
    results = check_all(spec, reply, item)
    failed = [r.rule for r in results if r.applicable and not r.passed]
    fixed = repair(spec, reply, item, headroom) if use_repair else _as_written(spec, reply, item, failed)
    return {
        "passed": not failed,
        "failed_rules": failed,
        "rules": {r.rule: r.passed for r in results if r.applicable},
        "target": fixed.text,
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
    shots: Sequence[tuple[str, str]] = (),
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
        replies = teacher.sample([teacher_messages(spec, q[1], shots) for q, _ in asked], [i for _, i in asked], seed)
        for (q, index), reply in zip(asked, replies):
            row = {"id": q[0], "question": q[2].question, "sample": index, "reply": reply}
            verdict = check_sample(spec, reply, q[2], b.repair, b.limit_headroom)
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
    shots: Sequence[tuple[str, str]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every question's samples (saved ones first, the rest sampled and appended to `path`) with
    their verdicts and targets, and the teacher section of the data report. `shots`: the example
    exchanges as (user turn, reply), by default the prompt file's examples as written."""
    from tunelab.generation.replies import progress_bar

    shots = [(e.question, e.reply) for e in spec.examples] if shots is None else list(shots)
    saved, broken = read_saved(path)
    done, fresh = {r["id"] for r in saved}, []
    todo = [q for q in questions if q[0] not in done]
    if saved:
        log.info("teacher samples: %d questions already sampled in %s, %d to go", len(done), path, len(todo))
    with progress_bar(True) as bar, path.open("a", encoding="utf-8") as out:
        task = bar.add_task("teacher samples (questions)", total=len(questions), completed=len(questions) - len(todo))
        for n, start in enumerate(range(0, len(todo), CHUNK_QUESTIONS)):
            chunk = todo[start : start + CHUNK_QUESTIONS]
            rows = sample_chunk(teacher, spec, chunk, config, n + len(done), shots)
            out.write("".join(json.dumps({k: r[k] for k in SAVED}, ensure_ascii=False) + "\n" for r in rows))
            out.flush()
            fresh += rows
            bar.advance(task, len(chunk))
    items = {q[0]: q[2] for q in questions}
    samples = [
        r | check_sample(spec, r["reply"], items[r["id"]], config.bake.repair, config.bake.limit_headroom)
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
    repaired = [s for s in usable if s["repair_steps"]]
    dropped = Counter(s["repair_reason"] or "no target" for s in samples if s["target"] is None)
    kept = len(choose_targets(samples, b.passing_per_question))
    return {
        "questions": len(ids),
        "sampled": len(samples),
        "passed": sum(s["passed"] for s in samples),
        "repaired": len(repaired),
        "usable": len(usable),
        "kept": kept,
        "targets_per_question": kept / max(1, len(ids)),
        "pass_rate_all_rules": {
            "before_repair": sum(s["passed"] for s in samples) / max(1, len(samples)),
            "after_repair": len(usable) / max(1, len(samples)),
        },
        "pass_rate_by_rule": {"before_repair": before, "after_repair": after},
        "failures_by_rule": {r.id: sum(r.id in s["failed_rules"] for s in samples) for r in spec.rules},
        "repairs": dict(Counter(step for s in repaired for step in s["repair_steps"])),
        # every sample is usable or dropped for one of these reasons (rules, repair, sanity)
        "dropped_by_reason": dict(dropped.most_common()),
        "not_repaired": dict(Counter(reason.split(":")[0] for reason in dropped.elements())),
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


ROUTES = (
    "add up to five `examples:` ({question, reply}) to the prompt file: the teacher gets them as few-shot turns",
    "give logged answers: a data.train with answer and label columns, and bake.targets [logged, teacher]",
    "use a stronger teacher: bake.teacher a model name, or an OpenAI-compatible endpoint {base_url: ..., model: ...}",
)


# For a prompt file that has examples already: a small base teacher copied them (docs/bake.md, energy_bills).
WITH_EXAMPLES = (
    "the prompt file's {n} `examples:` were not enough: a teacher this small copies them rather than "
    "following them (copies are dropped); different examples may help, the two routes below more surely"
)


def check_can_follow(
    report: dict[str, Any], b: BakeConfig, prompt_path: str, report_path: Path, examples: int = 0
) -> None:
    """Raise TeacherCannotFollow when the teacher's usable targets per question fall below
    bake.min_targets_per_question, naming the rules it failed most and the routes that work
    (`examples`: how many example exchanges the prompt file already has)."""
    per_question = report["targets_per_question"]
    if per_question >= b.min_targets_per_question:
        return
    n = max(1, report["sampled"])
    worst = sorted(report["failures_by_rule"].items(), key=lambda kv: -kv[1])[:3]
    rules = ", ".join(f"{rule} failed {k} of {n} samples" for rule, k in worst if k) or "none failed"
    drops = ", ".join(f"{reason}: {k}" for reason, k in list(report["dropped_by_reason"].items())[:4])
    first = WITH_EXAMPLES.format(n=examples) if examples else ROUTES[0]
    routes = "\n".join(f"  - {r}" for r in (first, *ROUTES[1:]))
    raise TeacherCannotFollow(
        f"{prompt_path}: the teacher cannot follow this prompt: {report['kept']} usable targets for "
        f"{report['questions']} questions ({per_question:.2f} per question; bake.min_targets_per_question is "
        f"{b.min_targets_per_question}). Rules it failed most: {rules}. Samples dropped: {drops or 'none'}. "
        f"Not training on scraps. Routes that work:\n{routes}\n"
        f"The samples and the counts: {report_path.parent} (teacher_samples.jsonl, {report_path.name}); "
        f"to train anyway, lower bake.min_targets_per_question."
    )

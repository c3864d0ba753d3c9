"""recipe: bake — train a model that behaves WITHOUT the system prompt as the teacher does WITH it.

Inputs: the questions of a feedback log (data.train, read with the `logs` section), each with its
tags and contexts rendered into the user turn; optionally more (tunelab/train/bake_inputs.py):
bake.paraphrases teacher rewrites of every training question, and a bake.questions_file of
questions without answers for the teacher/distill targets. Held out first: about data.val_fraction of the
distinct questions, in whole groups of rewordings (question_groups), so no held-out question is
trained on, not even reworded; they are written to heldout.jsonl for the adherence evaluation. Targets (`bake.targets`, combinable):
  logged   the good answers of the log;
  teacher  replies the teacher samples WITH the system prompt (and the prompt file's examples as
           few-shot turns), kept only when they pass every machine-checkable rule and plain sanity,
           after repair (so the student can end up better than its teacher); bake stops before
           training when too few pass (bake.min_targets_per_question, bake_teacher.check_can_follow);
  distill  KL(teacher with prompt || student without) over the reply tokens, added to the
           cross-entropy of the targets above (alone, it runs over every teacher sample).
The teacher is `bake.teacher`, or the base model itself with the LoRA adapter switched off.
The run directory follows the SFT contract: config.yaml, data_report.json, metrics.jsonl,
adapter/ (or model/), summary.json; plus prompt.yaml, heldout.jsonl and teacher_samples.jsonl.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from tunelab import rundir
from tunelab.config import Config, TeacherEndpoint, epoch_steps, planned_steps
from tunelab.data.hygiene import clean
from tunelab.data.logs import LogRecord, compile_template, read_logs, render_user_turn
from tunelab.data.prepare import write_rejected
from tunelab.data.split import grouped_split
from tunelab.data.tokenize import IGNORE, template_info, tokenize_conversation
from tunelab.messages import Conversation, chat
from tunelab.prompts.rules import CheckItem, PromptSpec, dump_prompt, load_prompt, system_prompt
from tunelab.train import bake_teacher
from tunelab.train.bake_inputs import drop_heldout, extra_questions, question_groups, same_question_key
from tunelab.train.callbacks import TokenProgressCallback
from tunelab.train.session import Session
from tunelab.train.trainer import MaskedLossTrainer, load_trainable, training_arguments

log = logging.getLogger(__name__)
HELDOUT = "heldout.jsonl"
PROMPT = "prompt.yaml"
TEACHER_SAMPLES = "teacher_samples.jsonl"


def check_item(record: LogRecord) -> CheckItem:
    return CheckItem(question=record.question, tags=dict(record.tags), contexts=tuple(record.contexts))


def load_records(config: Config, out_dir: Path) -> tuple[list[LogRecord], dict[str, Any]]:
    """Read data.train as a feedback log, write rejected rows, apply hygiene; returns records and report."""
    # without logged targets data.train may be a list of questions: answers and labels are not needed
    read = read_logs(config.data.train, config.logs, questions_only="logged" not in config.bake.targets)
    rejected_file = write_rejected(read, out_dir / "rejected")
    for r in read.rejected[:5]:
        log.warning("rejected %s", r.message())
    records, hygiene = clean(read.records, config.logs.hygiene)
    report = {
        "file": read.path,
        "format": read.fmt,
        "read": read.n_read,
        "kept": len(read.records),
        "rejected": len(read.rejected),
        "rejected_file": str(rejected_file) if rejected_file else None,
        "hygiene": hygiene.to_dict(),
        "after_hygiene": len(records),
    }
    return records, report


def split_by_question(
    records: list[LogRecord], fraction: float, seed: int, jaccard: float | None = None
) -> tuple[list[LogRecord], list[LogRecord]]:
    """(train, held-out): whole groups of reworded questions (question_groups) go to one side,
    about `fraction` of the distinct questions held out, so nothing held out is trained on reworded.
    A group is taken only when it brings the held-out count closer to the target, so one huge
    group (questions that share words transitively) cannot swallow the training set."""
    questions = sorted({same_question_key(r.question) for r in records})
    group_of = {q: i for i, group in enumerate(question_groups(questions, jaccard=jaccard)) for q in group}
    held = set(grouped_split(questions, group_of.__getitem__, seed, fraction=fraction, closest=True)[1])
    train = [r for r in records if same_question_key(r.question) not in held]
    return train, [r for r in records if same_question_key(r.question) in held]


def unique_questions(records: list[LogRecord], template: Any) -> list[LogRecord]:
    """One record per distinct rendered user turn (question + tags + contexts)."""
    seen: dict[str, LogRecord] = {}
    for r in records:
        seen.setdefault(render_user_turn(r, template), r)
    return list(seen.values())


def build_examples(
    tokenizer: Any, pairs: list[tuple[str, str]], spec: PromptSpec, distill: bool, max_length: int
) -> tuple[list[dict[str, list[int]]], dict[str, int]]:
    """Student rows (user turn without prompt -> reply) and, for distillation, the teacher's view
    (with the prompt) of the same reply tokens."""
    info = template_info(tokenizer)
    rows, skipped = [], {"too_long": 0, "reply_tokens_differ": 0}
    for user, reply in pairs:
        student = tokenize_conversation(tokenizer, Conversation("s", chat(user, reply)), max_length, info)
        if student is None:
            skipped["too_long"] += 1
            continue
        row = {"input_ids": student.input_ids, "labels": student.labels}
        if distill:
            teacher = tokenize_conversation(
                tokenizer, Conversation("t", chat(user, reply, system_prompt(spec))), max_length, info
            )
            if teacher is None:
                skipped["too_long"] += 1
                continue
            if [t for t in teacher.labels if t != IGNORE] != [t for t in student.labels if t != IGNORE]:
                skipped["reply_tokens_differ"] += 1  # the template tokenised the reply differently; no aligned KL
                continue
            row |= {"teacher_input_ids": teacher.input_ids, "teacher_labels": teacher.labels}
        rows.append(row)
    return rows, skipped


class BakeCollator:
    """Right-pads student (and teacher) sequences; padding carries no loss and no attention."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def _pad(self, seqs: list[list[int]], value: int) -> torch.Tensor:
        out = torch.full((len(seqs), max(map(len, seqs))), value, dtype=torch.long)
        for i, s in enumerate(seqs):
            out[i, : len(s)] = torch.tensor(s)
        return out

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = {}
        for prefix in ("", "teacher_") if "teacher_input_ids" in rows[0] else ("",):
            ids = [r[prefix + "input_ids"] for r in rows]
            batch[prefix + "input_ids"] = self._pad(ids, self.pad_id)
            batch[prefix + "labels"] = self._pad([r[prefix + "labels"] for r in rows], IGNORE)
            batch[prefix + "attention_mask"] = self._pad([[1] * len(s) for s in ids], 0)
        return batch


def reply_kl(
    student_logits: torch.Tensor,
    student_labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    teacher_labels: torch.Tensor,
) -> torch.Tensor:
    """Mean over reply tokens of KL(teacher || student) between next-token distributions.

    Position t's logits predict token t+1, so a reply token at t+1 is scored from logits at t.
    Both sides hold the same reply tokens in the same order (build_examples checks it)."""
    s_mask = student_labels[:, 1:] != IGNORE
    t_mask = teacher_labels[:, 1:] != IGNORE
    s = torch.log_softmax(student_logits[:, :-1][s_mask].float(), dim=-1)
    t = torch.log_softmax(teacher_logits[:, :-1][t_mask].float(), dim=-1)
    return torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean")


class BakeTrainer(MaskedLossTrainer):
    def __init__(self, *args: Any, teacher: Any = None, ce_weight: float = 1.0, kl_weight: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.teacher, self.ce_weight, self.kl_weight = teacher, ce_weight, kl_weight

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        out = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=inputs["labels"] if self.ce_weight else None,
        )
        loss = out.loss * self.ce_weight if self.ce_weight else 0.0
        if self.kl_weight:
            # Without a separate teacher, the teacher is the base: this model with its adapter off.
            ctx = model.disable_adapter() if self.teacher is None else nullcontext()
            with torch.no_grad(), ctx:
                t_logits = (self.teacher or model)(
                    input_ids=inputs["teacher_input_ids"], attention_mask=inputs["teacher_attention_mask"]
                ).logits
            kl = reply_kl(out.logits, inputs["labels"], t_logits, inputs["teacher_labels"])
            loss = loss + self.kl_weight * kl
        return (loss, out) if return_outputs else loss


def _teacher_model(config: Config) -> Any:
    """None when the base with its adapter off can teach (or an endpoint teaches); else a separately loaded model."""
    if isinstance(config.bake.teacher, TeacherEndpoint) or (
        config.bake.teacher is None and config.model.adapter in ("lora", "dora")
    ):
        return None
    from tunelab.models.load import load_model

    source = config.bake.teacher or config.model.name
    model, _ = load_model(source)
    log.info("teacher: %s (loaded separately)", source)
    return model


def with_min_steps(config: Config, n_rows: int) -> Config:
    """`config` with train.max_steps set to `planned_steps` when bake.min_steps asks for more steps
    than train.epochs over `n_rows` examples take (a prompt's few targets are passed over again)."""
    t = config.train
    if t.max_steps is not None or not n_rows or epoch_steps(t, n_rows) >= config.bake.min_steps:
        return config
    steps = planned_steps(config, n_rows)
    log.info(
        "%d examples give %d steps in %s epochs: training %d steps (bake.min_steps)",
        n_rows,
        epoch_steps(t, n_rows),
        t.epochs,
        steps,
    )
    return config.model_copy(update={"train": t.model_copy(update={"max_steps": steps})})


def _fast_sampler(config: Config) -> Any:
    """The base model loaded again in the dtype that generates fastest here (bf16 where the CPU has
    it natively: 2.1x faster replies than fp32 on the AMX Xeon, bench/generate_throughput.py), when
    training keeps it in float32 and the teacher is the base itself; None otherwise (sample with the
    training model)."""
    from tunelab.models.hardware import inference_dtype

    b = config.bake
    if not ("teacher" in b.targets or b.paraphrases) or config.model.adapter not in ("lora", "dora"):
        return None
    if config.train.precision in ("bf16", "bf16_base") or inference_dtype()[0] != torch.bfloat16:
        return None
    from tunelab.models.load import load_model

    model, _ = load_model(config.model.name, dtype=torch.bfloat16)
    log.info("teacher: the base model, sampled in bf16 (%s)", inference_dtype()[1])
    return model


def teacher_pairs(
    config: Config, run_dir: Path, spec: PromptSpec, questions: list[LogRecord], template: Any, local: Any
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """(user turn, target) pairs from the teacher's samples (bake_teacher), and its report.
    `local`: the local teacher (a LocalTeacher), unused with an endpoint teacher."""
    b = config.bake
    endpoint = isinstance(b.teacher, TeacherEndpoint)
    teacher = bake_teacher.EndpointTeacher(b.teacher, config, run_dir / bake_teacher.CACHE) if endpoint else local
    turns = {q.id: render_user_turn(q, template) for q in questions}
    # the example exchanges' questions rendered as every other user turn, so the shots look like the real ones
    shots = [(render_user_turn(r, template), r.answer) for r in example_records(spec)]
    try:
        samples, report = bake_teacher.sample_targets(
            teacher,
            spec,
            [(q.id, turns[q.id], check_item(q)) for q in questions],
            config,
            run_dir / TEACHER_SAMPLES,
            shots,
        )
    finally:
        if endpoint:
            report_cache = {"requested": teacher.requested, "cached": teacher.cached, "retries": teacher.client.retries}
            teacher.close()
    if endpoint:
        report["endpoint"] = {"base_url": b.teacher.base_url, "model": b.teacher.model, **report_cache}
    if b.targets == ["distill"]:  # pure context distillation learns from every non-empty teacher sample, as written
        return [(turns[s["id"]], s["reply"]) for s in samples if s["reply"].strip()], report
    return [(turns[s["id"]], s["target"]) for s in bake_teacher.choose_targets(samples, b.passing_per_question)], report


def example_records(spec: PromptSpec) -> list[LogRecord]:
    """The prompt file's example exchanges as good logged answers."""
    return [
        LogRecord(
            id=f"example:{i}", question=e.question, answer=e.reply, label=True, source=f"{spec.path}: examples[{i}]"
        )
        for i, e in enumerate(spec.examples)
    ]


def check_teacher(
    config: Config, spec: PromptSpec, teacher_report: dict[str, Any] | None, logged: int, path: Path
) -> None:
    """Stop before training when the teacher could not follow the prompt; with logged answers to
    train on as well, say so and go on."""
    if teacher_report is None or config.bake.targets == ["distill"]:
        return  # pure distillation learns from every sample as written
    try:
        bake_teacher.check_can_follow(teacher_report, config.bake, spec.path, path, len(spec.examples))
    except bake_teacher.TeacherCannotFollow as exc:
        if not logged:
            raise
        log.warning("%s\n(training on the %d logged answers and the few teacher targets)", exc, logged)


def train(config: Config, resume: bool = False) -> dict[str, Any]:
    """Run the whole bake job; returns the summary also written to summary.json."""
    b = config.bake
    if not b.system_prompt_file:
        raise ValueError("recipe bake needs bake.system_prompt_file (a YAML prompt file, see tunelab.prompts.rules)")
    spec = load_prompt(b.system_prompt_file)
    # On resume the data is rebuilt identically: seeded split, saved paraphrases and teacher samples.
    session = Session.start(config, resume, files={PROMPT: dump_prompt(spec)})
    run_dir, checkpoint = session.run_dir, session.checkpoint
    template = compile_template(config.logs.template)
    records, report = load_records(config, run_dir)
    train_recs, held = split_by_question(records, config.data.val_fraction, config.data.seed, b.rewording_jaccard)
    if not train_recs:
        raise ValueError(
            f"{config.data.train}: holding out whole groups of reworded questions left nothing to train on "
            f"({len(records)} records); lower data.val_fraction or add more distinct questions"
        )
    rundir.write_jsonl(run_dir / HELDOUT, [r.to_row() for r in held])
    model, tokenizer = load_trainable(config)
    teacher = _teacher_model(config) if ("teacher" in b.targets or "distill" in b.targets or b.paraphrases) else None
    # the teacher samples: a separate model, the base in a faster dtype, or the base with its adapter off
    sampler = _fast_sampler(config) if teacher is None else None
    gen_model = teacher or sampler or model
    adapter_off = gen_model is model and hasattr(model, "disable_adapter")

    def teacher_mode() -> Any:
        return model.disable_adapter() if adapter_off else nullcontext()

    with teacher_mode():
        paraphrased, from_file, extra_report = extra_questions(
            config, run_dir, train_recs, held, gen_model, tokenizer, checkpoint is not None
        )
    report |= {"train_records": len(train_recs), "heldout_records": len(held), "paraphrased_records": len(paraphrased)}
    train_recs = train_recs + paraphrased
    pairs: list[tuple[str, str]] = []
    if "logged" in b.targets:
        pairs += [(render_user_turn(r, template), r.answer) for r in train_recs if r.label]
    logged = len(pairs)
    # the prompt file's examples are targets too, unless one rewords a held-out question
    examples, report["examples_dropped_heldout"] = drop_heldout(example_records(spec), held, b.rewording_jaccard)
    pairs += [(render_user_turn(r, template), r.answer) for r in examples]
    report["examples_as_targets"] = len(examples)
    teacher_report = None
    if "teacher" in b.targets or b.targets == ["distill"]:
        candidates = unique_questions(train_recs + from_file, template)
        questions = candidates[: b.max_teacher_questions]
        local = bake_teacher.LocalTeacher(gen_model, tokenizer, config, teacher_mode)
        # saved samples are read back first (teacher_samples.jsonl): on resume nothing is sampled twice
        teacher_pairs_, teacher_report = teacher_pairs(config, run_dir, spec, questions, template, local)
        teacher_report["not_sampled"] = len(candidates) - len(
            questions
        )  # beyond bake.max_teacher_questions (file questions come last)
        pairs += teacher_pairs_
    sampler = gen_model = local = None  # sampling is over: the bf16 copy is not kept through training
    distill = "distill" in b.targets
    rows, skipped = build_examples(tokenizer, pairs, spec, distill, config.data.max_length)
    report |= {
        **extra_report,
        "teacher": teacher_report,
        "examples": len(rows),
        "skipped": skipped,
        "targets": list(b.targets),
    }
    rundir.write_json(run_dir / rundir.DATA_REPORT, report)
    check_teacher(config, spec, teacher_report, logged, run_dir / rundir.DATA_REPORT)
    if not rows:
        raise RuntimeError(
            f"{config.data.train}: no training example for targets {b.targets} (see {run_dir / rundir.DATA_REPORT})"
        )
    session.config = with_min_steps(session.config, len(rows))  # batch size resolved
    config = session.settle_cadence(len(rows), 0)
    progress = TokenProgressCallback()
    trainer = BakeTrainer(
        model=model,
        args=training_arguments(config, run_dir, has_val=False),
        train_dataset=rows,
        data_collator=BakeCollator(tokenizer.pad_token_id),
        callbacks=session.callbacks(progress),
        progress=progress,
        teacher=teacher,
        ce_weight=0.0 if b.targets == ["distill"] else 1.0,
        kl_weight=b.distill_weight if distill else 0.0,
    )
    session.train(trainer)
    return session.finish(
        trainer,
        tokenizer,
        {
            "targets": list(b.targets),
            "train_examples": len(rows),
            "heldout_records": len(held),
            "teacher": teacher_report,
            "throughput": progress.throughput(),
            "trained_tokens": int(trainer.state.num_input_tokens_seen),
        },
        recipe="bake",
    )

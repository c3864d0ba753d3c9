"""Supervised fine-tuning on masked dialogues, on transformers' Trainer and peft.

The run directory (see rundir.py) gets: the resolved config, the data report, metrics.jsonl,
checkpoints/, the final adapter/ (or model/ for full fine-tuning), summary.json, and with
`output.merge` a merged/ model directory that plain transformers loads.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerState, TrainingArguments, set_seed
from transformers.trainer_callback import ProgressCallback, PrinterCallback

from tunelab import rundir
from tunelab.config import Config, dump
from tunelab.data.prepare import NoUsableData, Prepared, prepare
from tunelab.data.tokenize import IGNORE, ensure_template
from tunelab.models.adapters import apply_adapter, can_merge, is_adapter, load_kwargs
from tunelab.models.registry import resolve
from tunelab.train.behaviour_eval import BehaviourEval, best_model_arguments
from tunelab.train.callbacks import MetricsFileCallback, TokenProgressCallback
from tunelab.train.precision import base_dtype, resolve_precision
from tunelab.train.tracking import close_trackers, tracking_callbacks
from tunelab.messages import Example

log = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint by Trainer


class ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]):
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        e = self.examples[i]
        return {"input_ids": e.input_ids, "labels": e.labels}


class PadCollator:
    """Right-pad to the longest example in the batch; padding carries no loss and no attention."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            labels[i, :n] = torch.tensor(r["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class CountingTrainer(Trainer):
    """Trainer that counts tokens for the progress bar and, in one process, computes the output
    head only where there is a target.

    In masked SFT most positions carry no loss, yet the stock forward pass multiplies every
    position's hidden state by the whole vocabulary (49k rows for SmolLM2, about a fifth of the
    model's FLOPs). The loss is the same mean over target tokens either way. Under DDP the stock
    path is kept, because gradient synchronisation hooks hang off the wrapped module's forward.

    With `behaviour`, every evaluation also generates replies to a few validation contexts and
    adds their behaviour rates to the metrics, where `metric_for_best_model` can select on them.
    """

    def __init__(self, *args: Any, progress: TokenProgressCallback, target_only_head: bool = True,
                 behaviour: BehaviourEval | None = None, first_token_weight: float = 1.0, focal_gamma: float = 0.0,
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.first_token_weight = first_token_weight
        self.focal_gamma = focal_gamma
        self.progress = progress
        self.target_only_head = target_only_head
        self.behaviour = behaviour
        self._loss_sums = torch.zeros(2, dtype=torch.float64)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"):
        self._loss_sums = torch.zeros(2, dtype=torch.float64)  # (sum of token losses, target tokens) here
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        # The stock loss is the mean of per-batch means, so it moves with the eval batch size and
        # the number of processes (2 x 2 against 4 x 1 gave 1.5e-4 apart on the same weights);
        # the mean over every target token does not.
        total, tokens = self.accelerator.reduce(self._loss_sums.to(self.accelerator.device), reduction="sum").tolist()
        if tokens:
            output.metrics[f"{metric_key_prefix}_loss"] = total / tokens
        # Added here, before evaluate() logs the metrics and _determine_best_metric reads them.
        if self.behaviour is not None and metric_key_prefix == "eval":
            scores = self.behaviour(self.accelerator.unwrap_model(self.model))
            output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output

    def training_step(self, model, inputs, num_items_in_batch=None):
        self.progress.count_tokens(int(inputs["attention_mask"].sum()), int((inputs["labels"] != IGNORE).sum()))
        return super().training_step(model, inputs, num_items_in_batch)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs and not model.training:
            return self._evaluation_loss(model, inputs)
        base = _decoder_and_head(self.accelerator.unwrap_model(model))
        if return_outputs or not self.target_only_head or base is None or self.accelerator.num_processes > 1:
            if (self.first_token_weight != 1.0 or self.focal_gamma) and model.training:
                raise ValueError("train.first_token_weight and train.focal_gamma need the target-only output head (one "
                                 "process, an adapter inside the layers or a full fine-tune); leave them at 1 and 0 here")
            self.loss_is_scaled_for_ga = None
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        decoder, head = base
        labels = inputs["labels"][:, 1:]
        keep = labels != IGNORE
        hidden = decoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        logits = head(hidden[:, :-1][keep]).float()
        losses = torch.nn.functional.cross_entropy(logits, labels[keep], reduction="none")
        weights = first_token_weights(keep, self.first_token_weight)
        if self.focal_gamma and model.training:
            weights = weights * focal_weights(losses, self.focal_gamma)
        loss = (losses * weights).sum()
        # With gradient accumulation, Trainer counts the targets of the whole accumulated batch.
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return loss / (num_items_in_batch if num_items_in_batch is not None else keep.sum().clamp(min=1))

    def _evaluation_loss(self, model, inputs):
        """The batch's mean target-token loss, its token sum and count added to this process's totals."""
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        length = inputs["labels"].shape[1]  # prompt tuning puts its virtual tokens' logits first
        logits, labels = outputs.logits[:, -length:-1].float(), inputs["labels"][:, 1:]
        total = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1),
                                                  ignore_index=IGNORE, reduction="sum")
        tokens = int((labels != IGNORE).sum())
        self._loss_sums += torch.tensor([float(total), tokens], dtype=torch.float64)
        return total / max(tokens, 1), outputs


def first_token_weights(keep: torch.Tensor, weight: float) -> torch.Tensor:
    """Per-target-token loss weights (flattened like `tensor[keep]`): `weight` on the first token
    of every target span — where a reply commits to what it does ("Sure! What size…" or "So
    that's…") — and 1 elsewhere. The normaliser stays the number of target tokens.

    >>> first_token_weights(torch.tensor([[False, True, True, False, True]]), 3.0).tolist()
    [3.0, 1.0, 3.0]
    """
    starts = keep & ~torch.nn.functional.pad(keep[:, :-1], (1, 0), value=False)
    return torch.where(starts, weight, 1.0)[keep]


def focal_weights(losses: torch.Tensor, gamma: float) -> torch.Tensor:
    """Focal-loss factors (1 - p)^gamma of each target token's probability p = exp(-loss) (Lin et al.,
    2017), detached so they only reweight. Once a reply's read-back and phrasing are learned (p near
    1, factor near 0), the loss left is on the few tokens still uncertain, such as the one where a
    reply chooses to ask or to confirm (docs/cafe.md).

    >>> [round(w, 4) for w in focal_weights(torch.tensor([0.0513, 0.6931]), 2.0).tolist()]
    [0.0025, 0.25]
    """
    return (1 - torch.exp(-losses.detach())).clamp(min=0).pow(gamma)


def _decoder_and_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder, output head) of a causal LM, through a peft wrapper whose adapters live inside
    the layers (LoRA, DoRA, IA3); None for adapters that change the inputs (prompt tuning)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        if model.active_peft_config.is_prompt_learning:
            return None
        model = model.get_base_model()
    config = getattr(model, "config", None)
    if getattr(config, "final_logit_softcapping", None):
        return None  # the stock forward applies the cap; keep one source of truth for it
    get_decoder, head = getattr(model, "get_decoder", None), model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    decoder = get_decoder() if get_decoder else None
    return (decoder, head) if decoder is not None and head is not None else None


def load_base(config: Config) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve(config.model.name)
    tokenizer = ensure_template(AutoTokenizer.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=base_dtype(config), **load_kwargs(config.model))
    model = apply_adapter(model, config.model)
    if config.train.compile:
        compile_decoder_layers(model)
    return model, tokenizer


def compile_decoder_layers(model: Any) -> int:
    """torch.compile each decoder layer in place (regional compilation: one small graph per
    layer, the same code for all, so the compile is short; state-dict names do not change, so
    checkpoints and adapters save as usual). Returns how many layers were compiled."""
    import torch._dynamo

    base = _decoder_and_head(model)
    layers = getattr(base[0], "layers", None) if base else None
    if not layers:
        log.warning("train.compile: no decoder layers found in %s; training uncompiled", type(model).__name__)
        return 0
    # Each layer instance is guarded separately, and dynamic shapes add variants: room for all of them.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(layers))
    torch._dynamo.config.accumulated_recompile_limit = max(torch._dynamo.config.accumulated_recompile_limit, 32 * len(layers))
    for layer in layers:
        layer.compile(dynamic=True)
    log.info("train.compile: %d decoder layers compiled (the first step pays for it)", len(layers))
    return len(layers)


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json exists (Trainer writes it last)."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for ckpt in found:
        if (ckpt / TRAINER_STATE).exists():
            return ckpt
        log.warning("skipping incomplete checkpoint %s (killed while saving)", ckpt)
    return None


def checkpoint_to_resume(run_dir: Path, resume: bool) -> Path | None:
    """With `resume`, the newest complete checkpoint (metrics logged after it are dropped, since
    they will be logged again); without, None, refusing a directory that already holds a run."""
    if not resume:
        if (run_dir / rundir.METRICS).exists():
            raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another output.dir")
        return None
    checkpoint = last_complete_checkpoint(run_dir / rundir.CHECKPOINTS)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no complete checkpoint in {rundir.CHECKPOINTS}/)")
    _forget_metrics_after(run_dir, int(checkpoint.name.split("-")[-1]))
    return checkpoint


def train_or_restore(trainer: Trainer, checkpoint: Path | None) -> None:
    """trainer.train(), resuming from `checkpoint` if given. A checkpoint at the run's last step
    (the job was stopped after it, before the final save) is restored instead of resumed:
    transformers 5.24's loop trains one step before it looks at max_steps, so resuming there
    trains a step past the end (measured: max_steps 4, resumed at checkpoint-4, ends at step 5)."""
    state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE)) if checkpoint else None
    # This run's length as train() computes it (a resumed run may have been given more steps).
    max_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1] if state else 0
    if state is None or state.global_step < max_steps:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return
    log.info("%s is the last step (%d of %d): restoring it, nothing is left to train", checkpoint, state.global_step, max_steps)
    best = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    # What train() would end with: the best checkpoint's weights when it keeps the best, else the last's.
    # Trainer's own loader, so adapters, full models and sharded files load as a resumed run loads them.
    trainer._load_from_checkpoint(best if best and Path(best).is_dir() else str(checkpoint))
    trainer.state = state


def _forget_metrics_after(run_dir: Path, step: int) -> None:
    """On resume, rows logged after the checkpoint will be logged again; drop the stale ones."""
    path = run_dir / rundir.METRICS
    if path.exists():
        rundir.write_jsonl(path, [r for r in rundir.read_jsonl(path) if r.get("step", 0) <= step])


def training_arguments(config: Config, run_dir: Path, has_val: bool) -> TrainingArguments:
    t = config.train
    return TrainingArguments(
        output_dir=str(run_dir / rundir.CHECKPOINTS),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is read as a ratio of the total steps
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if has_val else "no",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=t.keep_checkpoints,
        load_best_model_at_end=has_val,
        **best_model_arguments(t),
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,  # our own bar shows tokens/s
        bf16=resolve_precision(t.precision) == "bf16",
        train_sampling_strategy="group_by_length" if t.group_by_length else "random" if t.shuffle else "sequential",
        # Counted in the trainer state, so it survives --resume (our bar's count starts at the resume).
        include_num_input_tokens_seen="non_padding",
    )


def _merge(model: Any, config: Config, adapter_dir: Path) -> Any:
    """The adapter folded into the base. A bf16-stored training base (precision bf16_base) would
    round the merged weights to bf16, so the saved adapter is folded into the fp32 base instead."""
    if base_dtype(config) == torch.float32:
        return model.merge_and_unload()
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(resolve(config.model.name), dtype=torch.float32)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def save_final(trainer: Trainer, config: Config, tokenizer: Any, run_dir: Path) -> Path:
    """Write adapter/ (LoRA) or model/ (full) atomically: to a temporary folder, then rename."""
    target = run_dir / (rundir.ADAPTER if is_adapter(config.model) else rundir.MODEL)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    trainer.model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    if config.output.merge and is_adapter(config.model) and not can_merge(config.model):
        log.warning("output.merge: skipped, a %s adapter adds virtual tokens and cannot be folded into the weights; load the run dir with its adapter/", config.model.adapter)
    elif is_adapter(config.model) and config.output.merge:
        merged = _merge(trainer.model, config, target)
        merged_tmp = run_dir / (rundir.MERGED + ".tmp")
        shutil.rmtree(merged_tmp, ignore_errors=True)
        merged.save_pretrained(merged_tmp)
        tokenizer.save_pretrained(merged_tmp)
        shutil.rmtree(run_dir / rundir.MERGED, ignore_errors=True)
        merged_tmp.replace(run_dir / rundir.MERGED)
    return target


def _behaviour_eval(config: Config, data: Prepared, tokenizer: Any) -> BehaviourEval | None:
    if not config.train.behaviour_eval.enabled:
        return None
    if not data.val:
        raise NoUsableData(f"{config.data.val or config.data.train}: train.behaviour_eval is on but no validation example is left (see {rundir.DATA_REPORT})")
    return BehaviourEval.from_config(config, data.val_conversations, tokenizer)


def train(config: Config, resume: bool = False, extra_callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run the whole SFT job; returns the summary also written to summary.json.

    `extra_callbacks` (e.g. a sweep's pruning callback) join the Trainer's callbacks.
    """
    run_dir = Path(config.output.dir)
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    checkpoint = checkpoint_to_resume(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_text(run_dir / rundir.CONFIG, dump(config))
    set_seed(config.train.seed)
    model, tokenizer = load_base(config)
    data: Prepared = prepare(config.data, tokenizer, run_dir, config.model.system_prompt)
    rundir.write_json(run_dir / rundir.DATA_REPORT, data.report)
    behaviour = _behaviour_eval(config, data, tokenizer)
    progress = TokenProgressCallback()
    trackers = tracking_callbacks(config, run_dir)
    trainer = CountingTrainer(
        model=model,
        args=training_arguments(config, run_dir, has_val=bool(data.val)),
        train_dataset=ExampleDataset(data.train),
        eval_dataset=ExampleDataset(data.val) if data.val else None,
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=[MetricsFileCallback(run_dir), progress, *trackers, *(extra_callbacks or [])],
        progress=progress,
        behaviour=behaviour,
        first_token_weight=config.train.first_token_weight,
        focal_gamma=config.train.focal_gamma,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        train_or_restore(trainer, checkpoint)
        final = trainer.evaluate() if data.val else {}
    finally:
        close_trackers(trackers)  # after the final evaluation, so trackers record it too
    # Under `accelerate launch` every process gets here; one writes the outputs, the others wait for them.
    saved = save_final(trainer, config, tokenizer, run_dir) if trainer.is_world_process_zero() else None
    trainer.accelerator.wait_for_everyone()
    summary = {
        "run_dir": str(run_dir),
        "model": config.model.name,
        "saved": str(saved),
        "steps": trainer.state.global_step,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "final_val_loss": final.get("eval_loss"),
        # Which evaluation metric chose best_checkpoint, and its value there.
        "best_metric": {"name": config.train.best_metric, "value": trainer.state.best_metric} if data.val else None,
        "final_val_behaviour": {k[len("eval_"):]: v for k, v in final.items() if k.startswith("eval_behaviour_")} or None,
        "behaviour_eval_contexts": len(behaviour.contexts) if behaviour else None,
        "train_examples": len(data.train),
        "val_examples": len(data.val),
        "throughput": progress.throughput(),
        "trained_tokens": int(trainer.state.num_input_tokens_seen),  # every step of the run, resumed or not
    }
    if trainer.is_world_process_zero():
        rundir.write_json(run_dir / rundir.SUMMARY, summary)
    return summary

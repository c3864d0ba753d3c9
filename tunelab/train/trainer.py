"""The training loop shared by the sft and bake recipes: examples in, a loss over target tokens.

`MaskedLossTrainer` is transformers' Trainer with the loss computed only where a label is set
(per-token weights: first tokens of a reply, focal), the evaluation loss as a mean over every
target token, and behaviour rates added to each evaluation when asked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tunelab import rundir
from tunelab.config import Config, TrainConfig
from tunelab.data.tokenize import IGNORE
from tunelab.messages import Example
from tunelab.models.load import decoder_and_head, load_for_training
from tunelab.train.behaviour_eval import BehaviourEval, best_model_arguments
from tunelab.train.callbacks import TokenProgressCallback
from tunelab.train.length_groups import GROUP_COST, group_rows, length_groups, row_extents
from tunelab.train.precision import autocast, base_dtype, compile_decoder_layers, fp32_attention, resolve


def load_trainable(config: Config) -> tuple[Any, Any]:
    """(model, tokenizer) to train: the base in the dtype `train.precision` asks for, wrapped in a
    fresh adapter, its decoder layers compiled with `train.compile` (`auto` resolved as the run's
    Session resolved it: the probe runs once per process)."""
    config = resolve(config)
    model, tokenizer = load_for_training(config.model, base_dtype(config))
    if config.train.precision == "bf16_base" and not torch.cuda.is_available():
        fp32_attention(model)
    if config.train.compile is True:
        compile_decoder_layers(model)
    return model, tokenizer


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


class MaskedLossTrainer(Trainer):
    """Trainer whose loss is the mean over target tokens, optionally weighted per token, with the
    output head computed only where there is a target (in one process); it counts tokens for the
    progress bar, and sft and bake train on it.

    In masked SFT most positions carry no loss, yet the stock forward pass multiplies every
    position's hidden state by the whole vocabulary, a large share of a small model's work. The
    loss is the same mean over target tokens either way. Under DDP the stock
    path is kept, because gradient synchronisation hooks hang off the wrapped module's forward.
    On a CPU a batch of several rows runs through the layers in groups of similar length, each
    padded only to its own longest row (`length_groups`; None keeps one padded pass).

    With `behaviour`, every evaluation also generates replies to a few validation contexts and
    adds their behaviour rates to the metrics, where `metric_for_best_model` can select on them.
    """

    def __init__(
        self,
        *args: Any,
        progress: TokenProgressCallback,
        target_only_head: bool = True,
        behaviour: BehaviourEval | None = None,
        first_token_weight: float = 1.0,
        focal_gamma: float = 0.0,
        length_groups: int | None = None if torch.cuda.is_available() else GROUP_COST,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.first_token_weight = first_token_weight
        self.focal_gamma = focal_gamma
        self.progress = progress
        self.target_only_head = target_only_head
        self.behaviour = behaviour
        self.length_groups = length_groups
        self._loss_sums = torch.zeros(2, dtype=torch.float64)
        self.remove_callback(ProgressCallback)  # our own bar (TokenProgressCallback) shows tokens/s
        self.remove_callback(PrinterCallback)

    def evaluation_loop(
        self, dataloader, description, prediction_loss_only=None, ignore_keys=None, metric_key_prefix="eval"
    ):
        self._loss_sums = torch.zeros(2, dtype=torch.float64)  # (sum of token losses, target tokens) here
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix)
        # The stock loss is the mean of per-batch means, so it moves with the eval batch size and
        # the number of processes; the mean over every target token does not.
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
        base = decoder_and_head(self.accelerator.unwrap_model(model))
        if return_outputs or not self.target_only_head or base is None or self.accelerator.num_processes > 1:
            if (self.first_token_weight != 1.0 or self.focal_gamma) and model.training:
                raise ValueError(
                    "train.first_token_weight and train.focal_gamma need the target-only output head (one "
                    "process, an adapter inside the layers or a full fine-tune); leave them at 1 and 0 here"
                )
            self.loss_is_scaled_for_ga = None
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        decoder, head = base
        parts, targets = [], []
        for part in self._length_groups(inputs):
            labels = part["labels"][:, 1:]
            keep = labels != IGNORE
            hidden = decoder(input_ids=part["input_ids"], attention_mask=part["attention_mask"]).last_hidden_state
            logits = head(hidden[:, :-1][keep]).float()
            losses = torch.nn.functional.cross_entropy(logits, labels[keep], reduction="none")
            weights = first_token_weights(keep, self.first_token_weight)
            if self.focal_gamma and model.training:
                weights = weights * focal_weights(losses, self.focal_gamma)
            parts.append((losses * weights).sum())
            targets.append(keep.sum())
        loss = torch.stack(parts).sum()
        # With gradient accumulation, Trainer counts the targets of the whole accumulated batch.
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        # The count stays a tensor: an int() here would wait on the device every step.
        return loss / (
            num_items_in_batch if num_items_in_batch is not None else torch.stack(targets).sum().clamp(min=1)
        )

    def _length_groups(self, inputs: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """The batch as one part, or, with `length_groups` set, as groups of rows of similar length,
        each trimmed to its longest row (tunelab.train.length_groups): the same loss with less padding."""
        if self.length_groups is None or inputs["input_ids"].shape[0] == 1:
            return [inputs]
        extents = row_extents(inputs["attention_mask"])
        return [
            group_rows(inputs, rows, max(extents[i] for i in rows))
            for rows in length_groups(extents, self.length_groups)
        ]

    def _evaluation_loss(self, model, inputs):
        """The batch's mean target-token loss, its token sum and count added to this process's totals."""
        outputs = model(**{k: v for k, v in inputs.items() if k != "labels"})
        length = inputs["labels"].shape[1]  # prompt tuning puts its virtual tokens' logits first
        logits, labels = outputs.logits[:, -length:-1].float(), inputs["labels"][:, 1:]
        total = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=IGNORE, reduction="sum"
        )
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


def schedule_arguments(t: TrainConfig, run_dir: Path, has_val: bool) -> dict[str, Any]:
    """The arguments every recipe's trainer takes alike from the train section (transformers'
    TrainingArguments and TRL's configs share these names): the schedule, logging, evaluation,
    checkpoints, and a CPU-friendly quiet data loader."""
    return dict(
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
        report_to="none",
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,  # our own bar shows tokens/s
    )


def training_arguments(config: Config, run_dir: Path, has_val: bool) -> TrainingArguments:
    t = resolve(config).train
    return TrainingArguments(
        **schedule_arguments(t, run_dir, has_val),
        load_best_model_at_end=has_val,
        **best_model_arguments(t),
        remove_unused_columns=False,
        bf16=autocast(t.precision),
        train_sampling_strategy="group_by_length" if t.group_by_length else "random" if t.shuffle else "sequential",
        # Counted in the trainer state, so it survives --resume (our bar's count starts at the resume).
        include_num_input_tokens_seen="non_padding",
    )

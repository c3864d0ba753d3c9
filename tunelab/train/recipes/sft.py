"""recipe: sft — supervised fine-tuning on masked dialogues, on transformers' Trainer and peft.

The run directory (see rundir.py) gets: the resolved config, the data report, metrics.jsonl,
checkpoints/, the final adapter/ (or model/ for full fine-tuning), summary.json, and with
`output.merge` a merged/ model directory that plain transformers loads.
"""

from __future__ import annotations

from typing import Any

from tunelab import rundir
from tunelab.config import Config
from tunelab.data.prepare import NoUsableData, Prepared, prepare
from tunelab.train.behaviour_eval import BehaviourEval
from tunelab.train.callbacks import TokenProgressCallback
from tunelab.train.session import Session
from tunelab.train.trainer import ExampleDataset, MaskedLossTrainer, PadCollator, load_trainable, training_arguments


def _behaviour_eval(config: Config, data: Prepared, tokenizer: Any) -> BehaviourEval | None:
    if not config.train.behaviour_eval.enabled:
        return None
    if not data.val:
        raise NoUsableData(
            f"{config.data.val or config.data.train}: train.behaviour_eval is on but no validation example is left (see {rundir.DATA_REPORT})"
        )
    return BehaviourEval.from_config(config, data.val_conversations, tokenizer)


def train(config: Config, resume: bool = False, extra_callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run the whole SFT job; returns the summary also written to summary.json.

    `extra_callbacks` (e.g. a sweep's pruning callback) join the Trainer's callbacks.
    """
    session = Session.start(config, resume)
    config = session.config  # precision and compile resolved
    model, tokenizer = load_trainable(config)
    data: Prepared = prepare(config.data, tokenizer, session.run_dir, config.model.system_prompt)
    rundir.write_json(session.run_dir / rundir.DATA_REPORT, data.report)
    config = session.settle_cadence(len(data.train), len(data.val))
    behaviour = _behaviour_eval(config, data, tokenizer)
    progress = TokenProgressCallback()
    trainer = MaskedLossTrainer(
        model=model,
        args=training_arguments(config, session.run_dir, has_val=bool(data.val)),
        train_dataset=ExampleDataset(data.train),
        eval_dataset=ExampleDataset(data.val) if data.val else None,
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=[*session.callbacks(progress, track=True), *(extra_callbacks or [])],
        progress=progress,
        behaviour=behaviour,
        first_token_weight=config.train.first_token_weight,
        focal_gamma=config.train.focal_gamma,
    )
    final = session.train(trainer, evaluate=bool(data.val))
    state = trainer.state
    return session.finish(
        trainer,
        tokenizer,
        {
            "best_checkpoint": state.best_model_checkpoint,
            "final_val_loss": final.get("eval_loss"),
            # Which evaluation metric chose best_checkpoint, and its value there.
            "best_metric": {"name": config.train.best_metric, "value": state.best_metric} if data.val else None,
            "final_val_behaviour": {k[len("eval_") :]: v for k, v in final.items() if k.startswith("eval_behaviour_")}
            or None,
            "behaviour_eval_contexts": len(behaviour.contexts) if behaviour else None,
            "train_examples": len(data.train),
            "val_examples": len(data.val),
            "throughput": progress.throughput(),
            "trained_tokens": int(state.num_input_tokens_seen),  # every step of the run, resumed or not
        },
    )

"""Behaviour evaluation during training: generate replies to a few fixed validation contexts at
every evaluation step and score their dialogue acts, so the best checkpoint can be the one that
*does the right thing* rather than the one with the lowest loss.

The metrics join the Trainer's evaluation metrics (`eval_behaviour_appropriate`, ...), so they
reach metrics.jsonl (split "val"), the trackers, and `metric_for_best_model` like the loss does.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.config import Config, TrainConfig
from tunelab.eval.contexts import Context, build_contexts
from tunelab.generation.replies import GenerationSettings, Reply, generate_replies, render_prompts
from tunelab.messages import Conversation
from tunelab.train.precision import eager_generation

log = logging.getLogger(__name__)

# metrics.jsonl / Trainer metric names (without the "eval_" prefix) -> where score_pairs keeps them.
RATES = {"behaviour_appropriate": ("appropriateness",), "behaviour_correct": ("correctness",)}
TOOL_RATES = {
    "behaviour_tool_name": ("tool_call", "name_accuracy"),
    "behaviour_tool_args": ("tool_call", "args_exact_accuracy"),
}


def best_model_arguments(train: TrainConfig) -> dict[str, Any]:
    """`metric_for_best_model` and its direction: a loss is better lower, a rate higher."""
    if train.best_metric == "auto":
        raise ValueError("train.best_metric auto must be resolved first (tunelab.train.precision.resolve)")
    return {"metric_for_best_model": f"eval_{train.best_metric}", "greater_is_better": train.best_metric != "loss"}


def pick_contexts(conversations: Sequence[Conversation], n: int, seed: int) -> list[Context]:
    """`n` assistant turns drawn (seeded) from the conversations, in their original order."""
    contexts = build_contexts(conversations, "all")
    if n >= len(contexts):
        if n > len(contexts):
            log.warning(
                "train.behaviour_eval.contexts=%d but the validation set has %d assistant turns; using all %d",
                n,
                len(contexts),
                len(contexts),
            )
        return contexts
    chosen = sorted(random.Random(seed).sample(range(len(contexts)), n))
    return [contexts[i] for i in chosen]


@dataclass
class BehaviourEval:
    """A fixed set of contexts and how to generate for them; calling it scores a model."""

    contexts: list[Context]
    prompts: list[list[int]]
    tokenizer: Any
    settings: GenerationSettings

    @classmethod
    def from_config(cls, config: Config, conversations: Sequence[Conversation], tokenizer: Any) -> BehaviourEval:
        # data.seed, not train.seed: a sweep over training seeds then scores every run on the same contexts.
        cfg = config.train.behaviour_eval
        contexts = pick_contexts(conversations, cfg.contexts, config.data.seed)
        if not contexts:
            raise ValueError(
                f"{config.data.val or config.data.train}: the validation conversations have no assistant turn for train.behaviour_eval"
            )
        settings = GenerationSettings(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
        return cls(contexts, render_prompts(tokenizer, [c.messages for c in contexts]), tokenizer, settings)

    def replies(self, model: Any) -> list[Reply]:
        """Greedy replies in eval mode (no dropout), through compiled layers' eager code (train.compile),
        then the model goes back to the mode it was in."""
        was_training = model.training
        model.eval()
        try:
            with eager_generation():
                return generate_replies(model, self.tokenizer, self.prompts, self.settings, progress=False)
        finally:
            model.train(was_training)

    def __call__(self, model: Any) -> dict[str, float]:
        from tunelab.eval.runner import score_behaviour

        replies = self.replies(model)
        rows = [
            {
                "prediction": r.text,
                "reference": c.reference,
                "context": [m.to_openai() for m in c.messages],
                **({"expected": c.expected} if c.expected else {}),
            }
            for c, r in zip(self.contexts, replies)
        ]
        return behaviour_metrics(score_behaviour(rows))


def behaviour_metrics(scores: dict[str, Any]) -> dict[str, float]:
    """The rates of `score_pairs` as flat metric names; tool-call accuracy only when a reference calls a
    tool; ask/confirm correctness when the contexts hold such turns."""
    wanted = dict(RATES, **(TOOL_RATES if scores["tool_call"]["n"] else {}))
    out = {}
    for name, path in wanted.items():
        value: Any = scores
        for key in path:
            value = value[key]
        out[name] = float(value)
    # per-act correctness of the acts a behaviour curve is read for (the cafe demo's ask/confirm)
    for act in ("ask", "confirm"):
        rates = scores["per_act"].get(act) or {}
        if rates.get("n"):
            out[f"behaviour_{act}_correct"] = float(rates["correctness"])
    return out

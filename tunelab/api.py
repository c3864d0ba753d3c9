"""The Python API: what the `tunelab` command does, as functions for scripts and notebooks.

Each function wraps the one implementation the command calls (the CLI is a shell over this
module). Heavy modules (torch, transformers) are imported inside the functions, so importing
tunelab stays cheap. Names avoid the subpackages' names (`tunelab.train`, `tunelab.serve`,
`tunelab.config`): a package attribute cannot be both a module and a function.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from tunelab.config import Config
    from tunelab.eval.compare import CompareResult
    from tunelab.eval.rubric import RubricReport
    from tunelab.eval.runner import EvalResult
    from tunelab.generation.chat import ChatSession
    from tunelab.generation.replies import GenerationSettings

__all__ = ["load_config", "fine_tune", "bake_prompt", "evaluate", "compare", "judge", "serve_model", "chat"]

PathLike = str | Path
Turns = Literal["all", "last"]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it, section by section (nested mappings merge, values replace)."""
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def load_config(
    source: PathLike | dict[str, Any] | None = None, overrides: Sequence[str] = (), **sections: Any
) -> Config:
    """A validated run config, from a YAML file or a dict, and/or keyword sections.

    `overrides` are `key=value` strings as given to `--set` (e.g. "train.max_steps=3"). Keyword
    sections lie over a dict `source`, nested mappings merged:
    load_config(data={"train": "train.jsonl"}, train={"max_steps": 3}).
    Unknown keys are errors that name the nearest valid key.
    """
    from tunelab.config import load

    if isinstance(source, dict) or sections:
        if source is not None and not isinstance(source, dict):
            raise ValueError("give a YAML path (with overrides) or a dict and sections, not both")
        return load(None, list(overrides), data=_merge(source or {}, sections))
    return load(source, list(overrides))


def fine_tune(config: Config | PathLike, resume: bool = False, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Train with the config's recipe (sft, bake, kto or dpo); returns the run's summary.

    The summary holds `run_dir` (where the adapter, metrics and the resolved config went),
    `steps` and, when there was a validation set, `final_val_loss`. A path is loaded first.
    """
    from tunelab.train.run import run

    if isinstance(config, (str, Path)):
        config = load_config(config, overrides)
    elif overrides:
        raise ValueError("overrides apply to a config path; change a loaded config's fields instead")
    return run(config, resume=resume)


def bake_prompt(
    prompt: PathLike,
    logs: PathLike,
    *,
    out: PathLike | None = None,
    model: str | None = None,
    overrides: Sequence[str] = (),
    **sections: Any,
) -> dict[str, Any]:
    """Bake a system prompt into a model (recipe bake) from a feedback log; returns the run's summary.

    `prompt` is a prompt YAML (rules, see docs/bake.md), `logs` the feedback log (.csv, .jsonl,
    .parquet). Every other setting keeps its default unless given as a keyword section
    (e.g. bake={"targets": ["logged"]}, logs={"columns": {...}}) or an override string.
    """
    base: dict[str, Any] = {
        "data": {"train": str(logs)},
        "train": {"recipe": "bake"},
        "bake": {"system_prompt_file": str(prompt)},
    }
    if out is not None:
        base["output"] = {"dir": str(out)}
    if model is not None:
        base["model"] = {"name": model}
    config = load_config(_merge(base, sections), overrides)
    if config.train.recipe != "bake":
        raise ValueError(f"bake_prompt trains recipe bake, not {config.train.recipe!r}")
    return fine_tune(config)


def evaluate(
    model: str,
    data: PathLike,
    *,
    out_dir: PathLike | None = None,
    system_prompt_file: PathLike | None = None,
    turns: Turns = "all",
    settings: GenerationSettings | None = None,
    limit: int | None = None,
    semantic: bool = True,
    progress: bool = True,
) -> EvalResult:
    """Generate a reply for each assistant turn of the conversations in `data` and score it.

    `model` is a run directory, model directory or registry name. Writes predictions.jsonl and
    scores.json into `out_dir` (default: the run directory itself, else evals/<model>__<data>);
    the result holds `scores`, `rows` and `out_dir`.
    """
    from tunelab.eval.runner import run_eval
    from tunelab.generation.replies import GenerationSettings

    return run_eval(
        model,
        data,
        out_dir=out_dir,
        system_prompt_file=system_prompt_file,
        turns=turns,
        settings=settings or GenerationSettings(),
        limit=limit,
        semantic=semantic,
        progress=progress,
    )


def compare(
    a: str,
    b: str,
    data: PathLike,
    *,
    system_prompt_a: PathLike | None = None,
    system_prompt_b: PathLike | None = None,
    out_dir: PathLike | None = None,
    turns: Turns = "all",
    settings: GenerationSettings | None = None,
    limit: int | None = None,
    semantic: bool = True,
    n_resamples: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> CompareResult:
    """Evaluate A and B (two models, or one with and without a system prompt) on the same contexts.

    The result holds each side's evaluation, per-metric deltas B - A with paired bootstrap 95%
    CIs (`deltas`), the contexts whose dialogue acts differ, and `out_dir` (compare.json).
    """
    from tunelab.eval.compare import Side, run_compare
    from tunelab.generation.replies import GenerationSettings

    return run_compare(
        Side(a, str(system_prompt_a) if system_prompt_a else None),
        Side(b, str(system_prompt_b) if system_prompt_b else None),
        data,
        out_dir=out_dir,
        turns=turns,
        settings=settings or GenerationSettings(),
        limit=limit,
        semantic=semantic,
        n_resamples=n_resamples,
        seed=seed,
        progress=progress,
    )


def judge(
    items: PathLike | Sequence[dict[str, Any]],
    *,
    base_url: str,
    model: str,
    api_key_env: str | None = None,
    cache: PathLike | None = None,
    out: PathLike | None = None,
    timeout: float = 60.0,
    retries: int = 3,
) -> RubricReport:
    """Score replies with an LLM rubric judge (correctness, appropriateness, style, 1-5 each).

    `items` is a predictions JSONL (as `evaluate` writes) or rows with 'prediction' and optional
    'context' and 'reference'. The judge is any OpenAI-compatible endpoint; with `cache`, raw
    verdicts are kept in that sqlite file; with `out`, one verdict per row is written there.
    `report.summary()` gives the means.
    """
    from tunelab import rundir
    from tunelab.eval.rubric import RubricJudge, RubricSettings, read_items, verdict_rows

    rows = read_items(items) if isinstance(items, (str, Path)) else list(items)
    rubric = RubricJudge(
        RubricSettings(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            timeout=timeout,
            retries=retries,
            cache_path=Path(cache) if cache is not None else None,
        )
    )
    try:
        report = rubric.judge_many(rows)
    finally:
        rubric.close()
    if out is not None:
        rundir.write_jsonl(Path(out), verdict_rows(rows, report))
    return report


def serve_model(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str | None = None,
    api_key: str | None = None,
    system_prompt: str | None = None,
    max_tokens_limit: int = 1024,
    batch_window: float = 0.01,
    max_batch: int = 16,
) -> None:
    """Serve a run or model with an OpenAI-compatible API until interrupted (blocks).

    `name` is the model id clients send (default: the directory name); `batch_window` is the
    seconds the server waits for requests to batch with the first.
    """
    from tunelab.serve.app import ServeSettings, default_model_name, serve

    settings = ServeSettings(
        model_name=name or default_model_name(model),
        api_key=api_key,
        system_prompt=system_prompt,
        max_tokens_limit=max_tokens_limit,
        batch_window=batch_window,
        max_batch=max_batch,
    )
    serve(model, host=host, port=port, settings=settings)


def chat(
    model: str, *, system: str | None = None, max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0
) -> ChatSession:
    """Open a conversation with a run or model: `session.reply(text)` returns the answer and keeps the history.

    temperature 0 is greedy (the same question gets the same answer); `session.reset()` forgets
    the conversation, `session.set_system(text)` replaces the system prompt.
    """
    from tunelab.generation.chat import open_session

    return open_session(model, system=system, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)

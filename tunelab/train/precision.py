"""Training-speed levers: numeric precision, the base weights' dtype and compiled layers, and
the rule that picks them when the config says `auto`.

On a CPU, bf16 autocast re-casts every frozen weight each step, which costs what the small
matmuls gain, so `auto` never picks it there. `bf16_base` stores the frozen base in bf16 once
(adapters only; they and the optimizer stay fp32) and `compile` compiles each decoder layer;
together they pay where the CPU multiplies bf16 natively (AMX, AVX512-BF16), and only together
(docs/performance.md). `models/hardware.py` measures the CPU once per process; `resolve` turns a
config's `auto` into what the run uses, for every entry point (`tunelab train`, the studio's
jobs, sweeps, the demos, the benches), and `choice_line` says what it chose and why. The same
`resolve` fills in the batch size, learning rate and checkpoint metric left at `auto`, the
defaults chosen by measurement (`resolve_hyperparameters`, docs/training.md#defaults).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from tunelab.config import Config, SpeedProbe
from tunelab.models import hardware
from tunelab.models.adapters import LORA_FAMILY
from tunelab.models.load import decoder_and_head

log = logging.getLogger(__name__)


def autocast(precision: str) -> bool:
    """Whether a resolved `train.precision` trains under bf16 autocast (bf16_base does not: its
    base already is bf16 and the adapter computes in fp32)."""
    if precision == "auto":
        raise ValueError("train.precision auto must be resolved first (tunelab.train.precision.resolve)")
    return precision == "bf16"


def base_dtype(config: Any) -> torch.dtype:
    """The dtype the base model is loaded in for training."""
    # config.load refuses bf16_base with a full fine-tune (every weight would train in bf16)
    return torch.bfloat16 if config.train.precision == "bf16_base" else torch.float32


def compile_decoder_layers(model: Any) -> int:
    """torch.compile each decoder layer in place (regional compilation: one small graph per
    layer, the same code for all, so the compile is short; state-dict names do not change, so
    checkpoints and adapters save as usual). Returns how many layers were compiled."""
    import torch._dynamo

    base = decoder_and_head(model)
    layers = getattr(base[0], "layers", None) if base else None
    if not layers:
        log.warning("train.compile: no decoder layers found in %s; training uncompiled", type(model).__name__)
        return 0
    # Each layer instance is guarded separately, and dynamic shapes add variants: room for all of them.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(layers))
    torch._dynamo.config.accumulated_recompile_limit = max(
        torch._dynamo.config.accumulated_recompile_limit, 32 * len(layers)
    )
    for layer in layers:
        layer.compile(dynamic=True)
    log.info("train.compile: %d decoder layers compiled (the first step pays for it)", len(layers))
    return len(layers)


FP32_ATTENTION = "tunelab_sdpa_fp32"


def _sdpa_in_fp32(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)
    return out.to(query.dtype), weights


def fp32_attention(model: Any) -> bool:
    """Compute the attention of a bf16-stored base in fp32 (scaled_dot_product_attention as the
    model had it; the projections around it stay bf16). On a CPU, SDPA's backward in bf16 runs
    about twice as long as in fp32 at a dialogue's length (bench/profile_step.py), and fp32 scores
    are the more exact. Only the model in memory changes: nothing saved records it. Returns
    whether it was applied (not to models that use another attention than sdpa)."""
    from peft import PeftModel
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if getattr(base.config, "_attn_implementation", None) not in ("sdpa", FP32_ATTENTION):
        return False
    AttentionInterface.register(FP32_ATTENTION, _sdpa_in_fp32)
    AttentionMaskInterface.register(FP32_ATTENTION, sdpa_mask)
    base.set_attn_implementation(FP32_ATTENTION)
    return True


def eager_generation() -> Any:
    """A context in which compiled layers run eagerly: generation during training (behaviour_eval)
    goes through the same modules and weights as the uncompiled model, so its replies are the eager
    ones. Compiled, each layer would need new graphs for generation's KV cache and inference mode
    (a tiny model's first evaluation took 38 s more), counted against dynamo's recompile limit."""
    return torch.compiler.set_stance("force_eager")


def _device() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else hardware.cpu_model()


def _auto_precision(config: Config) -> tuple[str, SpeedProbe]:
    """What `train.precision: auto` is for this run, and why."""
    t, adapter = config.train, config.model.adapter
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        if t.recipe in ("kto", "dpo"):
            return "fp32", SpeedProbe(device=name, why=f"recipe {t.recipe}: TRL's trainers run fp32 here")
        if torch.cuda.is_bf16_supported():
            return "bf16", SpeedProbe(device=name, why="CUDA with bf16: bf16 autocast")
        return "fp32", SpeedProbe(device=name, why="CUDA without bf16: fp32")
    # bf16_base pays only with compiled layers, which only recipe sft takes, and was measured with LoRA.
    if t.recipe != "sft" or adapter != "lora" or t.compile is False:
        reason = (
            f"recipe {t.recipe}"
            if t.recipe != "sft"
            else f"model.adapter {adapter}"
            if adapter != "lora"
            else "train.compile false"
        )
        probe = SpeedProbe(
            device=hardware.cpu_model(),
            threads=torch.get_num_threads(),
            why=f"{reason}: fp32 (bf16_base pays only with compiled LoRA layers, recipe sft)",
        )
        return "fp32", probe
    return hardware.cpu_choice()


# What `auto` means for the batch size, learning rate and checkpoint metric (docs/training.md#defaults).
CPU_BATCH = 1
CUDA_BATCH = 8
PREFERENCE_BATCH = 4
LORA_LR = 1e-3
OTHER_LR = 2e-4


def auto_batch_size(config: Config) -> tuple[int, str]:
    """`train.batch_size: auto` for this run, and why."""
    recipe = config.train.recipe
    if recipe in ("kto", "dpo"):
        # Not measured for the preference recipes; TRL's KTO refuses a batch of 1 (its KL estimate
        # pairs each example with another of its batch).
        return PREFERENCE_BATCH, f"recipe {recipe}, not measured"
    if torch.cuda.is_available():
        # Not measured here: a GPU step costs about the same for 1 or 8 short dialogues.
        return CUDA_BATCH, "CUDA, 8 dialogues a step"
    # One dialogue a step: no padding, and the behaviour choice is learned per update (docs/cafe.md).
    return CPU_BATCH, "CPU, one dialogue a step"


def auto_learning_rate(config: Config) -> tuple[float, str]:
    """`train.learning_rate: auto` for this run's recipe and adapter, and why."""
    recipe, adapter = config.train.recipe, config.model.adapter
    if recipe in ("kto", "dpo"):  # nothing measured for them: the previous default
        return OTHER_LR, f"recipe {recipe}, not measured"
    if adapter in ("lora", "dora"):
        return LORA_LR, {"lora": "LoRA", "dora": "DoRA"}[adapter]
    # full, qlora (CUDA only), ia3, prompt and p-tuning: not measured here, the previous default
    return OTHER_LR, f"model.adapter {adapter}, not measured"


def auto_best_metric(config: Config) -> tuple[str, str]:
    """`train.best_metric: auto`: the behaviour the run measures, else the validation loss."""
    if config.train.behaviour_eval.enabled:
        return "behaviour_correct", "behaviour evaluation on"
    return "loss", "no behaviour evaluation"


# (train field, its name in the run's first line, its auto rule)
AUTO_RULES = (
    ("batch_size", "batch", auto_batch_size),
    ("learning_rate", "lr", auto_learning_rate),
    ("best_metric", "checkpoint by", auto_best_metric),
)


def resolve_hyperparameters(config: Config) -> Config:
    """`config` with `train.batch_size`, `train.learning_rate` and `train.best_metric` left at
    `auto` replaced by what `auto` means here (no measuring: the device, recipe, adapter and
    behaviour_eval decide). Unchanged when none is auto."""
    t = config.train
    chosen = {name: rule(config)[0] for name, _, rule in AUTO_RULES if getattr(t, name) == "auto"}
    if not chosen:
        return config
    return config.model_copy(update={"train": t.model_copy(update=chosen)})


def resolve(config: Config) -> Config:
    """`config` as this run uses it: `train.precision` and `train.compile` decided here when `auto`
    (measuring the CPU at most once per process) with `train.probe` saying on what, and the
    hyperparameters of `resolve_hyperparameters`. A config with nothing left at auto comes back
    unchanged, so resolving twice is free."""
    config = resolve_hyperparameters(config)
    t = config.train
    if t.precision != "auto" and t.compile != "auto":
        return config
    precision, probe = (t.precision, None) if t.precision != "auto" else _auto_precision(config)
    compiled = t.compile
    if compiled == "auto":
        # compiled fp32 measured no faster; compiled bf16_base is what makes native bf16 pay
        compiled = precision == "bf16_base" and t.recipe == "sft" and not torch.cuda.is_available()
    if probe is None:  # precision as configured; compile auto followed it
        why = f"train.precision {precision} as configured; compile auto follows it (on with bf16_base, recipe sft, CPU)"
        probe = SpeedProbe(device=_device(), threads=torch.get_num_threads(), why=why)
    train = t.model_copy(update={"precision": precision, "compile": compiled, "probe": probe})
    return config.model_copy(update={"train": train})


def short_number(x: float) -> str:
    """A learning rate as people write it.

    >>> short_number(0.001), short_number(0.0002), short_number(0.00045)
    ('1e-3', '2e-4', '4.5e-4')
    """
    mantissa, exponent = f"{x:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def _hyperparameter_line(configured: Config, resolved: Config) -> str:
    c, r = configured.train, resolved.train
    parts = []
    for name, label, rule in AUTO_RULES:
        used = getattr(r, name)
        text = f"{label} {short_number(used) if isinstance(used, float) else used}"
        parts.append(text + (f" (auto: {rule(configured)[1]})" if getattr(c, name) == "auto" else ""))
    if resolved.model.adapter in LORA_FAMILY and resolved.model.lora.layers != "all":
        parts.append(f"LoRA in the last {resolved.model.lora.layers} layers")
    return ", ".join(parts)


def choice_line(configured: Config, resolved: Config) -> str:
    """One line for the start of a run: the precision and compile it uses, which of them `auto`
    chose, on what device and why (the probe's rates where it measured); then the batch size,
    learning rate and checkpoint metric, and why where `auto` chose them."""

    def setting(name: str, given: Any, used: Any) -> str:
        shown = {True: "on", False: "off"}.get(used, used)
        return f"{name} {shown}" + (" (auto)" if given == "auto" else "")

    c, r = configured.train, resolved.train
    line = f"{setting('precision', c.precision, r.precision)}, {setting('compile', c.compile, r.compile)}"
    if "auto" not in (c.precision, c.compile) or r.probe is None:
        line += " (as configured)"
    else:
        threads = f", {r.probe.threads} threads" if r.probe.threads else ""
        line += f": {r.probe.device}{threads}; {r.probe.why}"
    return f"{line}; {_hyperparameter_line(configured, resolved)}"

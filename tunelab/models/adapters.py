"""Wrap a base model with the adapter the config asks for (peft), or leave it whole for full fine-tuning.

| adapter        | what trains                                           | merges into the base |
|----------------|-------------------------------------------------------|----------------------|
| lora           | low-rank updates of the linear layers                 | yes                  |
| dora           | LoRA plus a learned per-column magnitude              | yes                  |
| qlora          | LoRA on a 4-bit quantised base (CUDA + bitsandbytes)  | yes (dequantised)    |
| ia3            | learned scaling vectors on attention k/v and the MLP  | yes                  |
| prompt_tuning  | virtual token embeddings prepended to every input     | no                   |
| p_tuning       | virtual tokens produced by a small MLP encoder        | no                   |
| full           | every weight                                          | (nothing to merge)   |
"""

from __future__ import annotations

import logging
from typing import Any

from tunelab.config import ModelConfig

log = logging.getLogger(__name__)

ADAPTERS = ("lora", "dora", "qlora", "ia3", "prompt_tuning", "p_tuning", "full")
# LoRA underneath: model.lora's settings (rank, targets, layers) apply to these.
LORA_FAMILY = ("lora", "dora", "qlora")
# Prompt-learning adapters add virtual tokens instead of changing weights: nothing to fold in.
UNMERGEABLE = frozenset({"prompt_tuning", "p_tuning"})


class AdapterUnavailable(RuntimeError):
    pass


def is_adapter(cfg: ModelConfig) -> bool:
    """True when training saves an adapter/ rather than a whole model/."""
    return cfg.adapter != "full"


def can_merge(cfg: ModelConfig) -> bool:
    """True when the trained adapter can be folded into the base weights (output.merge)."""
    return is_adapter(cfg) and cfg.adapter not in UNMERGEABLE


def check_qlora_available() -> None:
    """QLoRA's 4-bit kernels (bitsandbytes) run on CUDA only; say so plainly rather than fall back."""
    import torch

    if not torch.cuda.is_available():
        raise AdapterUnavailable(
            "model.adapter=qlora needs a CUDA GPU: bitsandbytes' 4-bit layers do not run on this machine's CPU. "
            "Use model.adapter=lora (same recipe on the unquantised base) or dora on CPU."
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise AdapterUnavailable(
            "model.adapter=qlora needs the bitsandbytes package: pip install bitsandbytes"
        ) from None


def load_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    """Extra `from_pretrained` arguments the adapter needs at load time (QLoRA: 4-bit quantisation)."""
    if cfg.adapter != "qlora":
        return {}
    check_qlora_available()
    import torch
    from transformers import BitsAndBytesConfig

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    return {"quantization_config": quant}


def adapted_layers(cfg: ModelConfig, model: Any) -> list[int] | None:
    """The indices of `model`'s decoder layers that `model.lora.layers` puts adapters in (None: every
    layer)."""
    layers = cfg.lora.layers
    if layers == "all":
        return None
    total = model.config.get_text_config().num_hidden_layers
    if layers > total:
        raise ValueError(f"model.lora.layers {layers}: {cfg.name} has {total} decoder layers")
    return None if layers == total else list(range(total - layers, total))


def linear_layer_names(model: Any) -> list[str]:
    """The short names of `model`'s linear layers, the output head left out ("q_proj", ..., "down_proj"):
    what peft's "all-linear" selects, as names its layer filter applies to (it does not filter the
    full module paths that "all-linear" turns into on a small model)."""
    import torch

    head = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and m is not head
        }
    )


def peft_config(cfg: ModelConfig, model: Any) -> Any:
    """The peft configuration object for `cfg.adapter` on the base `model` (None for full fine-tuning)."""
    import peft

    lora = cfg.lora
    if cfg.adapter in LORA_FAMILY:
        layers = adapted_layers(cfg, model)
        targets = lora.target_modules
        if layers is not None and targets == "all-linear":
            targets = linear_layer_names(model)
        return peft.LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=targets,
            layers_to_transform=layers,
            use_dora=cfg.adapter == "dora",
            task_type="CAUSAL_LM",
        )
    if cfg.adapter == "ia3":
        return peft.IA3Config(
            target_modules=cfg.ia3.target_modules,
            feedforward_modules=cfg.ia3.feedforward_modules,
            task_type="CAUSAL_LM",
        )
    if cfg.adapter == "prompt_tuning":
        return peft.PromptTuningConfig(num_virtual_tokens=cfg.prompt.num_virtual_tokens, task_type="CAUSAL_LM")
    if cfg.adapter == "p_tuning":
        return peft.PromptEncoderConfig(
            num_virtual_tokens=cfg.prompt.num_virtual_tokens,
            encoder_hidden_size=cfg.prompt.encoder_hidden_size,
            task_type="CAUSAL_LM",
        )
    if cfg.adapter == "full":
        return None
    raise ValueError(f"model.adapter: unknown adapter {cfg.adapter!r}; choose one of {', '.join(ADAPTERS)}")


def apply_adapter(model: Any, cfg: ModelConfig) -> Any:
    """The model to train: `model` itself for full fine-tuning, else a peft model with only the adapter trainable."""
    config = peft_config(cfg, model)
    if config is None:
        return model
    from peft import get_peft_model, prepare_model_for_kbit_training

    if cfg.adapter == "qlora":
        check_qlora_available()
        model = prepare_model_for_kbit_training(model)
    wrapped = get_peft_model(model, config)
    trainable, total = wrapped.get_nb_trainable_parameters()
    log.info(
        "%s adapter: %d trainable of %d parameters (%.3f%%)",
        cfg.adapter,
        trainable,
        total,
        100 * trainable / max(1, total),
    )
    return wrapped

"""The one loader of models and tokenizers, for inference and for training.

Accepted for inference: a registry name (`smollm2-135m`), a transformers model directory, a hub
id, a peft adapter directory, or a tunelab run directory (its `merged/`, `model/` or `adapter/`).
Training starts from a base (registry name, directory or hub id) wrapped in a fresh adapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import ModelConfig
from tunelab.models.adapters import apply_adapter, load_kwargs
from tunelab.models.registry import ModelNotFound, resolve


def _adapter_base(adapter_dir: Path) -> str:
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    return config["base_model_name_or_path"]


def describe(spec: str) -> dict[str, str | None]:
    """Where the weights of `spec` live: {'base': path-or-id, 'adapter': dir or None}."""
    path = Path(spec).expanduser()
    if path.is_dir():
        for name in (rundir.MERGED, rundir.MODEL):
            if (path / name / "config.json").exists():
                return {"base": str(path / name), "adapter": None}
        adapter = path / rundir.ADAPTER if (path / rundir.ADAPTER).is_dir() else path
        if (adapter / "adapter_config.json").exists():
            return {"base": resolve(_adapter_base(adapter)), "adapter": str(adapter)}
        if (path / rundir.CONFIG).exists() and not (path / "config.json").exists():
            raise ModelNotFound(f"{path} is a run directory without a finished model (no adapter/ or model/)")
    return {"base": resolve(spec), "adapter": None}


def load_tokenizer(spec: str, *, default_template: bool = True) -> Any:
    """The tokenizer of `spec` (an adapter's own, where it saved one), with a pad token.

    With `default_template`, a tokenizer without a chat template gets the documented default
    (tunelab.data.tokenize.ensure_template): training and the data checks render every
    conversation through a template, so they need one. Inference keeps the tokenizer as saved."""
    from transformers import AutoTokenizer

    where = describe(spec)
    source = (
        where["adapter"]
        if where["adapter"] and (Path(where["adapter"]) / "tokenizer_config.json").exists()
        else where["base"]
    )
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if default_template:
        from tunelab.data.tokenize import ensure_template

        ensure_template(tokenizer)
    return tokenizer


def load_model(spec: str, *, merge: bool = False, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. With `merge`, an adapter is folded into the weights.

    `dtype`: a torch dtype, None for float32, or "auto" for the one that generates fastest on this
    machine (`hardware.inference_dtype`: bf16 where it is native, else float32).
    """
    import torch
    from transformers import AutoModelForCausalLM

    if dtype == "auto":
        from tunelab.models.hardware import inference_dtype

        dtype = inference_dtype()[0]
    dtype = dtype or torch.float32
    where = describe(spec)
    # An adapter is folded in at float32 and the sum cast once, so its update is not rounded twice.
    merged_later = bool(where["adapter"]) and merge and dtype != torch.float32
    model = AutoModelForCausalLM.from_pretrained(where["base"], dtype=torch.float32 if merged_later else dtype)
    if where["adapter"]:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, where["adapter"])
        if merge:
            model = model.merge_and_unload()
    if merged_later:
        # Copied into a model loaded in `dtype` (buffers such as the rotary frequencies stay float32,
        # as from_pretrained keeps them): the merged model cast in place ran its bf16 forward 2-3x
        # slower on the AMX Xeon, the same weights in a freshly loaded model did not.
        merged = model.state_dict()
        model = AutoModelForCausalLM.from_pretrained(where["base"], dtype=dtype)
        model.load_state_dict(merged)
    model.eval()
    return model, load_tokenizer(spec, default_template=False)


def decoder_layer_count(name: str) -> int | None:
    """How many decoder layers the base model `name` (registry name, directory or hub id) has, read
    from its config; None where it cannot be read."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve(name))
    except (OSError, ValueError, ModelNotFound):
        return None
    return getattr(config.get_text_config(), "num_hidden_layers", None)


def load_base(path: str, dtype: Any, **kwargs: Any) -> Any:
    """The base model at `path` (what registry.resolve returns) in `dtype`, as stored: no adapter."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)


def load_for_training(cfg: ModelConfig, dtype: Any) -> tuple[Any, Any]:
    """(model, tokenizer) to train: the base in `dtype`, wrapped in a fresh `cfg.adapter` (whole
    for a full fine-tune); the tokenizer with a chat template and a pad token."""
    path = resolve(cfg.name)
    tokenizer = load_tokenizer(path)
    model = apply_adapter(load_base(path, dtype, **load_kwargs(cfg)), cfg)
    return model, tokenizer


def decoder_and_head(model: Any) -> tuple[Any, Any] | None:
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
    get_decoder, head = (
        getattr(model, "get_decoder", None),
        model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None,
    )
    decoder = get_decoder() if get_decoder else None
    return (decoder, head) if decoder is not None and head is not None else None

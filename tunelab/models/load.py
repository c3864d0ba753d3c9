"""Load a model for inference from whatever the user points at.

Accepted: a registry name (`smollm2-135m`), a transformers model directory, a hub id, a peft
adapter directory, or a tunelab run directory (its `merged/`, `model/` or `adapter/`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab import rundir
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


def load_tokenizer(spec: str) -> Any:
    from transformers import AutoTokenizer

    where = describe(spec)
    source = where["adapter"] if where["adapter"] and (Path(where["adapter"]) / "tokenizer_config.json").exists() else where["base"]
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: str, *, merge: bool = False, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. With `merge`, an adapter is folded into the weights."""
    import torch
    from transformers import AutoModelForCausalLM

    where = describe(spec)
    model = AutoModelForCausalLM.from_pretrained(where["base"], dtype=dtype or torch.float32)
    if where["adapter"]:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, where["adapter"])
        if merge:
            model = model.merge_and_unload()
    model.eval()
    return model, load_tokenizer(spec)

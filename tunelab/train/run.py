"""One entry point for every recipe: `run(config, resume)` picks the training module by train.recipe."""

from __future__ import annotations

from typing import Any

from tunelab.config import Config


def run(config: Config, resume: bool = False) -> dict[str, Any]:
    recipe = config.train.recipe
    if recipe == "sft":
        from tunelab.train.recipes import sft

        return sft.train(config, resume=resume)
    if recipe == "bake":
        from tunelab.train.recipes import bake

        return bake.train(config, resume=resume)
    if recipe in ("kto", "dpo"):
        from tunelab.train.recipes import preference

        return preference.train(config, resume=resume)
    raise ValueError(f"unknown recipe {recipe!r}")  # config validation makes this unreachable for loaded configs

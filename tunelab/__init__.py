"""tunelab: fine-tune small LLMs on dialogues, measure what they do, and ship them.

The Python API (tunelab/api.py, walked through in docs/python-api.md) is exported here.
Importing the package stays cheap: torch and transformers load when a function needs them.
"""

from __future__ import annotations

from typing import Any

from tunelab.api import bake_prompt, chat, compare, evaluate, fine_tune, judge, load_config, serve_model

__all__ = [
    "load_config",
    "fine_tune",
    "bake_prompt",
    "evaluate",
    "compare",
    "judge",
    "serve_model",
    "chat",
    "GenerationSettings",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use, like the functions' own imports, so `import tunelab` loads no model code.
    if name == "GenerationSettings":
        from tunelab.generation.replies import GenerationSettings

        return GenerationSettings
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")

"""docs/python-api.md runs as written: its Python blocks, in order, in one namespace, on a tiny model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"
DOC_MODEL = '"smollm2-135m"'  # the model the doc names; the test swaps in the tiny one to stay fast


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


@pytest.mark.slow
def test_the_walkthrough_runs_top_to_bottom(tmp_path, monkeypatch, tiny_model_dir):
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 5 and any(DOC_MODEL in block for block in blocks)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "walkthrough"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block.replace(DOC_MODEL, repr(tiny_model_dir)), f"{DOC.name} block {number}", "exec")
        exec(code, namespace)
    run_dir = Path(namespace["run_dir"])
    assert namespace["summary"]["steps"] == 4 and (run_dir / "adapter").is_dir()
    assert (run_dir / "predictions.jsonl").exists() and namespace["result"].scores["n"] == 4  # 2 dialogues x 2 replies
    assert (tmp_path / "runs" / "base-vs-tuned" / "compare.json").exists()
    assert isinstance(namespace["answer"], str) and len(namespace["session"].history) == 2

"""Files written whole or not at all: `export` and the model cache conversion are SIGKILLed at
random points, and whatever is left is never taken as a complete artifact.

The child processes are forked from this one (torch and transformers already imported), so a
trial costs the work itself, not a 10-20 s import; each is killed with SIGKILL at a uniformly
random moment of its measured run time.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
FORK = multiprocessing.get_context("fork")


def timed_run(target, *args) -> float:
    start = time.monotonic()
    child = FORK.Process(target=target, args=args)
    child.start()
    child.join(300)
    assert child.exitcode == 0, f"{target.__name__} failed (exit {child.exitcode})"
    return time.monotonic() - start


def killed_run(target, *args, at: float) -> None:
    child = FORK.Process(target=target, args=args)
    child.start()
    child.join(at)
    if child.is_alive():
        child.kill()  # SIGKILL: no cleanup handler runs
    child.join(60)


def assert_complete_export(out: Path, fmt: str) -> None:
    """An export directory that exists must be whole: info file, config/tokenizer, full tensors."""
    from safetensors import safe_open

    info = json.loads((out / "tunelab_export.json").read_text())
    if fmt == "merged":
        from transformers import AutoModelForCausalLM

        for shard in out.glob("*.safetensors"):
            with safe_open(shard, "pt") as handle:  # a truncated file fails its header/size check
                for key in handle.keys():
                    handle.get_tensor(key)
        AutoModelForCausalLM.from_pretrained(out)
    else:
        import gguf

        reader = gguf.GGUFReader(out / info["file"])
        assert len(reader.tensors) > 0


def _export(spec: str, out: str, fmt: str, force: bool) -> None:
    from tunelab.models.export import export

    export(spec, out, fmt, dtype="f32", force=force)


@pytest.mark.parametrize("fmt", ["merged", "gguf"])
def test_killed_export_never_leaves_a_truncated_export(tmp_path, tiny_model_dir, fmt):
    rng = random.Random(16)
    out = tmp_path / "export"
    full = timed_run(_export, tiny_model_dir, str(out), fmt, False)
    assert_complete_export(out, fmt)
    for trial in range(4 if fmt == "merged" else 2):  # a GGUF run takes ~20x longer
        force = trial % 2 == 1  # over an existing export (--force) or into a fresh folder
        target = out if force else tmp_path / f"fresh{trial}"
        at = rng.uniform(0, full)
        killed_run(_export, tiny_model_dir, str(target), fmt, force, at=at)
        print(f"{fmt} trial {trial}: killed at {at:.2f}s of {full:.2f}s; {'complete' if target.exists() else 'absent'}")
        if target.exists():
            assert_complete_export(target, fmt)
    # and a killed run's leftovers do not stop the next run
    timed_run(_export, tiny_model_dir, str(tmp_path / "fresh0"), fmt, True)
    assert_complete_export(tmp_path / "fresh0", fmt)


def _resolve(name: str) -> None:
    from tunelab.models.registry import resolve

    resolve(name)


def test_killed_cache_conversion_is_never_taken_as_converted(tmp_path, tiny_model_dir, monkeypatch):
    """The registry converts an embedded GGUF into a cached model once; a conversion killed at any
    point must leave a cache that resolve() converts again, never a half-written model it loads."""
    import importlib
    import sys

    from tunelab.models import registry
    from tunelab.models.export import export_gguf

    package = tmp_path / "pkgs" / "tiny_gguf_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    gguf_file = export_gguf(tiny_model_dir, tmp_path / "gguf", dtype="f32")
    gguf_file.replace(package / "tiny.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    importlib.invalidate_caches()
    monkeypatch.setitem(
        registry.REGISTRY, "tiny-test", registry.GgufPackage("tiny-test", ("tiny-gguf-pkg",), "tiny.gguf", "test")
    )
    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home"))
    target = registry.converted_dir("tiny-test")
    rng = random.Random(7)
    full = timed_run(_resolve, "tiny-test")
    assert (target / "config.json").exists()
    for trial in range(2):
        shutil.rmtree(target, ignore_errors=True)  # a trial may have left none
        at = rng.uniform(0, full) if trial == 0 else rng.uniform(0.7 * full, full)  # the writes come last
        killed_run(_resolve, "tiny-test", at=at)
        converted = (target / "config.json").exists()  # what resolve() takes as "already converted"
        print(
            f"conversion trial {trial}: killed at {at:.2f}s of {full:.2f}s; {'converted' if converted else 'not converted'}"
        )
        if converted:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            AutoModelForCausalLM.from_pretrained(target)
            AutoTokenizer.from_pretrained(target)
    assert sys.modules.get("tiny_gguf_pkg") is None  # found by find_spec, never imported
    registry.resolve("tiny-test")
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(target)

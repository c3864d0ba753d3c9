"""Shared fixtures: the real embedded model's files, and a tiny model with its real tokenizer."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `train.precision: auto` would pick bf16_base + compiled layers on a CPU with native bf16 and make
# every tiny training run (subprocesses too) pay a compile; tests about `auto` unset this.
os.environ.setdefault("TUNELAB_AUTO_PRECISION", "fp32")

import pytest


@pytest.fixture(scope="session")
def smol_dir() -> str:
    """The converted SmolLM2-135M-Instruct directory (converted once into $TUNELAB_HOME)."""
    from tunelab.models.registry import resolve

    return resolve("smollm2-135m")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_dir) -> str:
    """A 2-layer Llama-style model with SmolLM2's real tokenizer and chat template, random weights."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture()
def idle_studio(tmp_path, tiny_model_dir):
    """A studio on 127.0.0.1 whose queue does not run unless the test calls `start()`: (studio, an
    `openai` client with its key)."""
    openai = pytest.importorskip("openai")
    from tunelab.studio.app import Studio, serve_in_thread

    s = Studio(tmp_path / "studio", api_key="k", base_models=[tiny_model_dir])
    with serve_in_thread(s) as url:
        yield s, openai.OpenAI(base_url=url, api_key="k", max_retries=0)
    s.close()


# Property-based tests (hypothesis): the default profile keeps `make test` within its time; run
# the long one before a release or after touching a reader:  HYPOTHESIS_PROFILE=long make test
from hypothesis import HealthCheck, settings  # noqa: E402

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "default", max_examples=25, deadline=None, suppress_health_check=_QUIET, print_blob=True, database=None
)
settings.register_profile(
    "long", max_examples=1000, deadline=None, suppress_health_check=_QUIET, print_blob=True, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

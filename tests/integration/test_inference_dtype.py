"""Replies in the dtype that pays on the machine: `load_model(dtype="auto")` for eval, the demos,
serve and chat, chosen by the same CPU probe as training (`models/hardware.py`)."""

from __future__ import annotations

import pytest
import torch

from tunelab.models import hardware
from tunelab.models.load import load_model


@pytest.fixture
def cpu_only(monkeypatch):
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: False)


def test_auto_is_bf16_only_where_the_cpu_multiplies_bf16_natively(monkeypatch, cpu_only) -> None:
    monkeypatch.setenv(hardware.AUTO_ENV, "bf16_base")
    dtype, why = hardware.inference_dtype()
    assert dtype == torch.bfloat16 and hardware.AUTO_ENV in why
    monkeypatch.setenv(hardware.AUTO_ENV, "fp32")
    assert hardware.inference_dtype()[0] == torch.float32
    # measured rather than pinned: an AVX2-only EPYC's emulated bf16 is ~30x slower, so fp32
    monkeypatch.delenv(hardware.AUTO_ENV)
    hardware.describe_cpu.cache_clear()
    rates = {torch.float32: 88.0, torch.bfloat16: 3.0}
    monkeypatch.setattr(hardware, "matmul_peak", lambda dtype, n, seconds: rates[dtype])
    try:
        dtype, why = hardware.inference_dtype()
    finally:
        hardware.describe_cpu.cache_clear()
    assert dtype == torch.float32 and "no native bf16" in why


def test_auto_is_bf16_on_a_cuda_device_with_bf16(monkeypatch) -> None:
    monkeypatch.setattr(hardware.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(hardware.torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.setattr(hardware.torch.cuda, "get_device_name", lambda: "NVIDIA H100 80GB HBM3")
    assert hardware.inference_dtype() == (torch.bfloat16, "NVIDIA H100 80GB HBM3: bf16")


def test_an_adapter_is_merged_in_fp32_and_cast_once(tmp_path, tiny_model_dir, monkeypatch, cpu_only) -> None:
    """Merged into bf16 weights, the LoRA update would be rounded twice (base, then sum); folded in
    fp32 and cast, each weight is the fp32 merge rounded once."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    # random A and B (peft's default B is zero, which would merge to the base itself)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    get_peft_model(base, lora).save_pretrained(tmp_path / "adapter")

    monkeypatch.setenv(hardware.AUTO_ENV, "bf16_base")
    model, _ = load_model(str(tmp_path / "adapter"), merge=True, dtype="auto")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    # as loaded in bf16 directly: the rotary frequencies (a buffer) stay fp32, the config says bf16
    direct = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    assert [b.dtype for b in model.buffers()] == [b.dtype for b in direct.buffers()]
    assert model.config.dtype == direct.config.dtype == torch.bfloat16

    def merged(dtype: torch.dtype) -> dict[str, torch.Tensor]:
        fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=dtype)
        return PeftModel.from_pretrained(fresh, tmp_path / "adapter").merge_and_unload().state_dict()

    in_fp32, in_bf16 = merged(torch.float32), merged(torch.bfloat16)
    got = model.state_dict()
    assert all(torch.equal(got[k], v.to(torch.bfloat16)) for k, v in in_fp32.items())
    assert any(not torch.equal(got[k], v) for k, v in in_bf16.items())  # the difference this test guards


def test_eval_records_the_dtype_it_generated_in(tmp_path, tiny_model_dir) -> None:
    """conftest pins auto to fp32; scores.json says so, with why."""
    from tunelab import rundir
    from tunelab.data.synth import cafe
    from tunelab.eval.runner import run_eval
    from tunelab.generation.replies import GenerationSettings

    rundir.write_jsonl(tmp_path / "eval.jsonl", [c.to_openai() for c in cafe.generate(1, seed=3)])
    result = run_eval(
        tiny_model_dir,
        tmp_path / "eval.jsonl",
        out_dir=tmp_path / "out",
        settings=GenerationSettings(max_new_tokens=2),
        semantic=False,
        progress=False,
        limit=1,
    )
    generation = result.scores["generation"]
    assert generation["dtype"] == "float32" and hardware.AUTO_ENV in generation["dtype_why"]

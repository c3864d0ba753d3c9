"""Merged and GGUF export: what other runtimes load must behave like adapter-on-base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tunelab.models.export import ExportError, export, verify_gguf

PROMPT = [{"role": "user", "content": "One cappuccino and a croissant, please."}]


def make_run_dir(tiny_model_dir: str, root: Path) -> Path:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False)
    )
    model.save_pretrained(root / "adapter")
    return root


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return make_run_dir(tiny_model_dir, tmp_path_factory.mktemp("run"))


def greedy(model, tokenizer, n: int = 16) -> list[int]:
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=n,
            do_sample=False,
            min_new_tokens=n,
            pad_token_id=tokenizer.pad_token_id,
        )
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def adapter_output(run_dir, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    base_out = greedy(base, tokenizer)
    with_adapter = PeftModel.from_pretrained(base, str(run_dir / "adapter")).eval()
    return {"base": base_out, "adapter": greedy(with_adapter, tokenizer), "tokenizer": tokenizer}


def test_merged_export_generates_like_adapter_on_base(run_dir, adapter_output, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = export(str(run_dir), tmp_path / "merged", "merged")
    assert (out / "model.safetensors").exists() and not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out).eval()  # plain transformers, no peft
    assert adapter_output["adapter"] != adapter_output["base"]  # the adapter matters at all
    assert greedy(model, AutoTokenizer.from_pretrained(out)) == adapter_output["adapter"]


def test_export_refuses_a_non_empty_target(run_dir, tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export(str(run_dir), tmp_path, "merged")
    assert (tmp_path / "keep.txt").read_text() == "mine"


@pytest.mark.slow  # GGUFReader parses the 49k-token vocabulary three times (~10 s each on 2 cores)
def test_gguf_f32_loads_in_transformers_and_generates_like_adapter_on_base(run_dir, adapter_output, tmp_path):
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = export(str(run_dir), tmp_path / "gguf", "gguf", dtype="f32")
    info = json.loads((path.parent / "tunelab_export.json").read_text())
    assert info["round_trip"]["verified"] and info["round_trip"]["max_abs_error_by_type"] == {"F32": 0.0}
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    reference = adapter_output["tokenizer"]
    assert text == reference.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    assert tokenizer(text)["input_ids"] == reference(text)["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name).eval()
    assert greedy(model, tokenizer) == adapter_output["adapter"]


def write_small_gguf(path: Path, tensors: dict[str, np.ndarray], kind: str) -> None:
    import gguf

    from tunelab.models.export import _encode

    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[kind]
    writer = gguf.GGUFWriter(path, "llama")
    for name, array in tensors.items():
        data, raw = _encode(array, qtype)
        writer.add_tensor(name, data, raw_dtype=raw if kind == "q8_0" and array.ndim > 1 else None)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_gguf_round_trip_check_accepts_rounding_and_catches_a_wrong_tensor(tmp_path, kind):
    rng = np.random.default_rng(0)
    tensors = {
        "blk.0.attn_q.weight": rng.normal(0, 0.05, (64, 64)).astype(np.float32),
        "blk.0.attn_norm.weight": rng.normal(1, 0.1, (64,)).astype(np.float32),
    }
    path = tmp_path / f"t-{kind}.gguf"
    write_small_gguf(path, tensors, kind)
    report = verify_gguf(path, tensors)
    lossy = report["max_abs_error_by_type"][kind.upper()]
    step = 2**-11 if kind == "f16" else 1 / 127  # half an f16 ulp; one Q8_0 scale step
    assert 0 < lossy <= np.abs(tensors["blk.0.attn_q.weight"]).max() * step
    assert report["max_abs_error_by_type"]["F32"] == 0.0
    changed = dict(tensors, **{"blk.0.attn_q.weight": tensors["blk.0.attn_q.weight"] * 1.01})
    with pytest.raises(ExportError, match="attn_q.weight.*does not round-trip"):
        verify_gguf(path, changed)


def test_gguf_refuses_unsupported_types(run_dir, tmp_path):
    with pytest.raises(ExportError, match="supported: f32, f16, q8_0"):
        export(str(run_dir), tmp_path / "x", "gguf", dtype="q4_k")

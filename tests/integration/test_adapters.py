"""Every adapter trains the tiny model a few steps, saves, reloads from the run dir and generates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab import rundir
from tunelab.config import load
from tunelab.messages import Message

ORDERS = [
    ("a latte", "What size would you like?", "Large, please."),
    ("a tea", "Hot or iced?", "Iced."),
    ("a muffin", "Blueberry or chocolate?", "Chocolate."),
    ("a mocha", "With whipped cream?", "Yes please."),
]


def write_tiny_data(path: Path, n: int = 12) -> Path:
    """n short cafe conversations in OpenAI messages JSONL."""
    rows = []
    for i in range(n):
        item, question, answer = ORDERS[i % len(ORDERS)]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": f"Hi, I'd like {item} (order {i})."},
                    {"role": "assistant", "content": question},
                    {"role": "user", "content": answer},
                    {"role": "assistant", "content": f"Got it: {item}, {answer.lower().rstrip('.')}. Anything else?"},
                ]
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny_config(tmp_path: Path, model_dir: str, adapter: str = "lora", out: str = "run", **sections):
    """A config training the tiny model 4 steps with validation every 2."""
    data = write_tiny_data(tmp_path / "train.jsonl")
    raw = {
        "model": {
            "name": model_dir,
            "adapter": adapter,
            "lora": {"r": 4, "alpha": 8},
            "prompt": {"num_virtual_tokens": 4, "encoder_hidden_size": 16},
        },
        "data": {"train": str(data), "val_fraction": 0.25, "max_length": 128},
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "learning_rate": 1e-2,
            "eval_steps": 2,
            "save_steps": 2,
            "logging_steps": 1,
            "threads": 1,
        },
        "output": {"dir": str(tmp_path / out)},
    }
    for key, value in sections.items():
        raw.setdefault(key, {})
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return load(data=raw)


def trainable_names(run_dir: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(run_dir / rundir.ADAPTER / "adapter_model.safetensors"), "pt") as f:
        return list(f.keys())


@pytest.mark.slow
@pytest.mark.parametrize(
    "adapter, weight_marker",
    [
        ("lora", "lora_A"),
        ("dora", "lora_magnitude_vector"),
        ("ia3", "ia3_l"),
        ("prompt_tuning", "prompt_embeddings"),
        ("p_tuning", "prompt_embeddings"),
    ],
)
def test_adapter_trains_saves_reloads_and_generates(tmp_path, tiny_model_dir, adapter, weight_marker):
    from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
    from tunelab.models.load import load_model
    from tunelab.train.recipes.sft import train

    config = tiny_config(tmp_path, tiny_model_dir, adapter, output={"merge": True})
    summary = train(config)
    run_dir = Path(summary["run_dir"])
    assert summary["steps"] == 4
    assert (
        json.loads((run_dir / rundir.ADAPTER / "adapter_config.json").read_text())["peft_type"]
        == {"lora": "LORA", "dora": "LORA", "ia3": "IA3", "prompt_tuning": "PROMPT_TUNING", "p_tuning": "P_TUNING"}[
            adapter
        ]
    )
    assert any(weight_marker in k for k in trainable_names(run_dir)), trainable_names(run_dir)
    # Prompt-learning adapters cannot be folded into the weights: merge is skipped, not faked.
    assert (run_dir / rundir.MERGED).is_dir() == (adapter not in ("prompt_tuning", "p_tuning"))
    train_losses = [r["value"] for r in rundir.read_metrics(run_dir, "loss", "train")]
    assert len(train_losses) == 4 and all(v == v for v in train_losses)

    # The run dir (merged/ when there is one) and its adapter/ both load and generate.
    for spec, peft_wrapped in ((run_dir, adapter in ("prompt_tuning", "p_tuning")), (run_dir / rundir.ADAPTER, True)):
        model, tokenizer = load_model(str(spec))
        assert type(model).__name__.startswith("Peft") == peft_wrapped
        prompts = render_prompts(tokenizer, [[Message("user", "Hi, I'd like a latte.")]])
        replies = generate_replies(model, tokenizer, prompts, GenerationSettings(max_new_tokens=5), progress=False)
        assert len(replies) == 1 and replies[0].new_tokens > 0


def test_reloaded_adapter_matches_merged_model(tmp_path, tiny_model_dir):
    """DoRA reloaded from adapter/ gives the merged/ model's logits, and they differ from the base model's."""
    import torch
    from transformers import AutoModelForCausalLM

    from tunelab.models.load import load_model
    from tunelab.train.recipes.sft import train

    config = tiny_config(tmp_path, tiny_model_dir, "dora", output={"merge": True})
    train(config)
    run_dir = Path(config.output.dir)
    adapted, _ = load_model(str(run_dir / rundir.ADAPTER))
    merged = AutoModelForCausalLM.from_pretrained(run_dir / rundir.MERGED).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():
        a, m, b = adapted(input_ids=ids).logits, merged(input_ids=ids).logits, base(input_ids=ids).logits
    assert torch.allclose(a, m, atol=1e-4)
    assert not torch.allclose(a, b, atol=1e-4)


def test_full_fine_tuning_saves_whole_model(tmp_path, tiny_model_dir):
    from tunelab.models.load import load_model
    from tunelab.train.recipes.sft import train

    config = tiny_config(tmp_path, tiny_model_dir, "full")
    train(config)
    run_dir = Path(config.output.dir)
    assert (run_dir / rundir.MODEL / "config.json").exists() and not (run_dir / rundir.ADAPTER).exists()
    model, _ = load_model(str(run_dir))
    assert not type(model).__name__.startswith("Peft")


def test_qlora_without_cuda_says_so(tmp_path, tiny_model_dir):
    import torch

    from tunelab.models.adapters import AdapterUnavailable
    from tunelab.train.recipes.sft import train

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-GPU message does not apply")
    with pytest.raises(AdapterUnavailable, match="CUDA"):
        train(tiny_config(tmp_path, tiny_model_dir, "qlora"))


def test_unknown_adapter_is_a_config_error(tmp_path, tiny_model_dir):
    from tunelab.config import ConfigError

    with pytest.raises(ConfigError, match="model.adapter"):
        tiny_config(tmp_path, tiny_model_dir, "loha")

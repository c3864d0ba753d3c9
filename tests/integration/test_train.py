"""Training end to end on a tiny model: the run directory, resuming after SIGKILL, the loss."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import yaml

from tunelab import rundir
from tunelab.config import ConfigError, load
from tunelab.data.synth import cafe
from tunelab.train.recipes.sft import train


def write_cafe(path: Path, n: int, seed: int) -> str:
    rundir.write_jsonl(path, [c.to_openai() for c in cafe.generate(n, seed=seed, system_prompt=None)])
    return str(path)


def tiny_config(tmp_path: Path, model_dir: str, out: str, **train: object) -> dict:
    settings = {
        "max_steps": 12,
        "learning_rate": 5e-3,
        "batch_size": 4,
        "eval_steps": 4,
        "save_steps": 4,
        "logging_steps": 2,
        "seed": 7,
    }
    settings.update(train)
    return {
        "model": {"name": model_dir, "lora": {"r": 8, "alpha": 16, "dropout": 0.1}},
        "data": {
            "train": write_cafe(tmp_path / "train.jsonl", 48, 1),
            "val": write_cafe(tmp_path / "val.jsonl", 8, 2),
            "max_length": 256,
        },
        "train": settings,
        "output": {"dir": str(tmp_path / out)},
    }


def test_run_directory_contract(tmp_path, tiny_model_dir):
    summary = train(load(data=tiny_config(tmp_path, tiny_model_dir, "run")))
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == {
        "config.yaml",
        "data_report.json",
        "metrics.jsonl",
        "checkpoints",
        "adapter",
        "summary.json",
    }
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["train"]["scheduler"] == "cosine" and resolved["model"]["lora"]["target_modules"] == "all-linear"
    rows = rundir.read_jsonl(run / "metrics.jsonl")
    names = {(r["split"], r["name"]) for r in rows}
    assert {("train", "loss"), ("train", "learning_rate"), ("val", "loss")} <= names
    val = [r["value"] for r in rows if (r["split"], r["name"]) == ("val", "loss")]
    assert len(val) == 3 and val[2] < val[0]  # every 4 steps (the kept weights are not evaluated again); it learns
    assert summary["steps"] == 12 and summary["final_val_loss"] == pytest.approx(min(val), abs=1e-6)  # best kept
    # ... and the saved adapter is that checkpoint's, tensor for tensor
    best = Path(summary["best_checkpoint"])
    assert best.name == f"checkpoint-{4 * (val.index(min(val)) + 1)}"
    kept = safetensors.torch.load_file(best / "adapter_model.safetensors")
    saved = safetensors.torch.load_file(run / "adapter" / "adapter_model.safetensors")
    assert kept.keys() == saved.keys() and all((kept[k] == saved[k]).all() for k in kept)
    report = rundir.read_json(run / "data_report.json")
    assert report["files"][0]["read"] == 48 and report["train"]["examples"] == 48
    assert (run / "adapter" / "adapter_config.json").exists()


def test_auto_defaults_train_and_the_run_records_what_they_were(tmp_path, tiny_model_dir, capsys):
    """batch size, learning rate and checkpoint metric left at their default, auto: the run trains
    with concrete values, says them in its first line and writes them to config.yaml."""
    cfg = tiny_config(tmp_path, tiny_model_dir, "auto", max_steps=3, eval_steps=3, save_steps=3)
    del cfg["train"]["batch_size"], cfg["train"]["learning_rate"]
    summary = train(load(data=cfg))
    recorded = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())["train"]
    assert (recorded["batch_size"], recorded["learning_rate"], recorded["best_metric"]) == (1, 1e-3, "loss")
    assert (recorded["group_by_length"], recorded["warmup_ratio"]) == (False, 0.05)
    assert summary["best_metric"]["name"] == "loss" and summary["steps"] == 3
    # one dialogue a step, as the Trainer ran it
    assert (
        rundir.read_json(tmp_path / "auto" / "checkpoints" / "checkpoint-3" / "trainer_state.json")["train_batch_size"]
        == 1
    )
    assert "batch 1 (auto: CPU, one dialogue a step), lr 1e-3 (auto: LoRA)" in capsys.readouterr().err


def test_auto_cadence_evaluates_as_often_as_it_said(tmp_path, tiny_model_dir, capsys):
    """eval_steps and save_steps left at auto: decided from the data's size once it is read, said
    in one line, written into config.yaml as numbers, and the run evaluates and saves at them."""
    cfg = tiny_config(tmp_path, tiny_model_dir, "cadence", max_steps=120, batch_size=1)
    del cfg["train"]["eval_steps"], cfg["train"]["save_steps"]
    cfg["data"]["val"] = write_cafe(tmp_path / "val2.jsonl", 2, 2)
    summary = train(load(data=cfg))
    recorded = yaml.safe_load((tmp_path / "cadence" / "config.yaml").read_text())["train"]
    # 120 steps of one example, 2 validation examples: ten would be affordable (every 12 steps),
    # but auto never evaluates more often than every 50
    assert (recorded["eval_steps"], recorded["save_steps"]) == (50, 50)
    err = capsys.readouterr().err
    assert (
        "evaluation and checkpoint every 50 steps (auto: 3 in 120 steps, 2 validation examples kept under 10% of training)"
        in err
    )
    rows = rundir.read_jsonl(tmp_path / "cadence" / "metrics.jsonl")
    # every 50 steps and at the last step (transformers); the best of them is not evaluated again
    assert [r["step"] for r in rows if (r["split"], r["name"]) == ("val", "loss")] == [50, 100, 120]
    assert summary["steps"] == 120 and summary["best_checkpoint"]


def test_full_fine_tuning_writes_a_model(tmp_path, tiny_model_dir):
    cfg = tiny_config(tmp_path, tiny_model_dir, "full", max_steps=4)
    cfg["model"]["adapter"] = "full"
    train(load(data=cfg))
    assert (tmp_path / "full" / "model" / "config.json").exists()


def test_target_only_head_gives_the_stock_loss(tmp_path, tiny_model_dir):
    import torch

    from tunelab.data.prepare import prepare
    from tunelab.train.callbacks import TokenProgressCallback
    from tunelab.train.trainer import ExampleDataset, MaskedLossTrainer, PadCollator, load_trainable, training_arguments

    config = load(data=tiny_config(tmp_path, tiny_model_dir, "x"))
    model, tokenizer = load_trainable(config)
    data = prepare(config.data, tokenizer, tmp_path)
    batch = PadCollator(tokenizer.pad_token_id)([ExampleDataset(data.train)[i] for i in range(4)])
    trainer = MaskedLossTrainer(
        model=model, args=training_arguments(config, tmp_path / "x", False), progress=TokenProgressCallback()
    )
    with torch.no_grad():
        fast = trainer.compute_loss(model, dict(batch))
        stock = model(**batch).loss
    assert fast.item() == pytest.approx(stock.item(), rel=1e-5)


def test_killed_run_resumes_to_the_same_result(tmp_path, tiny_model_dir):
    steps = {"max_steps": 24, "save_steps": 4, "eval_steps": 4}
    straight = train(load(data=tiny_config(tmp_path, tiny_model_dir, "straight", **steps)))

    cfg = tiny_config(tmp_path, tiny_model_dir, "killed", **steps)
    cfg_path = tmp_path / "killed.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunelab.cli", "train", str(cfg_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = tmp_path / "killed" / "checkpoints" / "checkpoint-8" / "trainer_state.json"
    deadline = time.time() + 300
    while not marker.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "training ended before it could be killed mid-run"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()

    resumed = train(load(cfg_path), resume=True)
    assert resumed["steps"] == 24
    assert resumed["final_val_loss"] == pytest.approx(straight["final_val_loss"], abs=1e-4)
    steps_logged = [
        r["step"]
        for r in rundir.read_jsonl(tmp_path / "killed" / "metrics.jsonl")
        if r["name"] == "loss" and r["split"] == "train"
    ]
    assert steps_logged == sorted(set(steps_logged))  # no step logged twice after the resume
    # The token count covers the steps before the kill too, not only those since the resume.
    assert resumed["trained_tokens"] == straight["trained_tokens"] > resumed["throughput"]["tokens"]


def test_resume_at_the_last_checkpoint_trains_no_further_step(tmp_path, tiny_model_dir):
    """Stopped after the final checkpoint, before the final save: --resume restores, trains nothing."""
    import shutil

    from safetensors.torch import load_file

    config = load(
        data=tiny_config(tmp_path, tiny_model_dir, "run", max_steps=4, save_steps=2, eval_steps=2)
    )  # 12 steps per epoch
    first = train(config)
    run = tmp_path / "run"
    shutil.move(run / "adapter", tmp_path / "adapter-first")
    (run / "summary.json").unlink()
    resumed = train(config, resume=True)
    assert resumed["steps"] == 4 and resumed["best_checkpoint"] == first["best_checkpoint"]
    assert resumed["final_val_loss"] == pytest.approx(first["final_val_loss"], abs=1e-6)
    assert max(r["step"] for r in rundir.read_jsonl(run / "metrics.jsonl")) == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    before, after = (load_file(d / "adapter_model.safetensors") for d in (tmp_path / "adapter-first", run / "adapter"))
    assert before.keys() == after.keys() and all(
        before[k].equal(after[k]) for k in before
    )  # the same (best) weights saved


def test_refuses_to_overwrite_or_resume_nothing(tmp_path, tiny_model_dir):
    config = load(data=tiny_config(tmp_path, tiny_model_dir, "fresh"))
    with pytest.raises(FileNotFoundError, match="nothing to resume"):
        train(config, resume=True)


def test_unknown_key_names_it_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: x.jsonl\ntrain:\n  learnig_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'train.learnig_rate' — did you mean 'train.learning_rate'\?"):
        load(path)
    with pytest.raises(ConfigError, match="missing required key 'data.train'"):
        load(data={"data": {}})
    with pytest.raises(ConfigError, match="'train.batch_size'"):
        load(data={"data": {"train": "x"}}, overrides=["train.batch_size=0"])


def test_overrides_are_typed_and_defaults_are_filled():
    config = load(
        data={"data": {"train": "x"}},
        overrides=["train.learning_rate=3e-4", "model.lora.target_modules=[q_proj, v_proj]"],
    )
    assert config.train.learning_rate == 3e-4 and config.model.lora.target_modules == ["q_proj", "v_proj"]
    assert config.model.name == "smollm2-135m" and config.train.epochs == 1.0


@pytest.mark.slow
def test_real_smollm2_trains_and_reloads(tmp_path, smol_dir):
    import torch

    from tunelab.models.load import load_model

    cfg = tiny_config(tmp_path, "smollm2-135m", "smol", max_steps=2, batch_size=2, eval_steps=2, save_steps=2)
    summary = train(load(data=cfg))
    assert summary["steps"] == 2 and summary["final_val_loss"] < 5
    model, tokenizer = load_model(str(tmp_path / "smol"))
    assert type(model).__name__ == "PeftModelForCausalLM"
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "A latte, please."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_lora_in_the_last_layers_trains_only_them_and_merges(tmp_path, tiny_model_dir):
    """model.lora.layers 1 on the 2-layer model: the adapter is in layer 1 only, it learns, and
    merged, layer 0 and the embeddings are the base's to the bit; more layers than the model has is
    an error naming the setting."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = tiny_config(tmp_path, tiny_model_dir, "upper", max_steps=8)
    cfg["model"]["lora"]["layers"] = 1
    cfg["output"]["merge"] = True
    summary = train(load(data=cfg))
    rows = rundir.read_jsonl(tmp_path / "upper" / "metrics.jsonl")
    val = [r["value"] for r in rows if (r["split"], r["name"]) == ("val", "loss")]
    assert val[1] < val[0] and summary["final_val_loss"] is not None  # it learns
    saved = safetensors.torch.load_file(tmp_path / "upper" / "adapter" / "adapter_model.safetensors")
    assert saved and all(".layers.1." in name for name in saved)
    assert yaml.safe_load((tmp_path / "upper" / "config.yaml").read_text())["model"]["lora"]["layers"] == 1
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "upper" / "merged").state_dict()
    changed = {name for name in base if not torch.equal(base[name], merged[name])}
    assert changed and all(name.startswith("model.layers.1.") for name in changed)
    cfg = tiny_config(tmp_path, tiny_model_dir, "too-many", max_steps=2)
    cfg["model"]["lora"]["layers"] = 3
    with pytest.raises(ValueError, match="model.lora.layers 3: .* has 2 decoder layers"):
        train(load(data=cfg))


def test_bf16_base_trains_fp32_adapter_and_merges_into_the_fp32_base(tmp_path, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # compile auto would follow bf16_base and compile; this test is about the dtypes, not the compile
    cfg = tiny_config(tmp_path, tiny_model_dir, "bf16", max_steps=8, precision="bf16_base", compile=False)
    cfg["output"]["merge"] = True
    summary = train(load(data=cfg))
    rows = rundir.read_jsonl(tmp_path / "bf16" / "metrics.jsonl")
    val = [r["value"] for r in rows if (r["split"], r["name"]) == ("val", "loss")]
    assert val[1] < val[0] and summary["final_val_loss"] is not None  # it learns
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "bf16" / "merged")
    assert {p.dtype for p in merged.parameters()} == {torch.float32}
    # the merged weights are the adapter folded into the fp32 base, not into a bf16-rounded copy
    on_base = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tmp_path / "bf16" / "adapter"
    ).merge_and_unload()
    for (name, a), b in zip(merged.state_dict().items(), on_base.state_dict().values()):
        assert torch.equal(a, b), name


def test_bf16_base_refuses_full_fine_tuning(tmp_path, tiny_model_dir):
    cfg = tiny_config(tmp_path, tiny_model_dir, "full-bf16", precision="bf16_base")
    cfg["model"]["adapter"] = "full"
    with pytest.raises(ConfigError, match="bf16_base"):
        load(data=cfg)


@pytest.mark.slow
def test_compiled_layers_train_like_eager_ones_and_save_a_plain_adapter(tmp_path, tiny_model_dir):
    """train.compile compiles each decoder layer in place: same losses as the eager run (to float
    tolerance), and the saved adapter has the usual names, loadable without any compile."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tunelab.train.trainer import load_trainable

    config = load(data=tiny_config(tmp_path, tiny_model_dir, "compiled", max_steps=4, compile=True))
    model, _ = load_trainable(config)
    layers = model.get_base_model().model.layers
    assert all(layer._compiled_call_impl is not None for layer in layers)
    del model
    eager = train(load(data=tiny_config(tmp_path, tiny_model_dir, "eager", max_steps=4)))
    compiled = train(config)
    # Fused kernels sum in another order: equal to 1e-3, while the 4 steps move the loss by 0.7%
    # (a compile that cut the adapter out of the graph would leave the loss where it started).
    assert compiled["final_val_loss"] == pytest.approx(eager["final_val_loss"], rel=1e-3)

    def loss(run: str) -> list[float]:
        return [
            r["value"]
            for r in rundir.read_jsonl(tmp_path / run / "metrics.jsonl")
            if (r["split"], r["name"]) == ("train", "loss")
        ]

    assert loss("compiled") == pytest.approx(loss("eager"), rel=1e-3)
    assert loss("compiled")[-1] < loss("compiled")[0] - 0.03
    reloaded = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), tmp_path / "compiled" / "adapter"
    )
    assert any("lora_A" in name for name, _ in reloaded.named_parameters())


def test_compile_refuses_what_it_does_not_cover(tmp_path, tiny_model_dir):
    for extra in ({"recipe": "dpo"}, {"recipe": "bake"}):
        cfg = tiny_config(tmp_path, tiny_model_dir, "x", compile=True, **extra)
        with pytest.raises(ConfigError, match="train.compile"):
            load(data=cfg)


def test_shuffle_false_batches_in_file_order_and_needs_ungrouped_batches(tmp_path, tiny_model_dir):
    """The cafe demo writes each dialogue beside its twin; shuffle false keeps such pairs in one batch."""
    from tunelab.data.prepare import prepare
    from tunelab.train.callbacks import TokenProgressCallback
    from tunelab.train.trainer import ExampleDataset, MaskedLossTrainer, PadCollator, load_trainable, training_arguments

    def first_batch(**train_settings: object) -> list[list[int]]:
        config = load(data=tiny_config(tmp_path, tiny_model_dir, "x", **train_settings))
        model, tokenizer = load_trainable(config)
        data = prepare(config.data, tokenizer, tmp_path)
        trainer = MaskedLossTrainer(
            model=model,
            args=training_arguments(config, tmp_path / "x", False),
            train_dataset=ExampleDataset(data.train),
            data_collator=PadCollator(tokenizer.pad_token_id),
            progress=TokenProgressCallback(),
        )
        batch = next(iter(trainer.get_train_dataloader()))
        in_file = [ExampleDataset(data.train)[i]["input_ids"] for i in range(len(data.train))]
        return [
            in_file.index([t for t, m in zip(row, mask) if m])
            for row, mask in zip(batch["input_ids"].tolist(), batch["attention_mask"].tolist())
        ]

    assert first_batch(shuffle=False) == [0, 1, 2, 3]  # group_by_length is off by default
    assert first_batch() != [0, 1, 2, 3]  # the seeded shuffle (seed 7) starts elsewhere
    with pytest.raises(ConfigError, match="group_by_length"):
        load(data=tiny_config(tmp_path, tiny_model_dir, "y", shuffle=False, group_by_length=True))

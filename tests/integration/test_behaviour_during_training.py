"""Behaviour evaluation during training: metrics.jsonl rows at the eval steps, the best checkpoint
chosen by a behaviour rate, eval/train mode around generation, and the config errors."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import safetensors.torch
import yaml

from tunelab import rundir
from tunelab.config import ConfigError, load
from tunelab.data.prepare import NoUsableData
from tunelab.data.synth import cafe
from tunelab.eval.contexts import build_contexts, message_text
from tunelab.eval.runner import score_behaviour
from tunelab.messages import Conversation, Message, ToolCall
from tunelab.train.behaviour_eval import BehaviourEval, behaviour_metrics, best_model_arguments, pick_contexts
from tunelab.train.precision import resolve_hyperparameters
from tunelab.train.recipes.sft import train

BEHAVIOUR = ("behaviour_appropriate", "behaviour_correct")


def write_cafe(path: Path, n: int, seed: int) -> str:
    rundir.write_jsonl(path, [c.to_openai() for c in cafe.generate(n, seed=seed, system_prompt=cafe.SYSTEM_PROMPT)])
    return str(path)


def config_dict(tmp_path: Path, model: str, out: str = "run", behaviour: dict | None = None, **train: object) -> dict:
    settings = {
        "max_steps": 6,
        "learning_rate": 2e-3,
        "batch_size": 2,
        "eval_steps": 2,
        "save_steps": 2,
        "logging_steps": 2,
        "seed": 7,
    }
    settings.update(train)
    if behaviour is not None:
        settings["behaviour_eval"] = behaviour
    return {
        "model": {"name": model, "lora": {"r": 8, "alpha": 16}},
        "data": {
            "train": write_cafe(tmp_path / "train.jsonl", 24, 1),
            "val": write_cafe(tmp_path / "val.jsonl", 6, 2),
            "max_length": 384,
        },
        "train": settings,
        "output": {"dir": str(tmp_path / out)},
    }


@pytest.mark.slow  # about 80 s of CPU on one thread: six LoRA steps and four evaluations of the real model
def test_best_checkpoint_is_the_one_with_the_best_behaviour(tmp_path, smol_dir):
    # Dialogues that end with the house closing line, which a few steps teach (the strict judge's
    # ask/confirm turns take far longer): training on such dialogues, and two of them (every
    # turn a context) for validation.
    closing = [
        c
        for c in cafe.generate(120, seed=2, system_prompt=cafe.SYSTEM_PROMPT)
        if any(t["act"] == "close" for t in c.meta["turns"].values())
    ]
    val, train_convs = closing[:2], closing[2:26]
    n = sum(len(c.target_turns()) for c in val)
    cfg = config_dict(
        tmp_path,
        "smollm2-135m",
        behaviour={"enabled": True, "contexts": n, "max_new_tokens": 24},
        best_metric="behaviour_correct",
        # the order and warmup this run's rates were read on (the defaults before random order and
        # warmup 0.05): under those the rate stays 0 for six steps, and there is nothing to choose
        group_by_length=True,
        warmup_ratio=0.0,
    )
    for name, convs in (("val", val), ("train", train_convs)):
        rundir.write_jsonl(tmp_path / f"{name}_closing.jsonl", [c.to_openai() for c in convs])
        cfg["data"][name] = str(tmp_path / f"{name}_closing.jsonl")
    summary = train(load(data=cfg))
    run = tmp_path / "run"
    rows = rundir.read_jsonl(run / "metrics.jsonl")
    series = {
        name: [(r["step"], r["value"]) for r in rows if (r["split"], r["name"]) == ("val", name)] for name in BEHAVIOUR
    }
    for name, values in series.items():
        # Steps 2, 4, 6; the best checkpoint's weights are loaded at the end, not evaluated again.
        assert [step for step, _ in values] == [2, 4, 6], name
        assert all(0.0 <= v <= 1.0 for _, v in values), name
        # n contexts: every rate is a whole number of n-ths.
        assert all(abs(v * n - round(v * n)) < 1e-9 for _, v in values), name
    during = series["behaviour_correct"]
    assert len({v for _, v in during}) > 1, "the rate never changed; nothing to choose between"
    best_value = max(v for _, v in during)
    best_step = next(step for step, v in during if v == best_value)  # Trainer keeps the first of equal bests
    state = rundir.read_json(run / "checkpoints" / "checkpoint-6" / "trainer_state.json")
    assert Path(state["best_model_checkpoint"]).name == f"checkpoint-{best_step}"
    assert state["best_metric"] == pytest.approx(best_value)
    assert summary["best_metric"] == {"name": "behaviour_correct", "value": pytest.approx(best_value)}
    assert Path(summary["best_checkpoint"]).name == f"checkpoint-{best_step}"
    assert summary["behaviour_eval_contexts"] == n
    # The summary reports the best checkpoint's evaluation, and the saved adapter is that checkpoint's.
    assert summary["final_val_behaviour"]["behaviour_correct"] == pytest.approx(best_value)
    loss_during = {r["step"]: r["value"] for r in rows if (r["split"], r["name"]) == ("val", "loss")}
    assert summary["final_val_loss"] == pytest.approx(loss_during[best_step], abs=1e-6)
    kept = safetensors.torch.load_file(run / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors")
    saved = safetensors.torch.load_file(run / "adapter" / "adapter_model.safetensors")
    assert kept.keys() == saved.keys() and all((kept[k] == saved[k]).all() for k in kept)
    assert rundir.read_json(run / "summary.json")["best_metric"]["name"] == "behaviour_correct"


def test_generation_runs_in_eval_mode_and_restores_the_mode(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = load(
        data=config_dict(tmp_path, tiny_model_dir, behaviour={"enabled": True, "contexts": 3, "max_new_tokens": 4})
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    evaluator = BehaviourEval.from_config(config, cafe.generate(4, seed=3), tokenizer)
    modes: list[bool] = []
    model.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    for mode in (True, False):
        modes.clear()
        model.train(mode)
        scores = evaluator(model)
        assert modes and not any(modes)  # no dropout while generating
        assert model.training is mode
        assert set(BEHAVIOUR) <= set(scores) <= set(BEHAVIOUR) | {"behaviour_ask_correct", "behaviour_confirm_correct"}
        assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_contexts_are_seeded_fixed_and_capped(caplog):
    convs = cafe.generate(6, seed=5)
    everything = build_contexts(convs)
    first, again = pick_contexts(convs, 5, seed=1), pick_contexts(convs, 5, seed=1)
    assert first == again and len(first) == 5
    assert pick_contexts(convs, 5, seed=2) != first
    assert [everything.index(c) for c in first] == sorted(everything.index(c) for c in first)
    with caplog.at_level(logging.WARNING):
        assert pick_contexts(convs, 1000, seed=1) == everything
    assert f"has {len(everything)} assistant turns; using all" in caplog.text


def test_tool_call_accuracy_is_reported_when_a_reference_calls_a_tool():
    call = Message("assistant", "", tool_calls=(ToolCall(name="add_item", arguments='{"item": "latte"}'),))
    conv = Conversation("t", (Message("user", "A latte"), call))
    ctx = build_contexts([conv])[0]
    wrong = message_text(
        Message("assistant", "", tool_calls=(ToolCall(name="add_item", arguments='{"item": "mocha"}'),))
    )
    rows = [{"prediction": p, "reference": ctx.reference, "context": []} for p in (ctx.reference, wrong)]
    assert behaviour_metrics(score_behaviour(rows)) == {
        "behaviour_appropriate": 1.0,
        "behaviour_correct": 0.5,
        "behaviour_tool_name": 1.0,
        "behaviour_tool_args": 0.5,
    }
    plain = [{"prediction": "Hi!", "reference": "Hello there!", "context": []}]
    assert set(behaviour_metrics(score_behaviour(plain))) == set(BEHAVIOUR)


def test_best_metric_direction(tmp_path):
    base = config_dict(tmp_path, "m", behaviour={"enabled": True})
    # the default, auto: the correct-reply rate where behaviour is measured; unresolved it is refused
    with pytest.raises(ValueError, match="resolved first"):
        best_model_arguments(load(data=base).train)
    assert best_model_arguments(resolve_hyperparameters(load(data=base)).train) == {
        "metric_for_best_model": "eval_behaviour_correct",
        "greater_is_better": True,
    }
    base["train"]["best_metric"] = "loss"
    assert best_model_arguments(load(data=base).train) == {
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
    }
    base["train"]["best_metric"] = "behaviour_appropriate"
    assert best_model_arguments(load(data=base).train) == {
        "metric_for_best_model": "eval_behaviour_appropriate",
        "greater_is_better": True,
    }


def test_config_errors(tmp_path):
    cfg = config_dict(tmp_path, "m", best_metric="behaviour_correct")
    with pytest.raises(ConfigError, match=r"best_metric 'behaviour_correct' needs train.behaviour_eval.enabled: true"):
        load(data=cfg)
    cfg = config_dict(tmp_path, "m", behaviour={"enabled": True}, best_metric="behaviour_correct")
    del cfg["data"]["val"]
    cfg["data"]["val_fraction"] = 0.0
    with pytest.raises(ConfigError, match="needs validation data: set data.val or a data.val_fraction above 0"):
        load(data=cfg)
    cfg = config_dict(tmp_path, "m", behaviour={"enabled": True}, recipe="bake")
    with pytest.raises(ConfigError, match="recipe sft only"):
        load(data=cfg)
    with pytest.raises(ConfigError, match=r"'train.best_metric'"):
        load(data=config_dict(tmp_path, "m", best_metric="bleu"))
    with pytest.raises(ConfigError, match=r"did you mean 'train.behaviour_eval.contexts'\?"):
        load(data=config_dict(tmp_path, "m", behaviour={"context": 4}))
    assert load(data=config_dict(tmp_path, "m")).train.behaviour_eval.enabled is False  # off by default


def test_no_validation_left_after_dedupe_is_an_error(tmp_path, tiny_model_dir):
    cfg = config_dict(tmp_path, tiny_model_dir, behaviour={"enabled": True})
    cfg["data"]["val"] = cfg["data"]["train"]  # every validation conversation is also a training one
    with pytest.raises(NoUsableData, match="train.behaviour_eval is on but no validation example is left"):
        train(load(data=cfg))


def test_replies_through_compiled_layers_are_the_eager_replies(tmp_path, tiny_model_dir):
    """Generation during training runs compiled layers' eager code: same replies as a model that
    was never compiled (same weights, bf16 base as the fast path has it), and the layers stay
    compiled for the training that follows."""
    import torch

    from tunelab.train.trainer import load_trainable

    behaviour = {"enabled": True, "contexts": 4, "max_new_tokens": 8}

    def replies(compiled: bool) -> list[tuple[int, ...]]:
        config = load(
            data=config_dict(tmp_path, tiny_model_dir, behaviour=behaviour, precision="bf16_base", compile=compiled)
        )
        torch.manual_seed(0)  # the same LoRA A init for both
        model, tokenizer = load_trainable(config)
        # a trained-looking adapter: the tiny random model alone repeats one token for every prompt
        weights = torch.Generator().manual_seed(3)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.data.copy_(torch.randn(p.shape, generator=weights) * 0.5)
        layers = model.get_base_model().model.layers
        assert all((layer._compiled_call_impl is not None) is compiled for layer in layers)
        model.train()
        out = BehaviourEval.from_config(config, cafe.generate(6, seed=3), tokenizer).replies(model)
        assert model.training and all((layer._compiled_call_impl is not None) is compiled for layer in layers)
        return [r.token_ids for r in out]

    eager, compiled = replies(False), replies(True)
    assert len(set(eager)) > 1  # replies that differ by context, so the comparison says something
    assert compiled == eager


@pytest.mark.slow  # the tiny model's layers compile (about 30 s on 2 cores)
def test_compiled_layers_train_with_behaviour_evaluation(tmp_path, tiny_model_dir):
    """`train.compile` with `behaviour_eval`, the pair the config used to refuse: the run trains,
    its evaluations generate, and their rates reach metrics.jsonl and the summary."""
    cfg = config_dict(
        tmp_path,
        tiny_model_dir,
        behaviour={"enabled": True, "contexts": 3, "max_new_tokens": 6},
        precision="bf16_base",
        compile=True,
        max_steps=2,
        eval_steps=1,
        save_steps=2,
        logging_steps=1,
    )
    summary = train(load(data=cfg))
    recorded = yaml.safe_load((tmp_path / "run" / rundir.CONFIG).read_text())["train"]
    assert (recorded["precision"], recorded["compile"], recorded["behaviour_eval"]["enabled"]) == (
        "bf16_base",
        True,
        True,
    )
    rows = rundir.read_jsonl(tmp_path / "run" / "metrics.jsonl")
    steps = {r["step"] for r in rows if (r["split"], r["name"]) == ("val", "behaviour_appropriate")}
    assert steps == {1, 2}  # every evaluation generated, the final one at step 2 included
    assert summary["steps"] == 2 and summary["behaviour_eval_contexts"] == 3
    assert set(BEHAVIOUR) <= set(summary["final_val_behaviour"])

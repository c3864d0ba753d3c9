"""The cafe demo: held-out dialogues that share nothing with training, enough of each scored act,
and the whole pipeline end to end on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tunelab.demos import cafe as demo
from tunelab.eval.contexts import build_contexts


def test_heldout_dialogues_share_no_dialogue_with_training(tmp_path) -> None:
    data = demo.write_data(tmp_path, n_train=400, n_heldout=130, seed=0)
    train = [json.loads(line) for line in data["files"]["train"].read_text().splitlines()]
    val = [json.loads(line) for line in data["files"]["val"].read_text().splitlines()]
    trained_on = {tuple(m["content"] for m in row["messages"] if m["role"] == "user") for row in train + val}
    heldout = data["heldout"]
    assert heldout and not {demo.customer_turns(c) for c in heldout} & trained_on
    assert not {c.id for c in heldout} & {row["id"] for row in train + val}
    contexts = [c for c in build_contexts(heldout) if c.expected]
    asks = [c for c in contexts if c.expected["act"] == "ask"]
    confirms = [c for c in contexts if c.expected["act"] == "confirm"]
    assert len(asks) >= 100 and len(confirms) >= 100
    # every slot is asked about, and second questions (after the first answer) are among them
    assert {c.expected["slot"] for c in asks} == {"size", "temperature", "quantity", "drink"}
    by_dialogue = {}
    for c in asks:
        by_dialogue[c.conversation_id] = by_dialogue.get(c.conversation_id, 0) + 1
    assert sum(n >= 2 for n in by_dialogue.values()) >= 10


def test_heldout_seed_is_never_a_training_seed() -> None:
    for seed in range(5):
        assert seed + demo.HELDOUT_SEED_OFFSET not in range(1000)


def test_wilson_interval() -> None:
    from tunelab.eval.metrics import wilson

    low, high = wilson(90, 100)
    assert 0.82 < low < 0.83 and 0.94 < high < 0.95


def test_demo_end_to_end_on_a_tiny_model(tmp_path, tiny_model_dir) -> None:
    result = demo.run_demo(
        tmp_path, n_train=16, n_heldout=6, seed=2, model=tiny_model_dir, max_steps=2, eval_steps=1, save_steps=2
    )
    run_dir = tmp_path / "run"
    pairs = [json.loads(line) for line in (run_dir / "before_after.jsonl").read_text().splitlines()]
    assert pairs and all(p["expected"]["act"] in ("ask", "confirm") for p in pairs)
    assert all(isinstance(p["tuned_reason"], str) and p["tuned_reason"] for p in pairs)
    scores = json.loads((run_dir / "demo_scores.json").read_text())
    for side in ("base", "tuned"):
        for act in ("ask", "confirm", "overall"):
            rate = scores[side][act]
            low, high = rate["ci95"]
            assert rate["n"] > 0 and low <= rate["rate"] <= high
    # the tests pin `auto` to fp32 (conftest), so nothing compiles here; config.yaml records the choice
    assert (result["cpu"]["precision"], result["cpu"]["compile"]) == ("fp32", False) and result["wall_seconds"] > 0
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]
    assert (resolved["precision"], resolved["compile"]) == ("fp32", False) and resolved["probe"]["why"]
    assert (run_dir / "report.html").exists()
    # the upper half of the layers: the second of the tiny model's two
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["model"]["lora"]["layers"] == 1


def test_the_demo_adapts_the_upper_half_of_the_layers(smol_dir) -> None:
    """SmolLM2's 30 layers: the last 15; a model whose layer count cannot be read: every layer."""
    assert demo.upper_half("smollm2-135m") == 15 and demo.upper_half(smol_dir) == 15
    assert demo.upper_half("no-such-model") == "all"


def test_twins_differ_from_their_dialogue_only_in_the_details_and_stay_on_its_side_of_the_split(tmp_path) -> None:
    from tunelab.data.synth import cafe

    plain, paired = cafe.generate(60, seed=7), cafe.generate(60, seed=7, twins=True)
    twins = [c for c in paired if c.id.endswith("-twin")]
    by_id = {c.id: c for c in paired}
    assert twins and len(paired) == 60 + len(twins)
    for twin in twins:
        original = by_id[twin.id.removesuffix("-twin")]
        roles = [m.role for m in twin.messages]
        assert roles[-1] == "assistant" and roles.count("assistant") in (1, 2)  # a welcome, then the confirmation
        # the twin's confirmation is its dialogue's last one, word for word, with the same record
        confirm_at = max(int(k) for k, v in original.meta["turns"].items() if v["act"] == "confirm")
        assert twin.messages[-1].content == original.messages[confirm_at].content
        assert twin.meta["turns"][str(len(twin.messages) - 1)] == original.meta["turns"][str(confirm_at)]
        # every option the customer added later is in the twin's opening; the greeting and phrasing are kept
        opening, first = twin.messages[-2].content, original.messages[len(twin.messages) - 2].content
        assert opening != first and opening[-1] == first[-1]
        for later in (m.content for m in original.messages[len(twin.messages) - 1 :] if m.role == "user"):
            word = later.lower().strip(".!").split()[-1]
            assert word in opening.lower() or later in cafe.YES or word in ("please", "them", "one", "fine", "great")
    # without twins nothing of a dialogue changes: the main random stream is the same
    originals = [c for c in paired if not c.id.endswith("-twin")]
    assert [c.id for c in originals] == [c.id for c in plain]
    assert all(not any(v["act"] == "ask" for v in c.meta["turns"].values()) for c in twins)
    data = demo.write_data(tmp_path, n_train=40, n_heldout=10, seed=3, n_val=8, twins=True)
    rows = {
        name: [json.loads(x)["id"] for x in data["files"][name].read_text().splitlines()] for name in ("train", "val")
    }
    assert not any(i.endswith("-twin") for i in rows["val"])
    assert all(i.removesuffix("-twin") in rows["train"] for i in rows["train"])


def test_the_precision_follows_the_measured_matmul_rates_at_the_probe_size(monkeypatch) -> None:
    """bf16_base + compile only where a bf16 multiply of the probe's size measured >= 1.5x fp32.
    Other CPUs cannot run here, so their measured rates are stood in for (Zen 4 and AVX2-only EPYC)."""
    import torch

    from tunelab.models import hardware as speed

    sizes = []
    for rates, chosen in (
        ({torch.float32: 103.0, torch.bfloat16: 206.0}, "bf16_base"),  # Zen 4, 256x256
        ({torch.float32: 88.0, torch.bfloat16: 3.0}, "fp32"),  # AVX2-only EPYC
        ({torch.float32: 96.0, torch.bfloat16: 129.0}, "fp32"),
    ):  # 1.34x: under the bar
        monkeypatch.setattr(
            speed, "matmul_peak", lambda dtype, n, seconds, rates=rates: sizes.append(n) or rates[dtype]
        )
        cpu = speed.measure_cpu()
        assert (cpu["precision"], cpu["compile"]) == (chosen, chosen == "bf16_base"), cpu
        assert cpu["threads"] == torch.get_num_threads()  # the probe's one thread is given back
    assert set(sizes) == {speed.PROBE_SIZE}


def test_the_demo_compiles_on_a_native_bf16_cpu_even_when_it_generates_during_training(
    tmp_path: Path, monkeypatch
) -> None:
    """The demo leaves precision and compile at auto, so its runs resolve them like any other run;
    behaviour evaluation during training no longer turns compile off."""
    from tunelab.models.hardware import AUTO_ENV
    from tunelab.train.precision import resolve

    monkeypatch.setenv(AUTO_ENV, "bf16_base")  # a CPU with native bf16, as the probe would find it
    long_run = {"behaviour_eval": {"enabled": True, "contexts": 100, "max_new_tokens": 64}}
    config = demo.demo_config(tmp_path, Path("t.jsonl"), Path("v.jsonl"), **long_run)
    assert (config.train.precision, config.train.compile) == ("auto", "auto")
    used = resolve(config).train
    assert (used.precision, used.compile, used.behaviour_eval.enabled) == ("bf16_base", True, True)

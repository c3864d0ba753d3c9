"""The knowledge lab: data invariants, the measurements, and every experiment end to end in quick mode."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from knowledge_lab.data import ATTRIBUTES, Population, biography_batch, make_world, probe_set, sampling_weights
from knowledge_lab.measure import detect_phases, entropy, fit_power_law, no_knowledge_baseline, probe
from knowledge_lab.model import ModelConfig, TinyGPT


@pytest.fixture(scope="module")
def world():
    return make_world({"train": 300, "heldout": 50}, seed=3)


def _names_in(world, ids: torch.Tensor) -> set[tuple[str, str]]:
    words = world.vocab.decode(ids.flatten().tolist())
    return set(zip(words, words[1:]))


def test_templates_split_20_5_and_heldout_never_trained(world):
    for attr in ATTRIBUTES:
        train, held = world.templates.train[attr], world.templates.heldout[attr]
        assert (len(train), len(held)) == (20, 5)
        assert not {tuple(t) for t in train} & {tuple(t) for t in held}
        # Held-out templates recombine training words: no word is new at evaluation.
        assert {w for t in held for w in t} <= {w for t in train for w in t}


def test_heldout_individuals_never_appear_in_training(world):
    train, held = world.populations["train"], world.populations["heldout"]
    assert not set(train.names) & set(held.names)
    rng = np.random.default_rng(0)
    ids = biography_batch(world, train, rng.integers(0, len(train), 400), rng)
    pairs = _names_in(world, ids)
    assert not set(held.names) & pairs
    assert set(train.names[:5]) & pairs  # sanity: training names do show up as adjacent words


def test_world_is_reproducible_and_seed_dependent():
    a, b, c = (make_world({"train": 40}, s) for s in (1, 1, 2))
    assert a.populations["train"].names == b.populations["train"].names
    assert a.populations["train"].names != c.populations["train"].names


def test_biography_has_one_sentence_per_attribute_in_random_order(world):
    pop = world.populations["train"]
    rng = np.random.default_rng(1)
    ids = biography_batch(world, pop, np.array([0] * 8), rng)
    firsts = set()
    for row in ids.tolist():
        words = [w for w in world.vocab.decode(row) if w != "<pad>"]
        assert words.count(".") == len(ATTRIBUTES)
        firsts.add(tuple(words[3:6]))
    assert len(firsts) > 1  # sentence order (and templates) vary between copies


def test_power_law_sampling_frequencies_are_ordered():
    w = sampling_weights(50, 0.8)
    assert math.isclose(w.sum(), 1.0) and np.all(np.diff(w) < 0)
    assert math.isclose(w[0] / w[1], 2**0.8)
    counts = np.bincount(np.random.default_rng(0).choice(50, 20000, p=w), minlength=50)
    assert counts[0] > counts[4] > counts[20] > 0
    assert np.allclose(sampling_weights(7, 0.0), 1 / 7)


def test_baseline_is_the_entropy_of_value_statistics_hand_checked(world):
    assert math.isclose(entropy(["A", "A", "B", "C"]), -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)))
    pop = Population([("x", "y")] * 4, {a: np.array([0, 0, 1, 2]) for a in ATTRIBUTES})
    # Birth dates 0, 1 share day and month and differ in year; date 2 differs only in year too.
    dates = [world.choices["birth_date"][i] for i in (0, 0, 1, 2)]
    per_pos = [entropy([d[p] for d in dates]) for p in range(3)]
    expected = (sum(per_pos) + 5 * entropy([0, 0, 1, 2])) / 8
    assert math.isclose(no_knowledge_baseline(world, pop), expected)
    assert per_pos[:2] == [0.0, 0.0]


def test_power_law_fit_recovers_known_exponent():
    x = np.array([100, 200, 400, 800, 1600])
    noise = np.random.default_rng(0).normal(0, 0.02, len(x))
    fit = fit_power_law(x, 7.0 * x**0.81 * np.exp(noise))
    assert abs(fit["exponent"] - 0.81) < 0.05 and fit["r2"] > 0.99
    with pytest.raises(ValueError):
        fit_power_law([1], [2])


def test_phase_detection_on_a_synthetic_curve():
    steps = list(range(0, 200, 10))
    loss = [7, 5, 4.1, 4.0, 4.02, 3.98, 4.0, 4.01, 3.99, 4.0, 3.5, 3.0, 2, 1.5, 1, 1, 1, 1, 1, 1]
    ph = detect_phases(steps, loss, baseline=4.0)
    assert (ph["plateau_start"], ph["plateau_end"], ph["plateau_length"]) == (20, 100, 80)
    assert detect_phases(steps, [7.0] * 20, 4.0)["plateau_start"] is None


def test_probe_accuracy_is_exact_greedy_recall(world):
    pop = world.populations["train"]
    ps = probe_set(world, pop, np.arange(3), np.random.default_rng(0))
    model = TinyGPT(ModelConfig(len(world.vocab), world.max_len, 16, 1, 2))
    with torch.no_grad():  # a model that always says "." never recalls a value
        model.tok.weight.zero_()
        model.tok.weight[world.vocab.index["."]] = 1.0
    res = probe(model, ps)
    assert res.accuracy == 0.0 and res.per_person.shape == (3,)
    assert ps.target.sum().item() == 3 * 8  # 3 people x (3 date tokens + 5 one-token values)


def test_patched_attention_uses_the_given_patterns(world):
    torch.manual_seed(0)
    a, b = (TinyGPT(ModelConfig(len(world.vocab), world.max_len, 16, 2, 2)) for _ in range(2))
    ids = torch.randint(0, len(world.vocab), (2, 9))
    pats = a(ids, return_patterns=True)[1]
    assert all(torch.allclose(p.sum(-1), torch.ones(())) for p in pats)
    assert torch.allclose(a(ids)[0], a(ids, pats)[0], atol=1e-5)  # own patterns reproduce the normal pass
    assert not torch.allclose(b(ids)[0], b(ids, pats)[0], atol=1e-5)


def test_every_experiment_in_quick_mode_via_cli(tmp_path):
    from knowledge_lab.cli import app

    result = CliRunner().invoke(app, ["all", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in ("phases", "plateau", "alpha", "curriculum", "hallucination", "finetune", "attention"):
        run = tmp_path / name
        assert {"scores.json", "metrics.jsonl", "report.html"} <= {p.name for p in run.iterdir()}
        assert list((run / "plots").glob("*.png"))
        html = (run / "report.html").read_text()
        assert "data:image/png;base64," in html and "http" not in html.split("arXiv")[0].lower()
    summary = json.loads((tmp_path / "summary.json").read_text())["results"]
    ph = summary["phases"]
    assert ph["final_loss"] < ph["uniform_guess_loss"] - 1.0  # phase 1: value statistics are learnt
    assert summary["alpha"]["best_alpha"] in [p["alpha"] for p in summary["alpha"]["points"]]
    ft = {p["replay"]: p for p in summary["finetune"]["points"]}
    assert ft[0.0]["new_loss_after"] < ph["uniform_guess_loss"]
    assert ft[0.5]["old_loss_after"] < ft[0.0]["old_loss_after"]  # replay protects the old individuals
    hall = [json.loads(line) for line in (tmp_path / "hallucination" / "metrics.jsonl").read_text().splitlines()]
    assert hall[-1]["heldout_confidence"] > 10 * hall[0]["heldout_confidence"]  # confident about strangers
    assert [p["n_people"] for p in summary["plateau"]["points"]] == [8, 16, 32]
    assert {p["stage"] for p in summary["attention"]["points"]} >= {"init", "final", "none (own attention)"}


def test_help_teaches_with_an_example():
    from knowledge_lab.cli import app

    for cmd in ("phases", "plateau", "alpha", "curriculum", "hallucination", "finetune", "attention", "all"):
        out = CliRunner().invoke(app, [cmd, "--help"]).output
        assert "Example" in out and "--quick" in out and "--seed" in out

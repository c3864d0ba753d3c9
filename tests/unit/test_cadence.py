"""How often a run evaluates and saves when train.eval_steps / train.save_steps are left at auto."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunelab.config import (
    EVAL_BUDGET,
    EVAL_COST_PER_EXAMPLE,
    MAX_EVALUATIONS,
    MIN_EVAL_STEPS,
    Config,
    ConfigError,
    evaluation_cadence,
    load,
)


def config(**train: object) -> Config:
    return Config(data={"train": "t.jsonl"}, train={"batch_size": 1, **train})


def cadence(c: Config, n_train: int, n_val: int) -> tuple[int, int, str | None]:
    resolved, why = evaluation_cadence(c, n_train, n_val)
    return resolved.train.eval_steps, resolved.train.save_steps, why


def test_auto_evaluates_about_ten_times_a_run():
    # the cafe demo's data through `tunelab train`: 1,117 steps of one dialogue, 24 validation dialogues
    every, save, why = cadence(config(), 1117, 24)
    assert (every, save) == (112, 112) and math.ceil(1117 / every) == 10
    assert (
        why
        == "evaluation and checkpoint every 112 steps (auto: 10 in 1117 steps, 24 validation examples kept under 10% of training)"
    )
    assert cadence(config(), 1000, 20)[:2] == (100, 100)  # Taskmaster-4's 1,000 dialogues


def test_a_large_validation_set_is_evaluated_less_often():
    # a 10% split: ten evaluations would cost a third of the training; two stay under a tenth
    assert cadence(config(), 900, 100)[:2] == (450, 450)
    # more validation than the budget allows even once: one evaluation, at the end
    assert cadence(config(), 100, 1000)[:2] == (100, 100)


def test_the_steps_count_is_the_runs_own():
    assert cadence(config(batch_size=4), 4000, 24)[0] == 100  # 1,000 steps of 4
    assert cadence(config(max_steps=2000), 1117, 1)[0] == 200
    assert cadence(config(epochs=2.0), 1117, 24)[0] == 224


def test_never_more_often_than_every_fifty_steps():
    # the previous fixed default: a short run evaluates and saves no more often than it did
    assert cadence(config(batch_size=4), 1117, 24)[0] == MIN_EVAL_STEPS  # 280 steps: 5 evaluations
    assert cadence(config(max_steps=120), 1117, 1)[0] == 50
    assert cadence(config(), 3, 0)[:2] == (3, 3)  # shorter than 50 steps: once, at the end


def test_without_validation_checkpoints_come_ten_times_a_run():
    every, save, why = cadence(config(), 1117, 0)
    assert (every, save) == (112, 112) and why == "evaluation and checkpoint every 112 steps (auto: 10 in 1117 steps)"


def test_a_given_setting_is_kept_and_the_other_follows_it():
    assert cadence(config(eval_steps=20), 1117, 24) == (
        20,
        20,
        "evaluation and checkpoint every 20 steps (as train.eval_steps)",
    )
    assert cadence(config(save_steps=300), 1117, 24)[:2] == (300, 300)
    c = config(eval_steps=20, save_steps=40)
    assert evaluation_cadence(c, 1117, 24) == (c, None)


def test_a_given_pair_must_still_keep_the_best_checkpoint():
    with pytest.raises(ConfigError, match="multiple of train.eval_steps"):
        load(data={"data": {"train": "t.jsonl"}, "train": {"eval_steps": 7, "save_steps": 50}})
    assert load(data={"data": {"train": "t.jsonl"}, "train": {"eval_steps": 7}}).train.save_steps == "auto"


@given(
    steps=st.integers(1, 20_000),
    batch=st.integers(1, 16),
    n_val=st.integers(0, 5_000),
)
def test_auto_never_evaluates_more_than_ten_times_nor_past_its_budget(steps, batch, n_val):
    c = config(batch_size=batch, max_steps=steps)
    every, save, _ = cadence(c, steps * batch, n_val)
    evaluations = math.ceil(steps / every)
    assert save == every and min(steps, MIN_EVAL_STEPS) <= every <= steps and evaluations <= MAX_EVALUATIONS
    if evaluations > 1:  # one evaluation is always allowed; more only within the budget
        assert evaluations * n_val * EVAL_COST_PER_EXAMPLE <= EVAL_BUDGET * steps * batch * (1 + 1e-9)

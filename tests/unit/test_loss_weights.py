"""The per-token loss weights of the masked-loss trainer (first_token_weight, focal_gamma) and their config checks."""

import math

import pytest
import torch

from tunelab.config import ConfigError, load
from tunelab.train.trainer import first_token_weights, focal_weights

DATA = {"train": "train.jsonl"}


def config(**train):
    return load(data={"data": DATA, "train": train})


def test_first_token_weights_mark_the_start_of_every_target_span():
    keep = torch.tensor([[False, True, True, False, True, True], [True, True, False, False, False, True]])
    assert first_token_weights(keep, 4.0).tolist() == [4.0, 1.0, 4.0, 1.0, 4.0, 1.0, 4.0]


def test_focal_weights_leave_uncertain_tokens_and_shrink_learned_ones():
    probability = torch.tensor([0.99, 0.9, 0.5, 0.1])
    weights = focal_weights(-probability.log(), 2.0)
    assert weights.tolist() == pytest.approx([(1 - p) ** 2 for p in probability.tolist()], rel=1e-4)
    # the ratio between a coin-flip token and a learned one is what shifts the gradient
    assert weights[2] / weights[0] == pytest.approx(2500, rel=1e-3)
    assert focal_weights(torch.tensor([0.3]), 0.0).item() == 1.0
    assert not focal_weights(torch.tensor([0.3], requires_grad=True), 2.0).requires_grad


@pytest.mark.parametrize("knob, value", [("first_token_weight", 3.0), ("focal_gamma", 2.0)])
def test_loss_weights_are_refused_outside_recipe_sft(knob, value):
    assert getattr(config(**{knob: value}).train, knob) == value
    with pytest.raises(ConfigError, match=f"train.{knob} is for recipe sft"):
        config(**{knob: value, "recipe": "dpo"})


def test_focal_gamma_cannot_be_negative():
    with pytest.raises(ConfigError, match="focal_gamma"):
        config(focal_gamma=-1)
    assert math.isclose(config().train.focal_gamma, 0.0)

"""Which logged evaluation a run's summary takes for the weights it ends with."""

from __future__ import annotations

from types import SimpleNamespace

from transformers import TrainerState

from tunelab.train.checkpoint import logged_evaluation


def trainer(tmp_path, best_step: int | None, load_best: bool = True, best_dir_exists: bool = True):
    state = TrainerState(global_step=12)
    state.log_history = [
        {"loss": 2.0, "step": 4},
        {"eval_loss": 1.5, "eval_behaviour_correct": 0.25, "epoch": 0.5, "step": 4},
        {"eval_loss": 1.1, "eval_behaviour_correct": 0.75, "epoch": 1.0, "step": 8},
        {"eval_loss": 1.3, "eval_behaviour_correct": 0.50, "epoch": 1.5, "step": 12},
        {"train_runtime": 9.0, "step": 12},
    ]
    if best_step is not None:
        best = tmp_path / f"checkpoint-{best_step}"
        if best_dir_exists:
            best.mkdir()
        state.best_model_checkpoint, state.best_global_step = str(best), best_step
    return SimpleNamespace(state=state, args=SimpleNamespace(load_best_model_at_end=load_best))


def test_the_best_checkpoints_evaluation_when_the_best_was_loaded(tmp_path):
    assert logged_evaluation(trainer(tmp_path, 8)) == {"eval_loss": 1.1, "eval_behaviour_correct": 0.75, "epoch": 1.0}


def test_the_last_steps_evaluation_when_the_last_weights_were_kept(tmp_path):
    assert logged_evaluation(trainer(tmp_path, 8, load_best=False))["eval_loss"] == 1.3
    # a best checkpoint whose folder is gone was not loaded: the weights are the last step's
    assert logged_evaluation(trainer(tmp_path / "gone", 8, best_dir_exists=False))["eval_loss"] == 1.3


def test_none_when_the_kept_weights_were_never_evaluated(tmp_path):
    unevaluated = trainer(tmp_path, None)
    unevaluated.state.global_step = 13  # stopped a step after the last evaluation
    assert logged_evaluation(unevaluated) is None

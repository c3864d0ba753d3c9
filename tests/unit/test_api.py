"""The public Python API: a cheap import, and configs built the ways the doc shows."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import tunelab
from tunelab.config import ConfigError


def test_importing_tunelab_loads_no_model_code():
    probe = "import sys, tunelab; print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_api_is_exported_under_names_no_subpackage_takes():
    for name in tunelab.__all__:
        assert callable(getattr(tunelab, name)), name
    for module in ("tunelab.serve.app", "tunelab.train.run", "tunelab.config"):
        importlib.import_module(module)  # importing a subpackage must not hide an API function
    assert callable(tunelab.fine_tune) and callable(tunelab.serve_model) and callable(tunelab.load_config)


def test_keyword_sections_lie_over_a_dict():
    base = {"data": {"train": "t.jsonl"}, "train": {"max_steps": 5, "epochs": 2}}
    config = tunelab.load_config(base, ["output.dir=runs/x"], train={"max_steps": 3})
    assert (config.train.max_steps, config.train.epochs, config.output.dir, config.data.train) == (
        3,
        2,
        "runs/x",
        "t.jsonl",
    )
    assert base["train"]["max_steps"] == 5  # the caller's dict is not changed


def test_a_yaml_path_takes_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  train: t.jsonl\ntrain:\n  max_steps: 8\n")
    config = tunelab.load_config(path, ["train.max_steps=2"])
    assert config.train.max_steps == 2 and config.data.train == "t.jsonl"
    with pytest.raises(ValueError, match="not both"):
        tunelab.load_config(path, train={"max_steps": 2})


def test_unknown_keys_name_the_nearest_one():
    with pytest.raises(ConfigError, match="max_steps"):
        tunelab.load_config(data={"train": "t.jsonl"}, train={"max_step": 2})


def test_config_errors_name_the_line_of_each_key_or_the_override_that_gave_it(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "data:\n  train: t.jsonl\ntrain:\n  max_steps: 0\n\n  lerning_rate: 1e-3\nmodel:\n  lora: {r: true}\n"
    )
    with pytest.raises(ConfigError) as refused:
        tunelab.load_config(path, ["train.epochs=false"])
    assert str(refused.value).splitlines()[1:] == [
        "  line 8: 'model.lora.r': expected a number, not true (got True)",
        "  from --set: 'train.epochs': expected a number, not false (got False)",
        "  line 4: 'train.max_steps': Input should be greater than or equal to 1 (got 0)",
        "  line 6: unknown key 'train.lerning_rate' — did you mean 'train.learning_rate'?",
    ]
    # A file's value replaced by --set is not the file's line; a missing key names its section's.
    path.write_text("data:\n  val: v.jsonl\ntrain:\n  max_steps: 4\n")
    with pytest.raises(ConfigError, match="line 1: missing required key 'data.train'") as refused:
        tunelab.load_config(path, ["train.max_steps=-1"])
    assert "from --set: 'train.max_steps'" in str(refused.value)


def test_fine_tune_refuses_overrides_on_a_loaded_config():
    config = tunelab.load_config(data={"train": "t.jsonl"})
    with pytest.raises(ValueError, match="overrides apply to a config path"):
        tunelab.fine_tune(config, overrides=["train.max_steps=2"])


def test_generation_settings_are_reachable_lazily():
    assert tunelab.GenerationSettings(max_new_tokens=7).max_new_tokens == 7
    with pytest.raises(AttributeError):
        tunelab.no_such_name  # noqa: B018

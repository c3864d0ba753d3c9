"""Property-based: the Taskmaster importer, config YAML and `--set` overrides, prompt YAML.
For any input only the documented one-line errors escape (ConfigError, PromptFileError; a
Taskmaster row is rejected naming file[index] and field), and read = kept + rejected."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import yaml
from hostile import BOM, json_values, safe_text
from hypothesis import given
from hypothesis import strategies as st

from tunelab.config import ConfigError, load
from tunelab.data.taskmaster import convert_dialogs, convert_rewards
from tunelab.prompts.rules import PromptFileError, load_prompt
from tunelab.textio import InputFileError


def dialog(cid: str, text: str) -> dict:
    call = [
        {"name": "api_call", "value": "get_menu", "context": "api_call_0"},
        {"name": "request", "value": '{"q": "latte"}', "context": "api_call_0"},
        {"name": "api_response", "value": "get_menu", "context": "api_response_0"},
        {"name": "response", "value": '{"items": []}', "context": "api_response_0"},
    ]
    return {
        "conversation_id": cid,
        "scenario": "s",
        "utterances": [
            {"speaker": "user", "text": text, "annotations": call},
            {"speaker": "assistant", "text": "Here."},
        ],
    }


DIALOG_PATHS = [
    ["utterances"],
    ["utterances", 0],
    ["utterances", 0, "text"],
    ["utterances", 0, "speaker"],
    ["utterances", 0, "annotations"],
    ["utterances", 0, "annotations", 0],
    ["utterances", 0, "annotations", 1, "value"],
    ["utterances", 0, "annotations", 3, "value"],
    ["utterances", 0, "annotations", 0, "context"],
    ["conversation_id"],
]


def _mutate(value: dict, path: list, new: object) -> dict:
    out = copy.deepcopy(value)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return out


item = st.one_of(
    st.builds(lambda t: ("good", t), safe_text),
    st.builds(lambda p, v: ("bad", (p, v)), st.sampled_from(DIALOG_PATHS), json_values),
    st.builds(lambda n: ("deep", n), st.integers(70, 3000)),
    st.builds(
        lambda n: ("bad", (["utterances", 0, "annotations", 3, "value"], "[" + "9" * n + "]")), st.integers(4301, 6000)
    ),
)


@given(st.lists(item, min_size=1, max_size=6), st.booleans())
def test_taskmaster_dialogs(items, bom):
    parts, good_ids = [], set()
    for i, (kind, value) in enumerate(items):
        if kind == "good":
            parts.append(json.dumps(dialog(f"c{i}", value)))
            good_ids.add(f"c{i}")
        elif kind == "bad":
            parts.append(json.dumps(_mutate(dialog(f"c{i}", "hi"), *value)))
        else:
            parts.append("[" * value + "]" * value)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "dialogs").mkdir()
        (Path(tmp) / "dialogs" / "d.json").write_bytes((BOM if bom else b"") + ("[" + ",\n".join(parts) + "]").encode())
        res = convert_dialogs(tmp)
        assert res.n_read == len(items) == len(res.rows) + len(res.rejected)
        assert good_ids <= {r["id"] for r in res.rows}
        for r in res.rejected:
            assert r.source.startswith("d.json[") and r.field and r.reason


@given(
    st.lists(
        st.one_of(
            st.none(),
            json_values,
            st.builds(lambda v: {"conversation_id": "x", "context": v, "generation": v, "reward": 1}, json_values),
            st.builds(
                lambda v: {
                    "conversation_id": "x",
                    "context": json.dumps([{"role": "user", "text": "hi"}]),
                    "generation": json.dumps(v),
                    "reward": 1,
                },
                json_values,
            ),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_taskmaster_rewards(rows):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "reward").mkdir()
        (Path(tmp) / "reward" / "r.json").write_text(json.dumps(rows, ensure_ascii=True))
        res = convert_rewards(tmp)
        assert res.n_read == len(rows) == len(res.rows) + len(res.rejected)


VALID = {"model": {"name": "smollm2-135m"}, "data": {"train": "t.jsonl"}, "train": {"epochs": 1}}
CONFIG_PATHS = [
    ["model"],
    ["model", "name"],
    ["data"],
    ["data", "train"],
    ["data", "max_length"],
    ["train", "epochs"],
    ["extra"],
]
yaml_text = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    st.builds(
        lambda p, v: json.dumps(_mutate(VALID, p, v), ensure_ascii=True), st.sampled_from(CONFIG_PATHS), json_values
    ),
    st.builds(lambda n: "data:\n  train: " + "[" * n + "]" * n, st.integers(1, 3000)),
    st.just("data:\n  train: a\n  train: b\n"),
    st.just("data:\n  max_length: " + "9" * 5000 + "\n"),
    st.just("a: &x [*x]\n"),
    st.just("!!python/object:os.system {}\n"),
)


def _write(path: Path, text: str, bom: bool) -> None:
    path.write_bytes((BOM if bom else b"") + text.encode("utf-8", errors="surrogateescape"))


@given(yaml_text, st.booleans())
def test_config_yaml_gives_config_error_or_a_config(text, bom):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        _write(path, text, bom)
        try:
            load(path)
        except ConfigError as exc:
            assert str(exc).startswith(str(path)) and "Traceback" not in str(exc)


@given(st.text(max_size=60), st.sampled_from(["data.train", "train.epochs", "model", "a.b.c", "", "data..x"]))
def test_set_overrides_give_config_error_or_a_config(value, key):
    try:
        load(data={"data": {"train": "x"}}, overrides=[f"{key}={value}"])
    except ConfigError:
        pass


@given(
    st.one_of(
        yaml_text,
        st.builds(lambda v: yaml.safe_dump({"prompt": "Be brief.", "rules": v}), json_values),
        st.builds(
            lambda v: yaml.safe_dump({"prompt": "Be brief.", "rules": [{"kind": "max_words", "n": 9}], "examples": v}),
            json_values,
        ),
        st.builds(lambda v: json.dumps({"prompt": v}, ensure_ascii=True), json_values),
    ),
    st.booleans(),
)
def test_prompt_yaml_gives_prompt_file_error_or_a_spec(text, bom):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.yaml"
        _write(path, text, bom)
        try:
            load_prompt(path)
        except PromptFileError as exc:
            assert str(exc).startswith(str(path))


def test_unreadable_paths_are_one_line_errors(tmp_path):
    for call, error in ((load, ConfigError), (load_prompt, PromptFileError)):
        for path in (tmp_path, tmp_path / "missing.yaml"):
            try:
                call(path)
            except error as exc:
                assert str(path) in str(exc) and "\n" not in str(exc)
            else:
                raise AssertionError(f"{call.__name__}({path}) did not fail")
    try:
        convert_dialogs(tmp_path / "nothing")
    except (FileNotFoundError, InputFileError) as exc:
        assert "nothing" in str(exc)

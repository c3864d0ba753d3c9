"""The Taskmaster-4 experiment's library parts: the split by dialogue, the training config, the paired table."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from tunelab.data.formats import read_conversations
from tunelab.data.split import fingerprint, split_by_dialogue
from tunelab.data.taskmaster import convert_dialogs, write_result
from tunelab.demos.taskmaster import training_config
from tunelab.eval.paired_table import SavedRunError, behaviour_table, format_table, retable
from tunelab.messages import Conversation, Message

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "taskmaster4"
CONFIG = ROOT / "examples" / "taskmaster.yaml"


def _conv(cid: str, order: str) -> Conversation:
    return Conversation(id=cid, messages=(Message("user", f"one {order} please"), Message("assistant", "What size?")))


@pytest.fixture(scope="module")
def real_dialogues(tmp_path_factory: pytest.TempPathFactory) -> list[Conversation]:
    if not REAL.is_dir():
        pytest.skip(f"Taskmaster-4 data not present at {REAL}")
    out = tmp_path_factory.mktemp("tm") / "taskmaster.jsonl"
    write_result(convert_dialogs(REAL), out)
    return read_conversations(out).conversations


def test_real_split_is_disjoint_seeded_and_eval_fixed_by_seed(real_dialogues: list[Conversation]) -> None:
    small = split_by_dialogue(real_dialogues, n_train=50, n_val=5, n_eval=20, seed=3)
    large = split_by_dialogue(real_dialogues, n_train=400, n_val=5, n_eval=20, seed=3)
    again = split_by_dialogue(list(reversed(real_dialogues)), n_train=50, n_val=5, n_eval=20, seed=3)
    other = split_by_dialogue(real_dialogues, n_train=50, n_val=5, n_eval=20, seed=4)

    assert (len(small.train), len(small.val), len(small.eval)) == (50, 5, 20)
    train, val, held = ({fingerprint(c) for c in part} for part in (large.train, large.val, large.eval))
    assert not (train & held) and not (train & val) and not (val & held)
    # More training data must not change which dialogues are evaluated, nor the file order.
    assert [c.id for c in large.eval] == [c.id for c in small.eval] == [c.id for c in again.eval]
    assert [c.id for c in other.eval] != [c.id for c in small.eval]


def test_a_copy_of_an_eval_dialogue_under_another_id_never_reaches_training() -> None:
    convs = [_conv(f"c{i}", f"drink {i}") for i in range(30)] + [_conv("copy-of-c0", "drink 0")]
    for seed in range(20):
        split = split_by_dialogue(convs, n_train=25, n_val=0, n_eval=5, seed=seed)
        assert split.duplicates_dropped == 1
        assert not {fingerprint(c) for c in split.train} & {fingerprint(c) for c in split.eval}


def test_split_refuses_more_dialogues_than_exist() -> None:
    convs = [_conv(f"c{i}", f"drink {i}") for i in range(10)]
    with pytest.raises(ValueError, match="only 10 distinct"):
        split_by_dialogue(convs, n_train=8, n_val=1, n_eval=2, seed=0)
    with pytest.raises(ValueError, match="--eval >= 1"):
        split_by_dialogue(convs, n_train=8, n_val=0, n_eval=0, seed=0)


def test_training_config_uses_the_split_files_and_validates(tmp_path: Path, monkeypatch) -> None:
    from tunelab.models.hardware import AUTO_ENV
    from tunelab.train.precision import resolve

    paths = {name: tmp_path / f"{name}.jsonl" for name in ("train", "val", "eval")}

    def config_for(sets: list[str], steps: int | None = None, seed: int = 0):
        return training_config(CONFIG, paths, tmp_path / "run", 40, seed=seed, n_val=20, steps=steps, sets=sets)

    config = config_for(["train.batch_size=2"], steps=8, seed=5)
    assert config.model.name == "smollm2-135m" and config.model.adapter == "lora"
    assert config.data.train == str(paths["train"]) and config.data.val == str(paths["val"])
    assert config.data.max_length >= 1024  # most Taskmaster dialogues fit whole
    assert (config.train.max_steps, config.train.seed, config.train.batch_size) == (8, 5, 2)
    # the evaluation cadence is the run's own (auto), as for any user's run
    assert (config.train.eval_steps, config.train.save_steps) == ("auto", "auto")
    assert config.output.dir == str(tmp_path / "run")
    # precision and compile stay auto, which the run resolves by the CPU, unless the overrides name them
    monkeypatch.setenv(AUTO_ENV, "bf16_base")  # a CPU with native bf16
    config = config_for(["train.batch_size=2"], steps=8, seed=5)
    assert (config.train.precision, config.train.compile) == ("auto", "auto")
    assert (resolve(config).train.precision, resolve(config).train.compile) == ("bf16_base", True)
    config = config_for(["train.precision=fp32"])
    assert (resolve(config).train.precision, resolve(config).train.compile) == ("fp32", False)
    # a run that generates during training is compiled too
    config = resolve(config_for(["train.behaviour_eval.enabled=true"]))
    assert (config.train.precision, config.train.compile) == ("bf16_base", True)
    monkeypatch.setenv(AUTO_ENV, "fp32")  # no native bf16
    assert (resolve(config_for([])).train.precision, resolve(config_for([])).train.compile) == ("fp32", False)


def _row(cid: str, turn: int, ref_act: str, act: str, text: tuple[str, str] = ("", ""), **detail: bool) -> dict:
    return {
        "conversation_id": cid,
        "turn_index": turn,
        "reference": text[0],
        "prediction": text[1],
        "behaviour": {
            "reference_act": ref_act,
            "act": act,
            "appropriate": ref_act == act,
            "correct": detail.get("args_correct", ref_act == act),
            **detail,
        },
    }


def test_table_pairs_rows_by_context_and_restricts_tool_call_rows() -> None:
    base = SimpleNamespace(
        rows=[
            _row("a", 1, "tool_call", "inform", name_correct=False, args_correct=False),
            _row("a", 3, "ask", "ask"),
            _row("b", 1, "tool_call", "tool_call", name_correct=True, args_correct=False),
        ]
    )
    # The tuned side lists the same contexts in another order.
    tuned = SimpleNamespace(
        rows=[
            _row("b", 1, "tool_call", "tool_call", name_correct=True, args_correct=True),
            _row("a", 3, "ask", "inform"),
            _row("a", 1, "tool_call", "tool_call", name_correct=True, args_correct=True),
        ]
    )
    table = {r["metric"]: r for r in behaviour_table(base, tuned, n_resamples=200, seed=0)}
    assert (table["appropriateness"]["base"], table["appropriateness"]["tuned"]) == (0.667, 0.667)
    assert table["tool_call: name accuracy"]["n"] == 2
    assert (table["tool_call: name accuracy"]["base"], table["tool_call: name accuracy"]["tuned"]) == (0.5, 1.0)
    # each side's own 95% interval (Wilson): 1 of 2 and 2 of 2
    assert table["tool_call: name accuracy"]["base_ci95"] == [0.095, 0.905]
    assert (
        table["tool_call: name accuracy"]["tuned_ci95"][0] == 0.342
        and table["tool_call: name accuracy"]["tuned_ci95"][1] == 1.0
    )
    assert table["tool_call: args accuracy (exact)"]["delta"] == 1.0
    assert table["ask: appropriateness"]["delta"] == -1.0
    assert table["steer: appropriateness"]["n"] == 0
    assert "tool_call: name accuracy" in format_table(list(table.values()))


def test_text_turns_question_or_statement_recall_and_their_balanced_accuracy() -> None:
    """Text turns only (tool calls and empty replies are neither form), by the judge's reply_form."""
    from tunelab.eval.behaviour import reply_form

    call = '<tool_call>{"name": "get_menu_items", "arguments": {}}</tool_call>'
    assert [reply_form(t) for t in ("What size?", "Would you like oat milk", "OK, added.", call, "")] == [
        "question",
        "question",
        "statement",
        "tool_call",
        "none",
    ]
    turns = [  # (reference, base's reply, tuned's reply)
        ("What size would you like?", "Sure.", "Which size?"),
        ("Can I get your name?", "What's your name?", "And your name?"),
        ("Your order will be ready soon.", "Anything else?", "It will be ready in five minutes."),
        (call, "Okay.", call),  # a tool call's turn counts in neither row
    ]
    base = SimpleNamespace(rows=[_row("a", i, "x", "x", (ref, b)) for i, (ref, b, _) in enumerate(turns)])
    tuned = SimpleNamespace(rows=[_row("a", i, "x", "x", (ref, t)) for i, (ref, _, t) in enumerate(turns)])
    table = {r["metric"]: r for r in behaviour_table(base, tuned, n_resamples=200, seed=0)}
    questions, statements = table["text: question recall"], table["text: statement recall"]
    assert (questions["n"], questions["base"], questions["tuned"]) == (2, 0.5, 1.0)
    assert (statements["n"], statements["base"], statements["tuned"]) == (1, 0.0, 1.0)
    balanced = table["text: balanced accuracy"]
    assert (balanced["n"], balanced["base"], balanced["tuned"], balanced["delta"]) == (3, 0.25, 1.0, 0.75)
    assert balanced["tuned_ci95"] == [1.0, 1.0] and balanced["base_ci95"][0] <= 0.25 <= balanced["base_ci95"][1]
    assert "text: balanced accuracy" in format_table(list(table.values()))


def test_retable_rebuilds_the_table_of_a_finished_run_from_its_saved_predictions(tmp_path) -> None:
    from tunelab.rundir import PREDICTIONS, read_json, write_json, write_jsonl

    write_jsonl(
        tmp_path / "eval_base" / PREDICTIONS,
        [
            _row("a", 1, "tool_call", "inform", name_correct=False),
            _row("b", 1, "tool_call", "tool_call", name_correct=True),
        ],
    )
    write_jsonl(
        tmp_path / "eval_tuned" / PREDICTIONS,
        [
            _row("b", 1, "tool_call", "tool_call", name_correct=True),
            _row("a", 1, "tool_call", "tool_call", name_correct=True),
        ],
    )
    write_json(tmp_path / "results.json", {"seed": 0, "table": [], "timing": {"train": {"wall_s": 1.0}}})
    retable(tmp_path, n_resamples=200, seed=0)
    results = read_json(tmp_path / "results.json")
    names = {r["metric"]: r for r in results["table"]}["tool_call: name accuracy"]
    assert (names["n"], names["base"], names["tuned"], names["delta"]) == (2, 0.5, 1.0, 0.5)
    assert results["timing"] == {"train": {"wall_s": 1.0}}  # the rest is kept


@pytest.mark.parametrize(
    "line, says",
    [
        (b'{"conversation_id": "a", "turn_index": 1', "(row): invalid JSON"),
        (
            b'{"conversation_id": "a", "turn_index": 1, "behaviour": {"act": "\\ud800"}}',
            "behaviour.act: holds a lone surrogate",
        ),
        (b'{"conversation_id": "a", "turn_index": 1, "behaviour": ' + b"[" * 5000 + b"]" * 5000 + b"}", "(row): "),
        (b'{"conversation_id": "a", "turn_index": 1}', "behaviour: missing, or not of type dict"),
        (b'{"conversation_id": "a", "turn_index": "1", "behaviour": {}}', "turn_index: missing, or not of type int"),
    ],
)
def test_retable_refuses_a_broken_saved_reply_naming_file_line_and_field(tmp_path, line: bytes, says: str) -> None:
    import json

    from tunelab.rundir import PREDICTIONS, write_json, write_jsonl

    good = _row("b", 1, "tool_call", "tool_call", name_correct=True)
    write_jsonl(tmp_path / "eval_base" / PREDICTIONS, [good])
    # a BOM before the first row is fine; the second row is the broken one
    (tmp_path / "eval_tuned").mkdir()
    (tmp_path / "eval_tuned" / PREDICTIONS).write_bytes(
        b"\xef\xbb\xbf" + json.dumps(good).encode() + b"\n" + line + b"\n"
    )
    write_json(tmp_path / "results.json", {"seed": 0, "table": []})
    with pytest.raises(SavedRunError) as exc:
        retable(tmp_path, n_resamples=200, seed=0)
    assert str(exc.value).startswith(f"{tmp_path / 'eval_tuned' / PREDICTIONS}:2: ") and says in str(exc.value)


def test_retable_refuses_missing_files_and_uncovered_contexts(tmp_path) -> None:
    from tunelab.rundir import PREDICTIONS, write_json, write_jsonl

    with pytest.raises(SavedRunError, match="results.json: cannot be read"):
        retable(tmp_path, n_resamples=2000, seed=0)
    write_json(tmp_path / "results.json", {"seed": 0, "table": []})
    write_jsonl(tmp_path / "eval_base" / PREDICTIONS, [_row("a", 1, "ask", "ask"), _row("b", 1, "ask", "ask")])
    with pytest.raises(SavedRunError, match="eval_tuned/predictions.jsonl: no such file"):
        retable(tmp_path, n_resamples=2000, seed=0)
    write_jsonl(tmp_path / "eval_tuned" / PREDICTIONS, [_row("a", 1, "ask", "ask")])
    with pytest.raises(SavedRunError, match=r"no reply for 1 context\(s\) the base side has, e.g. \('b', 1\)"):
        retable(tmp_path, n_resamples=2000, seed=0)

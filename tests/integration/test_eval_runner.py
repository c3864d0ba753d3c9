"""Contexts, batched generation, `tunelab eval` and `tunelab compare` on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab import rundir
from tunelab.eval.contexts import build_contexts, message_text
from tunelab.eval.metrics import SEMANTIC, TEXT_METRICS
from tunelab.generation.replies import GenerationSettings, generate_replies, render_prompts
from tunelab.generation.tokens import left_pad, stop_token_ids
from tunelab.messages import Conversation, Message, ToolCall

ORDERS = [
    "a latte",
    "two large mochas and a croissant",
    "an iced americano",
    "a flat white",
    "a cookie",
    "three small hot chocolates with whipped cream please, and one blueberry muffin",
]


def _conversation(i: int) -> Conversation:
    return Conversation(
        id=f"c{i}",
        messages=(
            Message("system", "You take orders at a cafe."),
            Message("user", f"Hi, I'd like {ORDERS[i % len(ORDERS)]}."),
            Message("assistant", "What size would you like?"),
            Message("user", "Medium, thanks."),
            Message("assistant", f"So that's {ORDERS[i % len(ORDERS)]}, medium. Correct?"),
        ),
    )


def _write_data(path: Path, n: int = 4) -> Path:
    path.write_text("".join(json.dumps(_conversation(i).to_openai()) + "\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def chatty_dir(tiny_model_dir, tmp_path_factory) -> str:
    """The tiny model with untied, larger random weights: the shared one, with tied embeddings,
    repeats the prompt's last token ("\n") whatever the context, which would make equality vacuous."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.tie_word_embeddings, config.initializer_range = False, 0.2
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("chatty")
    LlamaForCausalLM(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def tiny(chatty_dir):
    from tunelab.models.load import load_model

    return load_model(chatty_dir)


def test_contexts_all_and_last_turns_with_system_prompt():
    convs = [_conversation(0), _conversation(1)]
    every = build_contexts(convs, "all")
    assert [(c.conversation_id, c.turn_index) for c in every] == [("c0", 2), ("c0", 4), ("c1", 2), ("c1", 4)]
    assert every[1].messages == convs[0].messages[:4]
    assert every[0].reference == "What size would you like?"
    last = build_contexts(convs, "last", system_prompt="Be brief.")
    assert [c.turn_index for c in last] == [4, 4]
    assert last[0].messages[0] == Message("system", "Be brief.")  # replaced, not added
    assert [m.role for m in last[0].messages] == ["system", "user", "assistant", "user"]
    no_system = Conversation(id="x", messages=(Message("user", "hi"), Message("assistant", "hello")))
    assert build_contexts([no_system], system_prompt="S")[0].messages[0] == Message("system", "S")
    with pytest.raises(ValueError, match="turns must be"):
        build_contexts(convs, "first")  # type: ignore[arg-type]


def test_weight_zero_turns_are_context_only():
    conv = Conversation(
        id="w",
        messages=(
            Message("user", "hi"),
            Message("assistant", "hello", weight=0),
            Message("user", "a latte"),
            Message("assistant", "What size?"),
        ),
    )
    assert [c.turn_index for c in build_contexts([conv])] == [3]


def test_tool_call_reference_is_stable_text():
    call = ToolCall(name="add_item", arguments='{"size": "large", "item": "latte"}', id="call_9")
    message = Message("assistant", "One moment.", tool_calls=(call,))
    text = message_text(message)
    assert text.startswith("One moment.\n<tool_call>") and text.endswith("</tool_call>")
    payload = json.loads(text.split("<tool_call>")[1].split("</tool_call>")[0])
    assert payload == {"name": "add_item", "arguments": {"size": "large", "item": "latte"}}
    assert message_text(message) == text  # no ids or randomness in it


def test_left_pad_right_aligns_prompts():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_prompt_ends_with_assistant_opener_and_stop_is_end_of_turn(tiny):
    model, tokenizer = tiny
    prompt = render_prompts(tokenizer, [_conversation(0).messages[:2]])[0]
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(tokenizer, model)


def test_batched_greedy_equals_unbatched(tiny):
    model, tokenizer = tiny
    contexts = build_contexts([_conversation(i) for i in range(1, 6)], turns="last")
    contexts += build_contexts([_conversation(0)])[:1]
    prompts = render_prompts(tokenizer, [c.messages for c in contexts])
    assert len({len(p) for p in prompts}) > 3  # lengths differ, so padding is really exercised
    settings = GenerationSettings(max_new_tokens=8, batch_size=4)
    batched = generate_replies(model, tokenizer, prompts, settings, progress=False)
    single = generate_replies(
        model, tokenizer, prompts, GenerationSettings(max_new_tokens=8, batch_size=1), progress=False
    )
    assert [r.token_ids for r in batched] == [r.token_ids for r in single]
    assert [r.text for r in batched] == [r.text for r in single]
    assert all(0 < r.new_tokens <= 8 for r in batched)
    assert len({r.token_ids for r in batched}) > 1  # replies depend on the context


def test_sampling_is_seeded(tiny):
    model, tokenizer = tiny
    prompts = render_prompts(tokenizer, [c.messages for c in build_contexts([_conversation(0)])])
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.95, seed=7)
    first = generate_replies(model, tokenizer, prompts, settings, progress=False)
    assert [r.text for r in first] == [
        r.text for r in generate_replies(model, tokenizer, prompts, settings, progress=False)
    ]


@pytest.mark.parametrize("bad", [dict(max_new_tokens=0), dict(temperature=0.0), dict(top_p=1.5), dict(batch_size=0)])
def test_generation_settings_are_validated(bad):
    with pytest.raises(ValueError):
        GenerationSettings(**bad)


def test_eval_writes_predictions_and_scores(tmp_path, chatty_dir):
    from tunelab.eval.runner import run_eval

    data = _write_data(tmp_path / "eval.jsonl", n=2)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Only take coffee orders.\n")
    result = run_eval(
        chatty_dir,
        data,
        out_dir=tmp_path / "out",
        system_prompt_file=prompt,
        settings=GenerationSettings(max_new_tokens=6),
        progress=False,
    )
    rows = rundir.read_jsonl(tmp_path / "out" / rundir.PREDICTIONS)
    scores = rundir.read_json(tmp_path / "out" / rundir.SCORES)
    assert len(rows) == 4 and scores["n"] == 4 and scores["n_conversations"] == 2
    for key in (
        "conversation_id",
        "turn_index",
        "context_tokens",
        "reference",
        "prediction",
        "latency_s",
        "scores",
        "behaviour",
    ):
        assert key in rows[0], key
    assert rows[0]["context"][0] == {"role": "system", "content": "Only take coffee orders."}
    assert set(scores["metrics"]) == {*TEXT_METRICS, SEMANTIC}
    assert scores["meteor_variant"] in ("wordnet", "exact+stem")
    assert scores["settings"]["max_new_tokens"] == 6 and scores["settings"]["do_sample"] is False
    assert scores["behaviour"]["n"] == 4 and "confusion" in scores["behaviour"]
    mean_bleu = sum(r["scores"]["bleu"] for r in rows) / 4
    assert scores["metrics"]["bleu"] == pytest.approx(mean_bleu)
    assert result.out_dir == tmp_path / "out"


def test_eval_rejects_bad_rows_naming_file_and_line(tmp_path, chatty_dir):
    from tunelab.eval.runner import EvalError, run_eval

    data = _write_data(tmp_path / "eval.jsonl", n=2)
    with data.open("a") as handle:
        handle.write(json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}) + "\n")
    with pytest.raises(EvalError, match=r"eval\.jsonl:3"):
        run_eval(chatty_dir, data, out_dir=tmp_path / "out", progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    with pytest.raises(EvalError, match="is empty"):
        run_eval(chatty_dir, _write_data(tmp_path / "ok.jsonl"), system_prompt_file=empty, progress=False)


def test_compare_with_and_without_system_prompt(tmp_path, chatty_dir):
    from tunelab.eval.compare import Side, run_compare
    from tunelab.eval.runner import EvalError

    data = _write_data(tmp_path / "eval.jsonl", n=3)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You are a grumpy barista. Answer in one word.")
    run_compare(
        Side(chatty_dir),
        Side(chatty_dir, str(prompt)),
        data,
        out_dir=tmp_path / "cmp",
        settings=GenerationSettings(max_new_tokens=6),
        semantic=False,
        n_resamples=200,
        progress=False,
    )
    saved = rundir.read_json(tmp_path / "cmp" / "compare.json")
    assert {"bleu", "chrf", "rougeL", "meteor", "exact_match", "appropriate", "correct"} <= set(saved["deltas"])
    for name, d in saved["deltas"].items():
        assert d["low"] - 1e-9 <= d["delta"] <= d["high"] + 1e-9, name
        assert d["delta"] == pytest.approx(d["b"] - d["a"])
    a_rows = rundir.read_jsonl(tmp_path / "cmp" / "a" / rundir.PREDICTIONS)
    b_rows = rundir.read_jsonl(tmp_path / "cmp" / "b" / rundir.PREDICTIONS)
    differing = [
        (a["conversation_id"], a["turn_index"])
        for a, b in zip(a_rows, b_rows)
        if a["behaviour"]["act"] != b["behaviour"]["act"]
    ]
    assert [(d["conversation_id"], d["turn_index"]) for d in saved["act_differences"]] == differing
    assert b_rows[0]["context"][0]["content"].startswith("You are a grumpy barista")
    with pytest.raises(EvalError, match="the same"):
        run_compare(Side(chatty_dir), Side(chatty_dir), data, out_dir=tmp_path / "x")


def test_cli_eval_and_compare(tmp_path, chatty_dir, monkeypatch):
    import typer
    from typer.testing import CliRunner

    from tunelab.cli.evaluate import register

    app = typer.Typer()
    register(app)
    data = _write_data(tmp_path / "eval.jsonl", n=2)
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--model",
            chatty_dir,
            "--data",
            str(data),
            "--out",
            str(tmp_path / "e"),
            "--turns",
            "last",
            "--max-new-tokens",
            "4",
            "--no-semantic",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "bleu" in result.output and rundir.read_json(tmp_path / "e" / rundir.SCORES)["n"] == 2
    bad = CliRunner().invoke(app, ["eval", "--model", chatty_dir, "--data", str(data), "--turns", "first"])
    assert bad.exit_code != 0 and "--turns" in bad.output
    prompt = tmp_path / "p.txt"
    prompt.write_text("Be brief.")
    result = CliRunner().invoke(
        app,
        [
            "compare",
            "--a",
            chatty_dir,
            "--b",
            chatty_dir,
            "--system-prompt-b",
            str(prompt),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "c"),
            "--max-new-tokens",
            "4",
            "--no-semantic",
            "--resamples",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "95% CI" in result.output and ("acts differ" in result.output or "differ in none" in result.output)
    assert (tmp_path / "c" / "compare.json").exists()

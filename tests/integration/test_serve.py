"""The OpenAI-compatible server, run for real on 127.0.0.1 and spoken to with the `openai` client."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import openai
import pytest

KEY = "test-key-123"


def make_run_dir(tiny_model_dir: str, root: Path) -> Path:
    """A run dir whose adapter/ really changes the tiny model's outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(root / "adapter")
    return root


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    from tunelab.serve.app import ServerThread, ServeSettings, create_app, load_engine

    run = make_run_dir(tiny_model_dir, tmp_path_factory.mktemp("run"))
    settings = ServeSettings(
        model_name="tiny", api_key=KEY, system_prompt="You take coffee orders.", max_tokens_limit=64, batch_window=0.15
    )
    engine = load_engine(str(run), settings)
    with ServerThread(create_app(engine, settings)) as url:
        yield {
            "url": url,
            "engine": engine,
            "run": run,
            "client": openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=60),
        }
    engine.close()


def direct_greedy(engine, messages, max_new_tokens):
    """The reference: plain `generate` on one unpadded prompt."""
    import torch

    from tunelab.generation.engine import build_prompt

    ids = build_prompt(engine.tokenizer, messages, "You take coffee orders.")
    with torch.inference_mode():
        out = engine.model.generate(
            torch.tensor([ids]), max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=engine.pad_id
        )
    new = [t for t in out[0, len(ids) :].tolist() if t not in engine.eos_ids]
    return engine.tokenizer.decode(new, skip_special_tokens=True), len(ids)


def ask(client, text, **kw):
    kw.setdefault("max_tokens", 12)
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": text}], **kw)


def test_models_endpoint_lists_the_served_model(served):
    assert [m.id for m in served["client"].models.list()] == ["tiny"]


def test_greedy_reply_equals_plain_generate_with_the_adapter(served):
    reply = ask(served["client"], "I'd like a latte")
    expected, n_prompt = direct_greedy(served["engine"], [{"role": "user", "content": "I'd like a latte"}], 12)
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage.prompt_tokens == n_prompt
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_default_system_prompt_is_used_only_when_the_request_has_none(served):
    from tunelab.generation.engine import build_prompt

    tok = served["engine"].tokenizer
    user = {"role": "user", "content": "hi"}
    without = ask(served["client"], "hi", max_tokens=1)
    own = served["client"].chat.completions.create(
        model="tiny", max_tokens=1, temperature=0, messages=[{"role": "system", "content": "Be terse."}, user]
    )
    assert without.usage.prompt_tokens == len(build_prompt(tok, [user], "You take coffee orders."))
    assert own.usage.prompt_tokens == len(build_prompt(tok, [{"role": "system", "content": "Be terse."}, user], None))
    assert without.usage.prompt_tokens != own.usage.prompt_tokens


def test_streaming_yields_the_same_text_as_a_plain_request(served):
    client = served["client"]
    plain = ask(client, "a mocha please").choices[0].message.content
    chunks = list(ask(client, "a mocha please", stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == plain
    assert sum(1 for d in deltas if d) > 1  # really streamed, not one blob
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    assert chunks[-1].usage.completion_tokens > 0


def test_stream_ends_with_done_marker(served):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    with httpx.stream(
        "POST", served["url"] + "/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all(json.loads(e[6:])["object"] == "chat.completion.chunk" for e in events[:-1])


def test_stop_string_cuts_the_reply(served):
    full = ask(served["client"], "two espressos", max_tokens=20).choices[0].message.content
    assert len(full) >= 6, f"the tiny model's reply is too short to cut: {full!r}"
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    cut = ask(served["client"], "two espressos", max_tokens=20, stop=[stop])
    assert cut.choices[0].message.content == full[: full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_missing_or_wrong_api_key_is_rejected(served):
    for key in ("wrong", ""):
        client = openai.OpenAI(base_url=served["url"], api_key=key or "x", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as err:
            client.models.list()
        assert err.value.status_code == 401
    response = httpx.get(served["url"] + "/models")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


BAD = {
    "malformed json": ('{"model": "tiny", "messages": [', 400, None),
    "messages not a list": ({"model": "tiny", "messages": "hi"}, 400, "messages"),
    "empty messages": ({"model": "tiny", "messages": []}, 400, "messages"),
    "unknown role": ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    "max_tokens wrong type": (
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"},
        400,
        "max_tokens",
    ),
    "max_tokens over limit": (
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 65},
        400,
        "max_tokens",
    ),
    "temperature out of range": (
        {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 9},
        400,
        "temperature",
    ),
    "n above one": ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
    "context too long": (
        {"model": "tiny", "messages": [{"role": "user", "content": "latte " * 1100}]},
        400,
        "messages",
    ),
    "unknown model": ({"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_requests_get_an_openai_style_4xx(served, case):
    body, status, param = BAD[case]
    kwargs = {"content": body} if isinstance(body, str) else {"json": body}
    response = httpx.post(
        served["url"] + "/chat/completions",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        timeout=30,
        **kwargs,
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param and error["message"]


def test_openai_client_sees_bad_request_error(served):
    with pytest.raises(openai.BadRequestError, match="only n=1"):
        ask(served["client"], "hi", n=2)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(served):
    client, engine = served["client"], served["engine"]
    prompts = ["a latte", "two flat whites and a scone", "cancel my order", "do you have oat milk?"]
    alone = {p: ask(client, p).choices[0].message.content for p in prompts}
    before = len(engine.stats()["batch_sizes"])
    results: dict[str, str] = {}
    barrier = threading.Barrier(len(prompts))

    def worker(prompt: str) -> None:
        barrier.wait()
        results[prompt] = ask(client, prompt).choices[0].message.content

    threads = [threading.Thread(target=worker, args=(p,)) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == alone  # left padding in a batch changes no one's greedy answer
    new_batches = engine.stats()["batch_sizes"][before:]
    assert sum(new_batches) == len(prompts)
    assert max(new_batches) >= 2

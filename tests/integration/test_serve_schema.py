"""The server against its own OpenAPI schema (schemathesis 4), a real uvicorn on 127.0.0.1 with a
tiny model: no 5xx, every status documented with its error body, 405 with Allow, size limits.
Then a bounded load test mixing good and malformed requests at the same time."""

from __future__ import annotations

import asyncio
import json
import os
import random

import httpx
import psutil
import pytest
import schemathesis
from hypothesis import Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

KEY = "schema-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from tunelab.serve.app import ServerThread, ServeSettings, create_app, load_engine

    conf = ServeSettings(
        model_name="tiny",
        api_key=KEY,
        max_tokens_limit=16,
        default_max_tokens=8,
        max_body_bytes=64 * 1024,
        batch_window=0.01,
    )
    engine = load_engine(tiny_model_dir, conf)
    with ServerThread(create_app(engine, conf)) as url:
        yield url.removesuffix("/v1")
    engine.close()


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(f"{server}/openapi.json", headers=AUTH)


# schemathesis' pytest plugin (from_fixture / parametrize) does not work with pytest 9 (it sets
# Function._nodeid); its per-operation hypothesis strategies do, and run the same checks.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_server_keeps_its_schema(api_schema, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/v1/models"),
        ("GET", "/v1/stats"),
        ("POST", "/v1/chat/completions"),
    }
    seen: set[int] = set()

    @given(st.sampled_from(operations).flatmap(lambda op: op.as_strategy(generation_mode=mode)))
    @settings(max_examples=60, phases=[Phase.generate])
    def run(case):
        # Every check: no 5xx, status documented, body matching the documented model, headers, ...
        # positive_data_acceptance is left out: a schema cannot say which model is served, how
        # long the context is or which role orders the chat template renders; those schema-valid
        # requests get the documented 400/404, which the other checks still validate.
        response = case.call(headers=AUTH)
        # A negative case can also be over the body limit: the documented 413 answers it before its
        # content is read, a right refusal that negative_data_rejection's list of statuses omits.
        excluded = [positive_data_acceptance, *([negative_data_rejection] if response.status_code == 413 else [])]
        case.validate_response(response, headers=AUTH, excluded_checks=excluded)
        seen.add(response.status_code)

    run()
    print(f"{mode.value}: statuses seen {sorted(seen)}")
    assert max(seen) < 500 and (200 in seen if mode is GenerationMode.POSITIVE else 400 in seen)


def test_every_error_status_is_documented_with_the_error_body(server):
    spec = httpx.get(f"{server}/openapi.json", headers=AUTH).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert {"200", "400", "401", "404", "413", "500", "503"} <= set(chat) and "422" not in chat
    for status in ("400", "401", "404", "413", "503"):
        assert chat[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}


def test_answers_name_the_problem(server):
    url = f"{server}/v1/chat/completions"
    good = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    assert httpx.post(url, json=good).status_code == 401
    wrong = httpx.put(url, headers=AUTH)
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST" and wrong.json()["error"]["message"]
    big = httpx.post(url, headers=AUTH, content=b"x" * (64 * 1024 + 1))
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"

    def chunks():  # no Content-Length: the limit counts the bytes as they arrive
        for _ in range(100):
            yield b" " * 1024

    assert httpx.post(url, headers=AUTH, content=chunks()).status_code == 413
    many = {**good, "messages": [{"role": "user", "content": "a"}] * 513}
    assert httpx.post(url, headers=AUTH, json=many).status_code == 400
    long_prompt = {**good, "messages": [{"role": "user", "content": "word " * 5000}]}
    answer = httpx.post(url, headers=AUTH, json=long_prompt)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "context_length_exceeded"
    assert httpx.post(url, headers=AUTH, json={**good, "max_tokens": 17}).status_code == 400
    assert (
        httpx.post(
            url, headers=AUTH, content=b'{"model": "tiny", "messages": [{"role": "user", "content": "\\ud800"}]}'
        ).status_code
        < 500
    )


BAD_BODIES = [
    b"{",
    b"[]",
    b'{"model": "tiny"}',
    b'{"model": "tiny", "messages": []}',
    b'{"model": "other", "messages": [{"role": "user", "content": "x"}]}',
    b'{"model": "tiny", "messages": [{"role": "robot", "content": "x"}]}',
    b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
    b'{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
    b"\xff\xfe",
    b"[" * 5000 + b"]" * 5000,
    b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 3}',
    b'{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": ' + b"9" * 5000 + b"}",
]


def test_bounded_load_mixing_good_and_malformed_requests(server):
    """48 requests, 8 at a time, half malformed: good ones answered whole, bad ones 4xx, server up.
    RSS of this process (which runs the server thread) is printed before and after."""
    url = f"{server}/v1/chat/completions"
    rng = random.Random(16)
    jobs = [
        (
            "good",
            json.dumps(
                {
                    "model": "tiny",
                    "messages": [{"role": "user", "content": f"order {i}"}],
                    "max_tokens": 6,
                    "stream": i % 4 == 0,
                }
            ).encode(),
        )
        if i % 2
        else ("bad", rng.choice(BAD_BODIES))
        for i in range(48)
    ]
    process = psutil.Process(os.getpid())
    before = process.memory_info().rss

    async def run() -> list[tuple[str, int, bytes]]:
        limit = asyncio.Semaphore(8)
        async with httpx.AsyncClient(headers={**AUTH, "content-type": "application/json"}, timeout=120) as client:

            async def one(kind: str, body: bytes) -> tuple[str, int, bytes]:
                async with limit:
                    response = await client.post(url, content=body)
                    return kind, response.status_code, response.content

            return await asyncio.gather(*(one(kind, body) for kind, body in jobs))

    results = asyncio.run(run())
    after = process.memory_info().rss
    print(f"RSS before {before / 2**20:.0f} MiB, after {after / 2**20:.0f} MiB, {len(jobs)} requests")
    for kind, status, content in results:
        if kind == "bad":
            assert 400 <= status < 500 and json.loads(content)["error"]["message"]
        elif content.startswith(b"data:"):
            assert status == 200 and content.rstrip().endswith(b"data: [DONE]")
        else:
            reply = json.loads(content)
            assert status == 200 and reply["choices"][0]["message"]["role"] == "assistant"
            assert reply["usage"]["completion_tokens"] <= 6
    assert httpx.get(f"{server}/v1/models", headers=AUTH).status_code == 200  # still up
    assert after - before < 200 * 2**20  # bounded: no per-request leak of the bodies or the batches

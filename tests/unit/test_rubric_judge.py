"""The LLM judge: parsing fixed answers, a real tiny model served on 127.0.0.1, retries and cache."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tunelab.eval.rubric import RubricJudge, RubricSettings, parse_verdict

GOOD = '{"correctness": {"score": 4, "reason": "asks for the size"}, "appropriateness": {"score": 5, "reason": "right act"}, "style": {"score": 3, "reason": "wordy"}}'
ITEMS = [
    {
        "context": [{"role": "user", "content": "A latte please"}],
        "prediction": "What size?",
        "reference": "Which size would you like?",
    },
    {"context": [{"role": "user", "content": "Large, oat milk"}], "prediction": "One large oat latte. Anything else?"},
    {"context": [], "prediction": "Hello!", "reference": "Hi, what can I get you?"},
]


@pytest.mark.parametrize(
    "text, scores",
    [
        (GOOD, {"correctness": 4, "appropriateness": 5, "style": 3}),
        ("Sure, here you go:\n```json\n" + GOOD + "\n```", {"correctness": 4, "appropriateness": 5, "style": 3}),
        (
            '{"Correctness": 2, "Appropriateness": "1", "style": 5.0, "style_reason": "fine"}',
            {"correctness": 2, "appropriateness": 1, "style": 5},
        ),
        (
            "Correctness: 4/5 - right slot\nAppropriateness: 3 - could confirm\n**Style**: 5 - short",
            {"correctness": 4, "appropriateness": 3, "style": 5},
        ),
    ],
)
def test_parse_accepts_common_answer_shapes(text, scores):
    parsed = parse_verdict(text)
    assert parsed is not None and parsed[0] == scores


def test_parse_keeps_the_reasons():
    assert parse_verdict(GOOD)[1] == {
        "correctness": "asks for the size",
        "appropriateness": "right act",
        "style": "wordy",
    }


@pytest.mark.parametrize(
    "text",
    [
        "The reply is good.",
        '{"correctness": 4, "appropriateness": 5}',  # a criterion missing
        '{"correctness": 6, "appropriateness": 5, "style": 3}',  # out of range
        '{"correctness": 0, "appropriateness": 5, "style": 3}',
        '{"correctness": true, "appropriateness": 5, "style": 3}',
        '{"correctness": 3.5, "appropriateness": 5, "style": 3}',
        '{"correctness": 4, "appropriateness": 5, "style": 3',  # truncated JSON
        "",
    ],
)
def test_parse_rejects_incomplete_or_invalid_verdicts(text):
    assert parse_verdict(text) is None


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir):
    from tunelab.serve.app import ServerThread, ServeSettings, create_app, load_engine

    settings = ServeSettings(model_name="tiny-judge", api_key="judge-key", default_max_tokens=24, batch_window=0.0)
    engine = load_engine(tiny_model_dir, settings)
    with ServerThread(create_app(engine, settings)) as url:
        yield url, engine
    engine.close()


def test_judge_against_a_real_server_counts_unparseable_verdicts_and_caches(tiny_server, tmp_path, monkeypatch):
    url, engine = tiny_server
    monkeypatch.setenv("JUDGE_KEY_FOR_TEST", "judge-key")
    settings = RubricSettings(
        base_url=url,
        model="tiny-judge",
        api_key_env="JUDGE_KEY_FOR_TEST",
        max_tokens=24,
        cache_path=tmp_path / "cache.sqlite",
    )
    judge = RubricJudge(settings)
    requests_before = engine.stats()["requests"]
    summary = judge.judge_many(ITEMS).summary()
    # A random 2-layer model cannot write the rubric JSON: every verdict is honestly unparseable.
    assert summary["n"] == 3 and summary["failed"] == 0
    assert summary["unparseable"] == 3 and summary["parsed"] == 0 and summary["cached"] == 0
    assert engine.stats()["requests"] == requests_before + 3
    judge.close()

    again = RubricJudge(settings)  # a new process would read the same file
    report = again.judge_many(ITEMS)
    assert report.summary()["cached"] == 3
    assert engine.stats()["requests"] == requests_before + 3  # nothing was asked twice
    assert all(v.raw for v in report.verdicts)
    other = RubricJudge(dataclasses.replace(settings, model="tiny-judge-v2"))
    # Another model name is another cache key: it asks the server, which does not serve that name.
    refused = other.judge(ITEMS[0]["context"], ITEMS[0]["prediction"], ITEMS[0]["reference"])
    assert refused.error is not None and "NotFoundError" in refused.error and not refused.cached
    again.close()
    other.close()


def test_missing_api_key_variable_is_a_clear_error(tiny_server, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE is not set"):
        RubricJudge(RubricSettings(base_url=tiny_server[0], model="tiny-judge", api_key_env="NOT_SET_ANYWHERE"))


def flaky_judge_app(script: list[str]):
    """A real OpenAI-style endpoint that answers by `script`: 'slow', '503', then 'ok' for the rest."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    app.state.calls = 0

    @app.post("/v1/chat/completions")
    async def complete() -> JSONResponse:
        step = script[app.state.calls] if app.state.calls < len(script) else "ok"
        app.state.calls += 1
        if step == "slow":
            await asyncio.sleep(1.5)
        if step == "503":
            return JSONResponse(
                {"error": {"message": "busy", "type": "server_error", "param": None, "code": None}}, 503
            )
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": GOOD}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    return app


def test_judge_retries_after_a_timeout_and_a_503(tmp_path):
    from tunelab.serve.app import ServerThread

    app = flaky_judge_app(["slow", "503"])
    with ServerThread(app) as url:
        judge = RubricJudge(RubricSettings(base_url=url, model="m", timeout=0.3, retries=3, backoff=0.01))
        report = judge.judge_many(ITEMS[:1])
    assert app.state.calls == 3
    assert report.retries == 2
    assert report.verdicts[0].scores == {"correctness": 4, "appropriateness": 5, "style": 3}


def test_judge_gives_up_after_its_retries_and_reports_a_failure(tmp_path):
    from tunelab.serve.app import ServerThread

    app = flaky_judge_app(["503"] * 10)
    with ServerThread(app) as url:
        judge = RubricJudge(
            RubricSettings(base_url=url, model="m", retries=2, backoff=0.01, cache_path=tmp_path / "c.sqlite")
        )
        summary = judge.judge_many(ITEMS[:1]).summary()
        judge.close()
    assert app.state.calls == 3
    assert summary["failed"] == 1 and summary["unparseable"] == 0 and summary["retries"] == 2
    # A failure is not cached: the next run asks again.
    with ServerThread(flaky_judge_app([])) as url:
        judge = RubricJudge(RubricSettings(base_url=url, model="m", cache_path=tmp_path / "c.sqlite"))
        assert judge.judge_many(ITEMS[:1]).summary()["parsed"] == 1
        judge.close()

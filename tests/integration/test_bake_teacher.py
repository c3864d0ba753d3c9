"""Teacher targets for bake: sample until k pass, repair counted, resume from saved samples, the
endpoint teacher against real servers on 127.0.0.1, and the config errors."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request  # at module level: the endpoint's annotations are resolved from here
from fastapi.responses import JSONResponse

from tunelab.config import ConfigError, load
from tunelab.prompts.rules import CheckItem, parse_prompt
from tunelab.train import bake_teacher

SPEC = parse_prompt(
    {
        "prompt": "You are a barista. End with a question.",
        "rules": [
            {"kind": "max_sentences", "n": 2},
            {"kind": "ends_with_question", "closing_questions": ["Anything else?"]},
            {"kind": "language", "expected": "en"},
        ],
    }
)
QUESTIONS = [(f"q{i}", f"Question {i}: a latte?", CheckItem(question=f"Question {i}: a latte?")) for i in range(3)]


def scripted_app(replies_by_question: dict[str, list[str]]):
    """A real OpenAI-style endpoint: for the question in the last user turn, the next scripted reply."""
    app = FastAPI()
    app.state.calls = []

    @app.post("/v1/chat/completions")
    async def complete(request: Request) -> JSONResponse:
        body = await request.json()
        question = body["messages"][-1]["content"]
        app.state.calls.append((question, body["messages"][0]["role"], body["temperature"]))
        script = replies_by_question[question]
        text = script[min(sum(q == question for q, _, _ in app.state.calls) - 1, len(script) - 1)]
        return JSONResponse(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    return app


def config(tmp_path, **bake):
    return load(
        data={
            "data": {"train": "q.jsonl"},
            "bake": {"teacher": {"base_url": "http://127.0.0.1:1/v1", "model": "m"}, "targets": ["teacher"], **bake},
            "output": {"dir": str(tmp_path)},
        }
    )


SCRIPT = {
    "Question 0: a latte?": ["Sure. Anything else?"] * 8,  # passes at once: k=2 after one round of 2
    "Question 1: a latte?": ["Конечно."] * 3
    + ["One latte. Hot?", "Okay.", "Okay."],  # Russian is not repairable; passes late
    "Question 2: a latte?": ["Конечно."] * 8,  # never passes: the budget is spent
}


def run_endpoint(tmp_path, url, **bake):
    cfg = config(tmp_path, **bake)
    cfg.bake.teacher.base_url = url
    teacher = bake_teacher.EndpointTeacher(cfg.bake.teacher, cfg, tmp_path / "cache.sqlite")
    samples, report = bake_teacher.sample_targets(teacher, SPEC, QUESTIONS, cfg, tmp_path / "samples.jsonl")
    teacher.close()
    return samples, report, teacher


def test_sampling_stops_at_k_passing_or_at_the_budget_and_reports_per_rule(tmp_path):
    from tunelab.serve.app import ServerThread

    app = scripted_app(SCRIPT)
    with ServerThread(app) as url:
        samples, report, teacher = run_endpoint(
            tmp_path, url, samples_per_question=2, passing_per_question=2, max_samples_per_question=6
        )
    drawn = {q: sum(s["id"] == q for s in samples) for q, _, _ in QUESTIONS}
    assert drawn == {
        "q0": 2,
        "q1": 6,
        "q2": 6,
    }  # q1: rounds of 2 until k=2 usable (one raw pass at 4, one repaired "Okay.")
    assert all(
        role == "system" and t == 0.8 for _, role, t in app.state.calls
    )  # sampled WITH the prompt, at bake.temperature
    assert report["sampled"] == 14 and report["passed"] == 2 + 1 and report["questions"] == 3
    assert report["questions_without_passing_reply"] == {"before_repair": 1, "after_repair": 1}
    assert report["repairs"] == {"question_added": 2}  # both "Okay." replies: the list's closing question appended
    assert report["pass_rate_by_rule"]["before_repair"]["language"] == pytest.approx(5 / 14)  # q0 twice, q1 three times
    assert report["pass_rate_by_rule"]["after_repair"]["ends_with_question"] == pytest.approx(5 / 14)
    assert report["not_repaired"] == {"not repairable": 9}
    assert {p["target"] for p in report["repaired_pairs"]} == {"Okay. Anything else?"}
    kept = bake_teacher.choose_targets(samples, 2)
    assert sorted((s["id"], s["target"]) for s in kept) == [
        ("q0", "Sure. Anything else?"),
        ("q0", "Sure. Anything else?"),
        ("q1", "Okay. Anything else?"),
        ("q1", "One latte. Hot?"),
    ]
    assert kept[-1]["passed"] is False or kept[-2]["passed"]  # the unrepaired pass comes first within a question
    assert teacher.requested == 14 and teacher.cached == 0


def test_without_repair_and_without_k_one_round_and_raw_passes_only(tmp_path):
    from tunelab.serve.app import ServerThread

    with ServerThread(scripted_app(SCRIPT)) as url:
        samples, report, _ = run_endpoint(
            tmp_path, url, samples_per_question=2, passing_per_question=None, repair=False
        )
    assert report["sampled"] == 6 and report["repaired"] == 0 and report["usable"] == 2
    assert report["pass_rate_all_rules"]["before_repair"] == report["pass_rate_all_rules"]["after_repair"]


def test_sampling_resumes_from_saved_samples_and_the_cache_answers_a_rerun(tmp_path):
    from tunelab.serve.app import ServerThread

    app = scripted_app(SCRIPT)
    with ServerThread(app) as url:
        run_endpoint(tmp_path, url, samples_per_question=2, passing_per_question=2, max_samples_per_question=6)
        calls = len(app.state.calls)
        lines = (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()
        # a bake killed while writing: the first question's samples saved, the next line half written
        (tmp_path / "samples.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:20], encoding="utf-8")
        (tmp_path / "cache.sqlite").unlink()
    app = scripted_app(SCRIPT)  # a fresh script, so the resumed questions get the same replies as before
    with ServerThread(app) as url:
        samples, report, teacher = run_endpoint(
            tmp_path, url, samples_per_question=2, passing_per_question=2, max_samples_per_question=6
        )
        assert report["resumed_questions"] == 1 and report["broken_saved_lines"] == 1
        assert len(app.state.calls) == 12 and calls == 14  # q1 and q2 again, q0 not
        assert report["sampled"] == 14
        rows = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text(encoding="utf-8").splitlines()[2:]]
        assert len(rows) == 12 and set(rows[0]) == set(bake_teacher.SAVED)
        (tmp_path / "samples.jsonl").unlink()
        _, again, teacher = run_endpoint(
            tmp_path, url, samples_per_question=2, passing_per_question=2, max_samples_per_question=6
        )
        assert (
            teacher.cached == 12 and teacher.requested == 2 and again["sampled"] == 14
        )  # keyed by (model, prompt, sample index); q0 was asked before the cache was deleted


def test_endpoint_teacher_against_a_real_tunelab_server(tmp_path, tiny_model_dir, monkeypatch):
    from tunelab.serve.app import ServerThread, ServeSettings, create_app, load_engine

    settings = ServeSettings(model_name="tiny-teacher", api_key="teacher-key", default_max_tokens=8, batch_window=0.0)
    engine = load_engine(tiny_model_dir, settings)
    monkeypatch.setenv("TEACHER_KEY_FOR_TEST", "teacher-key")
    try:
        with ServerThread(create_app(engine, settings)) as url:
            cfg = load(
                data={
                    "data": {"train": "q.jsonl"},
                    "bake": {
                        "targets": ["teacher"],
                        "max_new_tokens": 8,
                        "samples_per_question": 2,
                        "passing_per_question": None,
                        "teacher": {"base_url": url, "model": "tiny-teacher", "api_key_env": "TEACHER_KEY_FOR_TEST"},
                    },
                }
            )
            teacher = bake_teacher.EndpointTeacher(cfg.bake.teacher, cfg, tmp_path / "cache.sqlite")
            samples, report = bake_teacher.sample_targets(teacher, SPEC, QUESTIONS[:2], cfg, tmp_path / "samples.jsonl")
            teacher.close()
            assert report["sampled"] == 4 and engine.stats()["requests"] == 4 and teacher.requested == 4
            assert all(isinstance(s["reply"], str) for s in samples)
            # the random tiny model's replies pass or not, honestly counted: every sample is a target or a drop
            assert report["usable"] + sum(report["dropped_by_reason"].values()) == report["sampled"]
            teacher = bake_teacher.EndpointTeacher(cfg.bake.teacher, cfg, tmp_path / "cache.sqlite")
            bake_teacher.sample_targets(teacher, SPEC, QUESTIONS[:2], cfg, tmp_path / "again.jsonl")
            assert teacher.cached == 4 and engine.stats()["requests"] == 4  # the cache answered
            teacher.close()
    finally:
        engine.close()


def test_bake_config_errors():
    base = {"data": {"train": "q.jsonl"}}
    with pytest.raises(ConfigError, match="distill needs the teacher's logits"):
        load(
            data={
                **base,
                "bake": {
                    "targets": ["teacher", "distill"],
                    "teacher": {"base_url": "http://127.0.0.1:9/v1", "model": "m"},
                },
            }
        )
    with pytest.raises(ConfigError, match="paraphrases"):
        load(data={**base, "bake": {"paraphrases": 2, "teacher": {"base_url": "http://127.0.0.1:9/v1", "model": "m"}}})
    with pytest.raises(ConfigError, match="max_samples_per_question"):
        load(data={**base, "bake": {"passing_per_question": 4, "max_samples_per_question": 3}})
    with pytest.raises(ConfigError, match="bake.teacher.timeot"):
        load(data={**base, "bake": {"teacher": {"base_url": "u", "model": "m", "timeot": 3}}})
    assert load(data={**base, "bake": {"teacher": "smollm2-135m"}}).bake.teacher == "smollm2-135m"

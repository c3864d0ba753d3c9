"""The studio's Evaluate view: a held-out file run through the one behaviour judge for a finished
job, base beside tuned, in the background; its rates equal `tunelab eval`'s (run_eval) on the same
file and settings, in the API, in the saved result file and on the page (real headless Chromium);
and the route's refusals, each naming the field."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tunelab.eval.runner import run_eval
from tunelab.generation.replies import GenerationSettings
from tunelab.studio.app import Studio, serve_in_thread

CHROMIUM = "/usr/bin/chromium"  # the system's, as in test_studio_browser.py
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
KEY = "eval-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# References of several acts (ask, inform, closing, steer), so the per-act rates are not all alike.
REPLIES = [
    ("I'd like a latte.", "What size would you like?"),
    ("What are your opening hours?", "We are open from 8 to 6 every day."),
    ("That's all, thanks.", "Your order is placed. Goodbye!"),
    ("Do you sell pizza?", "Sorry, we don't have that. Can I get you a coffee?"),
]


def held_out(path: Path, copies: int = 1) -> Path:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"{user} ({i})" if i else user},
                {"role": "assistant", "content": reply},
            ]
        }
        for i in range(copies)
        for user, reply in REPLIES
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def talking_model(tiny: str, out: Path) -> str:
    """The tiny model with the (tied) embeddings of its stop tokens and blank tokens zeroed: with
    random weights it ends every reply at once or says only newlines, and empty replies would make
    every rate 0 on both sides."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.generation.tokens import stop_token_ids

    model, tokenizer = AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)
    blank = [i for token, i in tokenizer.get_vocab().items() if not tokenizer.convert_tokens_to_string([token]).strip()]
    with torch.no_grad():
        model.get_input_embeddings().weight[[*stop_token_ids(tokenizer, model), *blank]] = 0
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


def upload(url: str, name: str, content: bytes) -> dict:
    answer = httpx.post(f"{url}/files", headers=AUTH, files={"file": (name, content)}, data={"purpose": "fine-tune"})
    assert answer.status_code == 200, answer.text
    file_id = answer.json()["id"]
    deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
    while (row := httpx.get(f"{url}/files/{file_id}", headers=AUTH).json())["status"] == "uploaded":
        assert time.monotonic() < deadline, f"{name} stayed uploaded"
        time.sleep(0.1)
    return row


def wait_for(url: str, path: str, done: tuple[str, ...], limit: float = 300) -> dict:
    deadline = time.monotonic() + limit  # a hang guard, not a timing assertion
    while (obj := httpx.get(f"{url}{path}", headers=AUTH).json())["status"] not in done:
        assert time.monotonic() < deadline, f"{path} stayed {obj['status']}"
        time.sleep(0.3)
    return obj


def test_the_evaluation_route_refuses_what_it_cannot_run_naming_the_field(tmp_path, tiny_model_dir):
    studio = Studio(tmp_path / "s", api_key=KEY, base_models=[tiny_model_dir], tokenizer_model=tiny_model_dir)
    # Not started: nothing runs, so a created job stays validating and an evaluation stays queued.
    with serve_in_thread(studio) as url:
        data = upload(url, "heldout.jsonl", held_out(tmp_path / "heldout.jsonl").read_bytes())
        prompt = upload(url, "prompt.yaml", b"system: Be brief.\n")
        job = httpx.post(
            f"{url}/fine_tuning/jobs", headers=AUTH, json={"model": tiny_model_dir, "training_file": data["id"]}
        ).json()

        def create(body: dict) -> httpx.Response:
            return httpx.post(f"{url}/studio/evaluations", headers=AUTH, json=body)

        for body, status, param in (
            ({"file": "file-nope", "models": [tiny_model_dir]}, 404, "file"),
            ({"file": prompt["id"], "models": [tiny_model_dir]}, 409, "file"),
            ({"file": data["id"]}, 400, "models"),
            ({"file": data["id"], "models": [tiny_model_dir], "fine_tuning_job_id": job["id"]}, 400, None),
            ({"file": data["id"], "fine_tuning_job_id": "ftjob-nope"}, 404, "fine_tuning_job_id"),
            ({"file": data["id"], "fine_tuning_job_id": job["id"]}, 409, "fine_tuning_job_id"),
            ({"file": data["id"], "models": ["no-such-model"]}, 404, "models"),
            ({"file": data["id"], "models": ["a", "b", "c"]}, 400, "models"),
            ({"file": data["id"], "models": [tiny_model_dir], "limit": 0}, 400, "limit"),
            ({"file": data["id"], "models": [tiny_model_dir], "temperature": 1}, 400, "temperature"),
        ):
            answer = create(body)
            error = answer.json()["error"]
            assert answer.status_code == status, (body, answer.text)
            assert param is None or error["param"] == param, (body, error)
            assert "Traceback" not in error["message"] and str(tmp_path) not in error["message"]

        queued = create({"file": data["id"], "models": [tiny_model_dir], "limit": 2}).json()
        assert queued["status"] == "queued" and queued["status_text"] == "queued: next to run"
        assert queued["models"] == [{"label": "A", "model": tiny_model_dir}] and queued["file"]["filename"]
        assert str(tmp_path / "s") not in json.dumps(queued)  # the stored path stays on the server
        listed = httpx.get(f"{url}/studio/evaluations", headers=AUTH).json()["data"]
        assert [e["id"] for e in listed] == [queued["id"]]
        httpx.post(f"{url}/fine_tuning/jobs/{job['id']}/cancel", headers=AUTH)  # it trains on the same file
        busy = httpx.delete(f"{url}/files/{data['id']}", headers=AUTH)
        assert busy.status_code == 409 and queued["id"] in busy.json()["error"]["message"]
        cancel = f"{url}/studio/evaluations/{queued['id']}/cancel"
        assert httpx.post(cancel, headers=AUTH).json()["status"] == "cancelled"
        assert httpx.post(cancel, headers=AUTH).status_code == 409
        assert httpx.get(f"{url}/studio/evaluations/eval-nope", headers=AUTH).status_code == 404
    studio.close()


def test_an_evaluation_that_cannot_run_fails_saying_why_in_the_users_words(tmp_path, tiny_model_dir):
    long = {"messages": [{"role": "user", "content": "coffee " * 1200}, {"role": "assistant", "content": "Sure."}]}
    studio = Studio(tmp_path / "s", api_key=KEY, base_models=[tiny_model_dir], tokenizer_model=tiny_model_dir).start()
    with serve_in_thread(studio) as url:
        data = upload(url, "long.jsonl", (json.dumps(long) + "\n").encode())
        created = httpx.post(
            f"{url}/studio/evaluations", headers=AUTH, json={"file": data["id"], "models": [tiny_model_dir]}
        )
        failed = wait_for(url, f"/studio/evaluations/{created.json()['id']}", ("succeeded", "failed", "cancelled"))
    studio.close()
    message = failed["error"]["message"]
    assert failed["status"] == "failed" and failed["result_file"] is None and "result" not in failed
    # `tunelab eval`'s own error, naming the uploaded file's name, never the stored path.
    assert "long.jsonl" in message and "1024 positions" in message and str(tmp_path) not in message


@pytest.mark.slow
def test_a_finished_job_evaluated_on_the_page_shows_the_rates_of_tunelab_eval(tmp_path, tiny_model_dir):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian package chromium is not installed (make deps)")
    heldout = held_out(tmp_path / "heldout.jsonl")
    train = held_out(tmp_path / "train.jsonl", copies=4)
    talker = talking_model(tiny_model_dir, tmp_path / "talker")
    studio = Studio(tmp_path / "s", api_key=KEY, base_models=[talker], tokenizer_model=talker).start()
    errors: list[str] = []
    with serve_in_thread(studio) as url, sync_api.sync_playwright() as pw:
        base = url.removesuffix("/v1")
        training = upload(url, "train.jsonl", train.read_bytes())
        data = upload(url, "heldout.jsonl", heldout.read_bytes())
        config = {"train": {"max_steps": 2, "logging_steps": 1, "eval_steps": 2, "save_steps": 2, "threads": 1}}
        job = httpx.post(
            f"{url}/fine_tuning/jobs",
            headers=AUTH,
            json={"model": talker, "training_file": training["id"], "tunelab": {"config": config}},
        )
        assert job.status_code == 200, job.text
        job = wait_for(url, f"/fine_tuning/jobs/{job.json()['id']}", ("succeeded", "failed", "cancelled"))
        assert job["status"] == "succeeded", job["error"]

        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/login?token={KEY}")
        page.goto(f"{base}/#evaluate/{job['id']}")  # the job panel's "evaluate" link
        page.wait_for_selector(f'#eval-job option[value="{job["id"]}"]', state="attached")
        assert page.input_value("#eval-job") == job["id"]
        page.select_option("#eval-file", data["id"])
        page.fill("#eval-form input[name=max_new_tokens]", "12")
        page.click("#eval-form button")
        page.wait_for_url(f"{base}/#evaluate/eval-*")
        page.wait_for_selector("#eval-rates tr[data-act=overall]", timeout=300000)
        shown = {
            (cell.get_attribute("data-side"), act, what): cell.get_attribute("data-rate")
            for act in ["overall", "ask", "inform", "closing", "steer"]
            for what in ("appropriateness", "correctness")
            for cell in page.locator(f"#eval-rates tr[data-act={act}] td.{what}").all()
        }
        assert page.locator("#eval-confusion table.confusion").count() == 2
        assert page.get_attribute("#eval-verdicts", "data-shown") == str(len(REPLIES))
        eval_id = page.url.rsplit("/", 1)[1]
        browser.close()

        evaluation = httpx.get(f"{url}/studio/evaluations/{eval_id}", headers=AUTH).json()
        job = httpx.get(f"{url}/fine_tuning/jobs/{job['id']}", headers=AUTH).json()
        saved = httpx.get(f"{url}/files/{evaluation['result_file']}/content", headers=AUTH).json()

    studio.close()
    assert errors == []
    assert job["result_files"] == [evaluation["result_file"]] and saved == evaluation["result"]
    # `tunelab eval` on the same file and settings, for the base and for the tuned run directory.
    settings = GenerationSettings(max_new_tokens=12, batch_size=16)
    for side, model in enumerate((talker, job["tunelab"]["run_dir"])):
        expected = run_eval(
            model, heldout, out_dir=tmp_path / f"eval-{side}", settings=settings, semantic=False, progress=False
        ).scores["behaviour"]
        got = saved["models"][side]
        assert got["confusion"] == expected["confusion"]
        for what in ("appropriateness", "correctness"):
            assert got[what]["rate"] == expected[what]
            assert float(shown[(str(side), "overall", what)]) == expected[what]
            for act, per in expected["per_act"].items():
                if per["n"]:
                    assert got["per_act"][act][what]["rate"] == per[what]
                    assert float(shown[(str(side), act, what)]) == per[what]
        assert [v["replies"][side]["prediction"] for v in saved["verdicts"]] == [
            r["prediction"] for r in rundir_rows(tmp_path / f"eval-{side}")
        ]


def rundir_rows(folder: Path) -> list[dict]:
    from tunelab import rundir

    return rundir.read_jsonl(folder / rundir.PREDICTIONS)

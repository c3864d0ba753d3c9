"""The studio's pages in real headless Chromium (the system's /usr/bin/chromium, driven by
Playwright): log in -> upload -> loss mask -> new job (behaviour measured during training) -> the
live curve moves -> a reload keeps it and the behaviour rates -> the playground answers with the
ft: model beside its base; no console errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api")

from tunelab.serve.app import free_socket  # noqa: E402
from tunelab.studio.app import Studio, serve_in_thread  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
YAML = (
    "train:\n  max_steps: 100\n  logging_steps: 1\n  eval_steps: 50\n  save_steps: 50\n  threads: 1\n  batch_size: 2\n"
)


@pytest.mark.slow
def test_upload_job_live_curve_reload_playground(tmp_path, tiny_model_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian package chromium is not installed (make deps)")
    data = tmp_path / "chats.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "messages": [
                        {"role": "system", "content": "Be brief."},
                        {"role": "user", "content": f"Count to {i}"},
                        {"role": "assistant", "content": " ".join(map(str, range(1, i + 2)))},
                    ]
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    studio = Studio(tmp_path / "studio", api_key="k", base_models=[tiny_model_dir]).start()
    errors: list[str] = []
    with serve_in_thread(studio) as url, sync_api.sync_playwright() as pw:
        base = url.removesuffix("/v1")
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/")
        assert page.url.endswith("/login")  # the key protects the UI too
        page.fill("input[name=key]", "k")
        page.click("button")
        page.wait_for_url(base + "/")

        page.set_input_files("#upload-file", str(data))
        page.click("#upload-form button")
        page.wait_for_selector("#mask .t", timeout=60000)  # validated; the loss mask is highlighted
        assert "read 20 = kept 20 + rejected 0" in page.inner_text("#file-detail")
        assert "Count to" in page.inner_text("#mask .c >> nth=0") or page.locator("#mask .c").count() > 0

        page.goto(base + "/#new")
        page.wait_for_selector("#job-form select[name=training_file] option", state="attached")
        page.fill("textarea[name=yaml]", YAML)
        # behaviour during training, on the run's own held-out tenth (2 conversations), picks the checkpoint
        page.check("input[name=behaviour_eval]")
        page.fill("input[name=behaviour_contexts]", "2")
        page.select_option("select[name=best_metric]", "behaviour_appropriate")
        page.click("#job-form button")
        page.wait_for_url("**/#jobs/ftjob-*")
        job_url = page.url
        curve = page.locator("#curve")
        job_id = job_url.rsplit("/", 1)[1]
        # Pause the job once it has logged a step, so the curve is certainly seen mid-run however
        # fast this machine trains; then let it go on and watch the curve move.
        deadline = time.monotonic() + 300
        while not (job := studio.jobs.get(job_id))["tunelab"]["step"] and time.monotonic() < deadline:
            time.sleep(0.1)
        os.killpg(job["tunelab"]["pid"], signal.SIGSTOP)
        page.wait_for_function("Number(document.querySelector('#curve').dataset.points) >= 1", timeout=120000)
        first = int(curve.get_attribute("data-points"))
        os.killpg(job["tunelab"]["pid"], signal.SIGCONT)
        page.wait_for_function(f"Number(document.querySelector('#curve').dataset.points) > {first}", timeout=300000)
        moved = int(curve.get_attribute("data-points"))

        page.reload()
        page.wait_for_function(f"Number(document.querySelector('#curve').dataset.points) >= {moved}", timeout=60000)
        assert page.url == job_url
        page.wait_for_selector("#job-state.succeeded", timeout=180000)
        assert page.locator("#curve polyline").count() == 2  # training and validation loss
        # the behaviour rates of steps 50 and 100 beside the loss, replayed after the reload
        page.wait_for_function("Number(document.querySelector('#behaviour-curve').dataset.points) >= 4")
        assert page.is_visible("#behaviour-curve") and page.locator("#behaviour-curve polyline").count() == 2
        config = (Path(studio.jobs.row(job_id)["run_dir"]).parent / "config.yaml").read_text()
        assert "best_metric: behaviour_appropriate" in config and "contexts: 2" in config
        # One status text in both views: the table row and the job's panel say the same.
        row = page.inner_text(f'#jobs tr[data-id="{job_id}"] td.job-state')
        assert row.endswith("succeeded after 100 steps") and page.inner_text("#job-progress").startswith(
            "succeeded after 100 steps"
        )
        if os.environ.get("TUNELAB_SCREENSHOT"):
            page.screenshot(path=os.environ["TUNELAB_SCREENSHOT"])

        page.goto(base + "/#playground")
        page.wait_for_function("document.querySelector('#pg-model').value.startsWith('ft:')")
        page.click("#pg-send")
        page.wait_for_function(
            "['#pg-a', '#pg-b'].every(s => { const t = document.querySelector(s).textContent; return t && t !== '…'; })",
            timeout=120000,
        )
        assert not page.inner_text("#pg-a").startswith("error") and not page.inner_text("#pg-b").startswith("error")
        assert page.inner_text("#pg-b-name") == tiny_model_dir
        browser.close()
    studio.close()
    assert errors == []


def start_cli_studio(folder: Path, base: str) -> tuple[subprocess.Popen, str]:
    """`tunelab studio` as a user starts it, without --api-key: (the process, the login URL it printed)."""
    with free_socket() as sock:
        port = sock.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    cmd = [
        sys.executable,
        "-m",
        "tunelab.cli",
        "studio",
        "--dir",
        str(folder),
        "--port",
        str(port),
        "--base-model",
        base,
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in proc.stdout:  # ends when the process does: no sleep, no timed wait
        lines.append(line)
        if found := re.search(r"open in a browser: (\S+)", line):
            return proc, found.group(1)
    raise AssertionError("tunelab studio printed no login URL:\n" + "".join(lines))


FORGED = """<form method="post" action="{action}" enctype="multipart/form-data">
<input name="purpose" value="fine-tune"><button>send</button></form>"""


def test_login_url_then_a_cross_site_post_is_refused(tmp_path, tiny_model_dir):
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian package chromium is not installed (make deps)")
    proc, login = start_cli_studio(tmp_path / "studio", tiny_model_dir)
    base = login.split("/login")[0]
    key = (tmp_path / "studio" / "api_key").read_text().strip()
    try:
        assert login == f"{base}/login?token={key}"
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.goto(base + "/")
            assert page.url == base + "/login"  # refused without the key
            assert page.evaluate("fetch('/v1/files').then(r => r.status)") == 401
            page.goto(login)
            assert page.url == base + "/"  # the token set the cookie and went away from the address bar
            page.wait_for_selector("#upload-form")
            assert page.evaluate("fetch('/v1/files').then(r => r.status)") == 200

            # Another site's page submits a form to the studio, in the same logged-in browser.
            page.route(
                "http://evil.example/",
                lambda route: route.fulfill(body=FORGED.format(action=f"{base}/v1/files"), content_type="text/html"),
            )
            page.goto("http://evil.example/")
            with page.expect_navigation() as sent:
                page.click("button")
            answer = sent.value
            assert answer.status == 403 and "cross_site_request" in answer.text()
            browser.close()
        files = httpx.get(f"{base}/v1/files", headers={"Authorization": f"Bearer {key}"}).json()["data"]
        assert files == []  # nothing was uploaded
    finally:
        proc.terminate()
        proc.wait(timeout=30)

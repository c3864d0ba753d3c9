"""The studio's pages in real headless Chromium (the system's /usr/bin/chromium, driven by
Playwright): log in -> upload -> loss mask -> new job -> the live curve moves -> a reload keeps it
-> the playground answers with the ft: model beside its base; no console errors."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

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

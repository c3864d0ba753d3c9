"""Screenshots of the studio on a real SmolLM2 job, with behaviour on the page.

Starts `tunelab studio` on 127.0.0.1, uploads 120 generated cafe dialogues and 40 held-out ones,
fine-tunes SmolLM2-135M for one epoch with behaviour evaluated during training, evaluates the
finished job on the held-out file (base beside tuned), and saves PNGs of the job and Evaluate pages.

    python bench/studio_screenshots.py --out docs     # Debian's chromium and playwright (make install-dev)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tunelab.data.synth import cafe


def wait(client: httpx.Client, path: str, done: tuple[str, ...], limit: float = 3600) -> dict:
    start = time.time()
    while time.time() - start < limit:
        body = client.get(path).json()
        if body.get("status") in done:
            return body
        time.sleep(2)
    raise TimeoutError(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("runs/studio-shots"), help="folder for the PNGs")
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    state = Path(tempfile.mkdtemp(prefix="studio-shots-"))
    key = secrets.token_urlsafe(16)
    base = f"http://127.0.0.1:{args.port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunelab.cli",
            "studio",
            "--dir",
            str(state),
            "--port",
            str(args.port),
            "--api-key",
            key,
        ],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        for _ in range(120):
            try:
                if client.get("/v1/models").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        files = {}
        for name, convs in (
            ("cafe-train.jsonl", cafe.generate(120, seed=0)),
            ("cafe-heldout.jsonl", cafe.generate(40, seed=1000003, prefix="held")),
        ):
            data = "".join(json.dumps(c.to_openai()) + "\n" for c in convs).encode()
            r = client.post("/v1/files", files={"file": (name, data)}, data={"purpose": "fine-tune"})
            r.raise_for_status()
            files[name] = wait(client, f"/v1/files/{r.json()['id']}", ("processed", "error"))
        job = client.post(
            "/v1/fine_tuning/jobs",
            json={
                "model": "smollm2-135m",
                "training_file": files["cafe-train.jsonl"]["id"],
                "hyperparameters": {"n_epochs": 1, "batch_size": 4},
                "tunelab": {"behaviour_eval": {"contexts": 24, "max_new_tokens": 48, "eval_steps": 10}},
            },
        )
        job.raise_for_status()
        job = wait(client, f"/v1/fine_tuning/jobs/{job.json()['id']}", ("succeeded", "failed", "cancelled"))
        print("job", job["id"], job["status"], flush=True)
        ev = client.post(
            "/v1/studio/evaluations",
            json={"file": files["cafe-heldout.jsonl"]["id"], "fine_tuning_job_id": job["id"], "max_new_tokens": 64},
        )
        ev.raise_for_status()
        ev = wait(client, f"/v1/studio/evaluations/{ev.json()['id']}", ("succeeded", "failed", "cancelled"))
        print("evaluation", ev["id"], ev["status"], flush=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/login?token={key}")
            page.goto(f"{base}/#jobs/{job['id']}")
            page.wait_for_timeout(3000)
            page.screenshot(path=str(args.out / "studio.png"), full_page=True)
            page.goto(f"{base}/#evaluate/{ev['id']}")
            page.wait_for_timeout(3000)
            # The verdicts run to hundreds of rows: the first screen shows the rates and the matrices.
            page.set_viewport_size({"width": 1400, "height": 1350})
            page.screenshot(path=str(args.out / "studio-evaluate.png"))
            page.goto(f"{base}/#data")
            page.wait_for_timeout(2000)
            page.screenshot(path=str(args.out / "studio-data.png"), full_page=True)
            browser.close()
        print("screenshots in", args.out)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()

"""The HTML report: built from run-dir files only, self-contained, and drawn by a real headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tunelab import rundir

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LABELS = ["ask", "confirm", "inform", "steer", "closing", "tool_call", "none"]


def make_run_dir(root: Path, name: str = "run") -> Path:
    """A run directory with every file the report reads, as the stages write them."""
    run = root / name
    run.mkdir(parents=True)
    rundir.write_text(
        run / rundir.CONFIG,
        yaml.safe_dump(
            {
                "model": {"name": "smollm2-135m", "adapter": "lora", "lora": {"r": 8}},
                "data": {"train": "t.jsonl", "max_length": 384},
                "train": {"learning_rate": 1e-3},
                "run_name": "cafe-lora",
            }
        ),
    )
    stats = {
        "examples": 40,
        "tokens": {"mean": 120.5, "median": 118, "min": 80, "max": 200},
        "target_tokens": {"mean": 30.1, "median": 29, "min": 10, "max": 60},
        "tokens_per_epoch": 4820,
        "target_tokens_per_epoch": 1204,
        "target_share": 0.25,
        "histogram_tokens": [
            {"from": 80, "to": 119, "count": 22},
            {"from": 120, "to": 159, "count": 14},
            {"from": 160, "to": 200, "count": 4},
        ],
    }
    rundir.write_json(
        run / rundir.DATA_REPORT,
        {
            "files": [{"path": "t.jsonl", "format": "openai", "read": 45, "kept": 44, "rejected": 1}],
            "duplicates_removed": 2,
            "too_long_dropped": {"train": 0, "val": 0},
            "truncated_history": {"train": 1, "val": 0},
            "max_length": 384,
            "train": stats,
            "val": {**stats, "examples": 4},
        },
    )
    for step in range(1, 21):
        rundir.append_jsonl(
            run / rundir.METRICS,
            {"step": step, "epoch": step / 20, "split": "train", "name": "loss", "value": 3.0 / step**0.5},
        )
        rundir.append_jsonl(
            run / rundir.METRICS,
            {
                "step": step,
                "epoch": step / 20,
                "split": "train",
                "name": "learning_rate",
                "value": 1e-3 * (1 - step / 21),
            },
        )
        if step % 5 == 0:
            rundir.append_jsonl(
                run / rundir.METRICS,
                {"step": step, "epoch": step / 20, "split": "val", "name": "loss", "value": 2.5 / step**0.3},
            )
    rundir.write_json(
        run / rundir.SUMMARY,
        {
            "steps": 20,
            "final_val_loss": 1.02,
            "train_examples": 40,
            "val_examples": 4,
            "best_checkpoint": "checkpoints/checkpoint-20",
        },
    )
    matrix = [
        [5 if i == j else (1 if j == len(LABELS) - 1 else 0) for j in range(len(LABELS))] for i in range(len(LABELS))
    ]
    rundir.write_json(
        run / rundir.SCORES,
        {
            "model": str(run),
            "data": "val.jsonl",
            "n": 42,
            "metrics": {"bleu": 12.3, "rougeL": 0.41, "meteor": 0.33},
            "behaviour": {
                "appropriateness": 0.71,
                "correctness": 0.64,
                "per_act": {"ask": {"n": 6, "appropriateness": 0.83, "correctness": 0.5}},
                "confusion": {"labels": LABELS, "rows": "reference", "columns": "prediction", "matrix": matrix},
            },
        },
    )
    rundir.write_jsonl(
        run / "before_after.jsonl",
        [
            {
                "context": [{"role": "user", "content": "A latte please <b>now</b>"}],
                "expected": {"act": "ask", "slot": "size"},
                "base": "Sure! Here's a latte.",
                "tuned": "What size would you like?",
                "base_right": False,
                "tuned_right": True,
            },
            {
                "context": "user: a large iced tea",
                "expected": "confirm",
                "base": "ok",
                "tuned": "One large iced tea, right?",
            },
        ],
    )
    return run


def make_sweep_dir(root: Path) -> Path:
    sweep = root / "sweep"
    best = make_run_dir(sweep / "trials", "002")
    trials = []
    for n, (lr, adapter, value, state) in enumerate(
        [
            (1e-4, "lora", 2.1, "COMPLETE"),
            (3e-3, "dora", 1.6, "COMPLETE"),
            (1e-3, "lora", 1.2, "COMPLETE"),
            (5e-2, "lora", None, "PRUNED"),
            (2e-3, "dora", 1.3, "COMPLETE"),
        ]
    ):
        trials.append(
            {
                "number": n,
                "state": state,
                "params": {"train.learning_rate": lr, "model.adapter": adapter},
                "value": value,
                "val_loss": value or 3.3,
                "run_dir": str(sweep / "trials" / f"{n:03d}"),
                "intermediate": {"2": 3.0 - n * 0.1, "4": (value or 3.2)},
                "duration_s": 10.0,
            }
        )
    summary = {
        "name": "sweep",
        "sweep_dir": str(sweep),
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "space": {
            "train.learning_rate": {"type": "float", "low": 1e-4, "high": 5e-2, "log": True},
            "model.adapter": {"type": "categorical", "choices": ["lora", "dora"]},
        },
        "sampler": "tpe",
        "pruner": "median",
        "target_trials": 5,
        "trials": trials,
        "best": trials[2],
        "importances": {"train.learning_rate": 0.8, "model.adapter": 0.2},
        "importances_note": None,
    }
    rundir.write_json(sweep / "sweep.json", summary)
    assert best.is_dir()
    return sweep


def test_run_report_has_every_section_from_files(tmp_path):
    from tunelab.report import build_report

    html = build_report(make_run_dir(tmp_path))
    for text in (
        "Data",
        "Training curves",
        "Evaluation",
        "Confusion matrix",
        "Base vs tuned replies",
        "What size would you like?",
        "rougeL",
        "duplicates removed: 2",
    ):
        assert text in html, text
    assert "&lt;b&gt;now&lt;/b&gt;" in html  # user text is escaped, never injected
    assert (
        "<script src" not in html
        and "<link" not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert html.count("<svg") == 4  # length histogram, loss, learning rate, confusion matrix


def test_report_tolerates_missing_files(tmp_path):
    from tunelab.report import build_report

    run = tmp_path / "bare"
    rundir.write_text(run / rundir.CONFIG, "model: {name: x, adapter: lora}\n")
    html = build_report(run)
    assert "No scores.json" in html and "No metrics.jsonl" in html and "No data_report.json" in html
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        build_report(tmp_path)


def test_sweep_report_explains_the_choice(tmp_path):
    from tunelab.report import build_report
    from tunelab.report.sweep import explain

    sweep = make_sweep_dir(tmp_path)
    why = explain(rundir.read_json(sweep / "sweep.json"))
    assert why["best"]["number"] == 2 and why["n_complete"] == 4
    # Distance mixes the log-scaled learning rate with adapter (mis)matches; the pruned trial is no neighbour.
    assert [t["number"] for t in why["neighbours"]] == [0, 4, 1]
    by_param = {s["param"]: s for s in why["sensitivity"]}
    assert by_param["model.adapter"]["best_away"] == 1.3 and by_param["model.adapter"]["cost"] == pytest.approx(0.1)
    # Only 1e-4 lies more than a quarter of the log range from 1e-3; 2e-3 and 3e-3 count as near.
    assert by_param["train.learning_rate"]["n_away"] == 1 and by_param["train.learning_rate"]["cost"] == pytest.approx(
        0.9
    )
    html = build_report(sweep)
    for text in (
        "Chosen parameters and why",
        "Parameter importances",
        "Each parameter against the objective",
        "Trials",
        "The best trial",
        "Validation loss of every trial",
    ):
        assert text in html, text


def test_report_never_imports_torch(tmp_path):
    """The report reads files only: building one must not pull in torch (fast, works on any machine)."""
    run = make_run_dir(tmp_path)
    code = f"import sys; from tunelab.report import build_report; build_report({str(run)!r}); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_report_command_writes_the_file(tmp_path):
    from typer.testing import CliRunner

    from tunelab.cli import app

    run = make_run_dir(tmp_path)
    result = CliRunner().invoke(app, ["report", str(run), "-o", str(tmp_path / "out.html")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.html").read_text().startswith("<!DOCTYPE html>")
    assert CliRunner().invoke(app, ["report", str(run)]).exit_code == 0 and (run / "report.html").exists()


class Chromium:
    """A headless Chromium driven over the DevTools protocol (websocket)."""

    def __init__(self, profile: Path):
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                "--window-size=1200,2000",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        from websockets.sync.client import connect

        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(
            connect(next(p for p in pages if p["type"] == "page")["webSocketDebuggerUrl"], max_size=None)
        )
        self.next_id, self.events = 0, []

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> None:
        while not any(e.get("method") == method for e in self.events):
            self.events.append(json.loads(self.ws.recv(timeout=60)))

    def close(self) -> None:
        self.stack.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)


def check_in_chromium(html_file: Path, tmp_path: Path) -> dict:
    """Load the page; return console errors, outside requests, per-chart mark counts and screenshot stats."""
    from PIL import Image, ImageStat

    browser = Chromium(tmp_path / "profile")
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        browser.call("Page.navigate", url=html_file.resolve().as_uri())
        browser.wait_for("Page.loadEventFired")
        charts = browser.call(
            "Runtime.evaluate",
            returnByValue=True,
            expression="""
            Array.from(document.querySelectorAll('svg.chart')).map(s => ({
              marks: s.querySelectorAll('circle,polyline,rect').length,
              width: s.getBoundingClientRect().width, height: s.getBoundingClientRect().height}))""",
        )["result"]["value"]
        browser.call(
            "Runtime.evaluate", expression="document.querySelectorAll('table.sortable th').forEach(th => th.click())"
        )
        shot = browser.call("Page.captureScreenshot", format="png")
        browser.call("Runtime.evaluate", expression="1")  # drain events raised by the clicks
    finally:
        browser.close()
    errors = [
        e
        for e in browser.events
        if e.get("method") == "Runtime.exceptionThrown"
        or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
        or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]
    outside = [
        e["params"]["request"]["url"]
        for e in browser.events
        if e.get("method") == "Network.requestWillBeSent"
        and not e["params"]["request"]["url"].startswith(("file:", "data:", "about:"))
    ]
    image = Image.open(io.BytesIO(base64.b64decode(shot["data"]))).convert("L")
    return {
        "errors": errors,
        "outside": outside,
        "charts": charts,
        "stddev": ImageStat.Stat(image).stddev[0],
        "size": image.size,
    }


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("kind", ["run", "sweep"])
def test_report_renders_in_headless_chromium(tmp_path, kind):
    from tunelab.report import write_report

    source = make_run_dir(tmp_path) if kind == "run" else make_sweep_dir(tmp_path)
    out = write_report(source, tmp_path / "report.html")
    seen = check_in_chromium(out, tmp_path)
    assert seen["errors"] == [], seen["errors"]
    assert seen["outside"] == [], "the report must not fetch anything"
    assert len(seen["charts"]) >= (4 if kind == "run" else 8)
    # Every chart is laid out and has data marks (the smallest: two importance bars).
    assert all(c["marks"] >= 2 and c["width"] > 100 and c["height"] > 50 for c in seen["charts"]), seen["charts"]
    assert seen["stddev"] > 10, f"screenshot looks blank (pixel stddev {seen['stddev']:.1f})"


if __name__ == "__main__":  # render a sample report to look at: python tests/integration/test_report.py OUT_DIR
    from tunelab.report import write_report

    print(write_report(make_sweep_dir(Path(sys.argv[1]))))

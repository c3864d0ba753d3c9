"""Load test of `tunelab serve`: N concurrent `openai` clients against a real server on 127.0.0.1.

The server runs in a subprocess, twice: with request batching (the default) and with batching
off (max_batch=1) as the peer measured in the same run. Bounded in requests and in time;
loopback only. Prints requests/s, p50/p95 latency, the batch sizes the server used, and
whether every response was a well-formed chat completion.

    .venv/bin/python bench/serve_load.py --model smollm2-135m --clients 8 --requests 32 --max-tokens 32
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai

HOST = "127.0.0.1"
PROMPTS = [
    "Hi, can I get a latte?",
    "Two cappuccinos and a croissant, please.",
    "Do you have oat milk?",
    "I'd like a large mocha with an extra shot.",
    "What's the weather like today?",
    "Cancel my order please.",
    "One flat white to take away.",
    "Can I change my muffin to a scone?",
]


def start_server(model: str, port: int, max_batch: int, batch_window_ms: float) -> subprocess.Popen:
    code = (
        "import logging; logging.basicConfig(level=logging.WARNING)\n"
        "from tunelab.serve.app import ServeSettings, serve\n"
        f"serve({model!r}, host={HOST!r}, port={port}, settings=ServeSettings(model_name='bench', "
        f"max_batch={max_batch}, batch_window={batch_window_ms / 1000}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_ready(proc: subprocess.Popen, url: str, limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {limit_s}s")


def well_formed(reply: Any, max_tokens: int) -> str | None:
    """None if `reply` is a proper chat completion, else what is wrong with it."""
    if not reply.id.startswith("chatcmpl-") or reply.object != "chat.completion" or len(reply.choices) != 1:
        return "envelope"
    choice = reply.choices[0]
    if choice.message.role != "assistant" or not isinstance(choice.message.content, str):
        return "message"
    if choice.finish_reason not in ("stop", "length"):
        return f"finish_reason={choice.finish_reason}"
    usage = reply.usage
    if usage.total_tokens != usage.prompt_tokens + usage.completion_tokens or usage.completion_tokens > max_tokens:
        return "usage"
    if choice.finish_reason == "length" and usage.completion_tokens != max_tokens:
        return "length without max_tokens tokens"
    return None


def run_load(url: str, clients: int, requests: int, max_tokens: int, limit_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    latencies: list[float] = []
    problems: list[str] = []
    tokens = 0

    def one(i: int) -> None:
        nonlocal tokens
        if time.monotonic() > deadline:
            problems.append("skipped: time limit")
            return
        client = openai.OpenAI(base_url=url, api_key="none", max_retries=0, timeout=limit_s)
        start = time.perf_counter()
        try:
            reply = client.chat.completions.create(
                model="bench",
                temperature=0,
                max_tokens=max_tokens,
                messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            )
        except openai.OpenAIError as exc:
            problems.append(f"error: {type(exc).__name__}")
            return
        latencies.append(time.perf_counter() - start)
        tokens += reply.usage.completion_tokens
        if (problem := well_formed(reply, max_tokens)) is not None:
            problems.append(problem)

    seen = len(httpx.get(url + "/stats", timeout=10).json()["batch_sizes"])  # earlier phases are not ours
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    sizes = httpx.get(url + "/stats", timeout=10).json()["batch_sizes"][seen:]
    ordered = sorted(latencies)
    return {
        "requests": requests,
        "ok": len(latencies) - sum(1 for p in problems if not p.startswith(("error", "skipped"))),
        "problems": problems,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 3),
        "completion_tokens_per_s": round(tokens / wall, 1),
        "p50_s": round(statistics.median(ordered), 3) if ordered else None,
        "p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3) if ordered else None,
        "mean_batch_size": round(statistics.mean(sizes), 2) if sizes else None,
        "max_batch_size": max(sizes, default=0),
    }


def measure(args: argparse.Namespace, max_batch: int) -> dict[str, Any]:
    from tunelab.serve.app import free_socket

    sock = free_socket(HOST)
    port = sock.getsockname()[1]
    sock.close()
    proc = start_server(args.model, port, max_batch, args.batch_window_ms)
    url = f"http://{HOST}:{port}/v1"
    try:
        wait_ready(proc, url, 300)
        run_load(url, 2, 2, 4, 120)  # warm-up, not measured (first calls pay one-off costs)
        return run_load(url, args.clients, args.requests, args.max_tokens, args.time_limit)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-window-ms", type=float, default=10.0)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds per measured phase")
    args = parser.parse_args()
    if args.requests > 1000 or args.clients > 64:
        parser.error("bounded by design: at most 1000 requests and 64 clients")
    # SIGTERM (a killed job) unwinds through `finally`, so the server subprocess is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = {}
    for name, max_batch in (("batched", 16), ("unbatched", 1)):
        results[name] = r = measure(args, max_batch=max_batch)
        print(
            f"{name:10s} {r['requests_per_s']:.3f} req/s  {r['completion_tokens_per_s']:.1f} tok/s  "
            f"p50 {r['p50_s']}s  p95 {r['p95_s']}s  mean batch {r['mean_batch_size']}  "
            f"well-formed {r['ok']}/{r['requests']}",
            flush=True,
        )
    ratio = results["batched"]["requests_per_s"] / max(results["unbatched"]["requests_per_s"], 1e-9)
    print(
        f"batching speed-up: {ratio:.2f}x requests/s ({args.clients} clients, {args.requests} requests, "
        f"max_tokens {args.max_tokens}, model {args.model})"
    )
    print(json.dumps({**results, "args": vars(args)}, indent=2))


if __name__ == "__main__":
    main()

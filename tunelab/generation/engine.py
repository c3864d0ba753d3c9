"""The generation engine behind `tunelab serve`: one thread owns the model and batches requests.

Requests are queued; the worker waits `batch_window` seconds after the first arrival, takes every
queued request with the same sampling settings, and generates them in one left-padded `generate`
call. Each row stops on its own (EOS, its stop strings, its max_tokens) through a per-row
stopping criterion that also streams its text out to the request's asyncio queue.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tunelab.generation.tokens import left_pad, pad_token_id, stop_token_ids

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One chat completion in flight; the worker thread fills it, the event loop reads events."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    stream: bool
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish_reason: str | None = None
    batch_size: int = 0

    @property
    def settings_key(self) -> tuple:
        # Greedy rows batch with any greedy row; sampled rows only with identical settings.
        return ("greedy",) if self.temperature <= 0 else ("sample", self.temperature, self.top_p)

    def send(self, kind: str, payload: Any = None) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, (kind, payload))
        except RuntimeError:  # the client's loop is gone (server shutting down)
            self.cancelled = True


class _RowTracker:
    """A StoppingCriteria that decides per row when it is done and streams each row's new text."""

    def __init__(self, jobs: list[Job], tokenizer: Any, eos_ids: set[int]):
        self.jobs, self.tokenizer, self.eos_ids = jobs, tokenizer, eos_ids

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        last = input_ids[:, -1].tolist()
        for job, token in zip(self.jobs, last):
            if job.finish_reason is None:
                self._step(job, int(token))
        return torch.tensor([j.finish_reason is not None for j in self.jobs], device=input_ids.device)

    def _step(self, job: Job, token: int) -> None:
        if job.cancelled:
            job.finish_reason = "cancelled"
        elif token in self.eos_ids:
            job.finish_reason = "stop"
        else:
            job.tokens.append(token)
            self._update_text(job)
            if job.finish_reason is None and len(job.tokens) >= job.max_new_tokens:
                job.finish_reason = "length"
        if job.finish_reason is not None:
            self.finish(job)
        elif job.stream:
            self._emit(job, final=False)

    def _update_text(self, job: Job) -> None:
        text = self.tokenizer.decode(job.tokens, skip_special_tokens=True)
        hits = [text.find(s) for s in job.stop if s and s in text]
        if hits:
            text, job.finish_reason = text[: min(hits)], "stop"
        job.text = text

    def _emit(self, job: Job, *, final: bool) -> None:
        end = len(job.text)
        if not final:
            # Hold back what may be the start of a stop string or half of a multi-byte character.
            end -= max((len(s) for s in job.stop), default=1) - 1
            while end > job.emitted and job.text[end - 1] == "\ufffd":
                end -= 1
        if end > job.emitted:
            job.send("delta", job.text[job.emitted : end])
            job.emitted = end

    def finish(self, job: Job) -> None:
        job.finish_reason = job.finish_reason or "length"
        if job.stream:
            self._emit(job, final=True)
        job.send("done", None)


class Engine:
    """The model, its tokenizer and the batching worker thread."""

    def __init__(
        self, model: Any, tokenizer: Any, *, batch_window: float = 0.01, max_batch: int = 16, max_queue: int = 256
    ):
        self.model, self.tokenizer = model, tokenizer
        self.batch_window, self.max_batch = batch_window, max_batch
        self.context_length = int(getattr(model.config, "max_position_embeddings", 2048))
        self.eos_ids = set(stop_token_ids(tokenizer, model))
        self.pad_id = pad_token_id(tokenizer, sorted(self.eos_ids))
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self.batch_sizes: deque[int] = deque(maxlen=1000)
        self.requests = 0
        self._thread = threading.Thread(target=self._work, name="tunelab-generate", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue a job; raises queue.Full when the server is overloaded."""
        self._queue.put_nowait(job)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def stats(self) -> dict[str, Any]:
        sizes = list(self.batch_sizes)
        return {
            "requests": self.requests,
            "batches": len(sizes),
            "batch_sizes": sizes,
            "max_batch_size": max(sizes, default=0),
            "queued": self._queue.qsize(),
        }

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        batch, deadline = [first], time.monotonic() + self.batch_window
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                job = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _work(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                return
            batch, closing = self._collect(first)
            groups: dict[tuple, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.settings_key, []).append(job)
            for group in groups.values():
                try:
                    self._generate(group)
                except Exception as exc:  # a failed batch must not kill the worker
                    log.exception("generation failed for a batch of %d", len(group))
                    for job in group:
                        job.send("error", f"generation failed: {exc}")

    def _generate(self, jobs: list[Job]) -> None:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        ids, mask = left_pad([j.prompt_ids for j in jobs], self.pad_id)
        for job in jobs:
            job.batch_size = len(jobs)
        sample = jobs[0].temperature > 0
        config = GenerationConfig(
            max_new_tokens=max(j.max_new_tokens for j in jobs),
            do_sample=sample,
            temperature=jobs[0].temperature if sample else None,
            top_p=jobs[0].top_p if sample else None,
            top_k=None,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
        )
        tracker = _RowTracker(jobs, self.tokenizer, self.eos_ids)
        self.batch_sizes.append(len(jobs))
        self.requests += len(jobs)
        with torch.inference_mode():
            self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=config,
                stopping_criteria=StoppingCriteriaList([tracker]),
            )
        for job in jobs:
            if job.finish_reason is None:  # stopped by generate's own length limit
                tracker.finish(job)


def build_prompt(tokenizer: Any, messages: list[dict[str, Any]], system_prompt: str | None) -> list[int]:
    if system_prompt and not any(m["role"] == "system" for m in messages):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]

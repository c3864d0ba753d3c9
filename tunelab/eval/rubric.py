"""The LLM rubric judge (`tunelab judge`): rubric scores (correctness, appropriateness, style;
1-5 each with a one-line reason) from any OpenAI-compatible chat endpoint. Not the behaviour judge
(tunelab.eval.behaviour), which alone decides the behaviour figures.

Raw judge answers are cached on disk (sqlite) by (prompt, model), so re-running a report costs
nothing and parser changes apply to old answers. Answers that do not parse are counted, not
guessed: a small judge model often writes prose instead of the asked-for JSON, and the report
says how often.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CRITERIA = ("correctness", "appropriateness", "style")

PROMPT = """You grade one reply of a customer-service assistant.

Conversation so far:
{context}

Reply to grade:
{reply}
{reference}
Score the reply from 1 (bad) to 5 (excellent) on:
- correctness: is what it says or asks right for this conversation?
- appropriateness: is it the right next action (ask for a missing detail, confirm, answer, steer back, close)?
- style: is it clear, polite and brief?

Answer with JSON only, in exactly this shape:
{{"correctness": {{"score": 1, "reason": "one line"}}, "appropriateness": {{"score": 1, "reason": "one line"}}, "style": {{"score": 1, "reason": "one line"}}}}"""


@dataclass(frozen=True)
class RubricSettings:
    base_url: str
    model: str
    api_key_env: str | None = None  # name of the environment variable holding the key
    timeout: float = 60.0
    retries: int = 3  # further attempts after the first, on timeouts, connection errors, 429 and 5xx
    backoff: float = 1.0  # seconds before the first retry, doubled after each
    max_tokens: int = 200
    cache_path: Path | None = None


@dataclass
class Verdict:
    scores: dict[str, int] | None  # None when the answer did not parse
    reasons: dict[str, str]
    raw: str
    cached: bool = False
    error: str | None = None  # the request failed after all retries

    @property
    def parsed(self) -> bool:
        return self.scores is not None


@dataclass
class RubricReport:
    verdicts: list[Verdict] = field(default_factory=list)
    retries: int = 0

    def summary(self) -> dict[str, Any]:
        scored = [v.scores for v in self.verdicts if v.scores]
        means = {c: (sum(s[c] for s in scored) / len(scored) if scored else None) for c in CRITERIA}
        return {
            "n": len(self.verdicts),
            "parsed": len(scored),
            "unparseable": sum(1 for v in self.verdicts if v.error is None and v.scores is None),
            "failed": sum(1 for v in self.verdicts if v.error is not None),
            "cached": sum(1 for v in self.verdicts if v.cached),
            "retries": self.retries,
            "mean": means,
        }


def _score(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and float(value).is_integer() and 1 <= value <= 5:
        return int(value)
    if isinstance(value, str) and value.strip() in {"1", "2", "3", "4", "5"}:
        return int(value.strip())
    return None


def _from_json(text: str) -> dict[str, Any] | None:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse_verdict(text: str) -> tuple[dict[str, int], dict[str, str]] | None:
    """Scores and reasons from a judge's answer, or None when any criterion lacks a 1-5 score.

    Accepts the asked-for JSON (also inside a code fence or after some prose), the flat form
    {"correctness": 4, ..., "correctness_reason": "..."}, and, in answers without braces, lines like
    "Correctness: 4 - reason".

    >>> parse_verdict('{"correctness": {"score": 4, "reason": "right"}, "appropriateness": 5, "style": "3"}')[0]
    {'correctness': 4, 'appropriateness': 5, 'style': 3}
    >>> parse_verdict("I think it is fine.") is None
    True
    """
    scores: dict[str, int] = {}
    reasons: dict[str, str] = {}
    data = _from_json(text)
    if data is not None:
        lowered = {str(k).lower(): v for k, v in data.items()}
        for name in CRITERIA:
            entry = lowered.get(name)
            value = entry.get("score") if isinstance(entry, dict) else entry
            if (score := _score(value)) is not None:
                scores[name] = score
                reason = entry.get("reason") if isinstance(entry, dict) else lowered.get(f"{name}_reason")
                reasons[name] = str(reason or "").strip()
    elif "{" not in text:  # broken JSON is not read line by line: its "reasons" would be JSON debris
        for name in CRITERIA:
            found = re.search(rf"{name}\W{{0,3}}\s*[:=-]\s*\**\s*([1-5])\b\s*(?:/\s*5)?\W*(.*)", text, re.IGNORECASE)
            if found:
                scores[name], reasons[name] = int(found.group(1)), found.group(2).strip()
    return (scores, reasons) if len(scores) == len(CRITERIA) else None


def build_prompt(context: Sequence[dict[str, Any]], reply: str, reference: str | None = None) -> str:
    lines = [f"{m.get('role', '?')}: {m.get('content') or ''}".strip() for m in context] or ["(no earlier messages)"]
    ref = f"\nA good reference reply (other wordings can be just as good):\n{reference}\n" if reference else ""
    return PROMPT.format(context="\n".join(lines), reply=reply, reference=ref)


class _Cache:
    """sqlite: key = sha256 of (model, prompt) -> the judge's raw answer."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, model TEXT, raw TEXT, created REAL)"
        )
        self._lock = threading.Lock()

    @staticmethod
    def key(model: str, prompt: str) -> str:
        return hashlib.sha256(json.dumps([model, prompt]).encode()).hexdigest()

    def get(self, model: str, prompt: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT raw FROM verdicts WHERE key = ?", (self.key(model, prompt),)).fetchone()
        return row[0] if row else None

    def put(self, model: str, prompt: str, raw: str) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                (self.key(model, prompt), model, raw, time.time()),
            )

    def close(self) -> None:
        self._db.close()


class RubricJudge:
    """A client of one judge endpoint: asks, retries, caches and parses rubric verdicts."""

    def __init__(self, settings: RubricSettings):
        import openai

        self.settings = settings
        key = "unused"  # local OpenAI-compatible servers often need none
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env, "")
            if not key:
                raise ValueError(f"the judge's API key variable {settings.api_key_env} is not set")
        # Retries are ours (counted and logged), so the client's own are off.
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=key, timeout=settings.timeout, max_retries=0)
        self.cache = _Cache(settings.cache_path) if settings.cache_path else None
        self.retries = 0

    def _ask(self, prompt: str) -> str:
        return self.complete([{"role": "user", "content": prompt}], temperature=0, max_tokens=self.settings.max_tokens)

    def complete(self, messages: list[dict[str, str]], temperature: float, max_tokens: int) -> str:
        """One chat completion with this client's timeouts and counted retries (bake's endpoint teacher uses it too)."""
        import openai

        retryable = (
            openai.APITimeoutError,
            openai.APIConnectionError,
            openai.RateLimitError,
            openai.InternalServerError,
        )
        delay = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            try:
                response = self.client.chat.completions.create(
                    model=self.settings.model, messages=messages, temperature=temperature, max_tokens=max_tokens
                )
                return response.choices[0].message.content or ""
            except retryable as exc:
                if attempt == self.settings.retries:
                    raise
                self.retries += 1
                log.warning(
                    "request to %s failed (%s); retry %d of %d in %.1fs",
                    self.settings.base_url,
                    type(exc).__name__,
                    attempt + 1,
                    self.settings.retries,
                    delay,
                )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    def judge(self, context: Sequence[dict[str, Any]], reply: str, reference: str | None = None) -> Verdict:
        import openai

        prompt = build_prompt(context, reply, reference)
        raw = self.cache.get(self.settings.model, prompt) if self.cache else None
        cached = raw is not None
        if raw is None:
            try:
                raw = self._ask(prompt)
            except openai.OpenAIError as exc:
                return Verdict(None, {}, "", error=f"{type(exc).__name__}: {exc}")
            if self.cache:
                self.cache.put(self.settings.model, prompt, raw)
        parsed = parse_verdict(raw)
        if parsed is None:
            return Verdict(None, {}, raw, cached=cached)
        return Verdict(parsed[0], parsed[1], raw, cached=cached)

    def judge_many(self, items: Iterable[dict[str, Any]]) -> RubricReport:
        """Each item: {'context': [messages], 'prediction': str, 'reference': str | None}."""
        report = RubricReport()
        start = self.retries
        for item in items:
            report.verdicts.append(self.judge(item.get("context") or [], item["prediction"], item.get("reference")))
        report.retries = self.retries - start
        return report

    def close(self) -> None:
        if self.cache:
            self.cache.close()


def read_items(path: str | Path) -> list[dict[str, Any]]:
    """Rows to judge from JSONL: 'prediction' required; 'context' or 'messages' and 'reference' optional."""
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict) or not isinstance(row.get("prediction"), str):
            raise ValueError(f"{path}:{number}: field 'prediction' is missing or not a string")
        context = row.get("context", row.get("messages")) or []
        if not isinstance(context, list) or not all(isinstance(m, dict) for m in context):
            raise ValueError(f"{path}:{number}: field 'context' must be a list of messages")
        items.append({**row, "context": context})
    return items


def verdict_rows(items: Sequence[dict[str, Any]], report: RubricReport) -> list[dict[str, Any]]:
    rows = []
    for item, verdict in zip(items, report.verdicts):
        keep = {k: item[k] for k in ("conversation_id", "turn_index") if k in item}
        rows.append({**keep, **asdict(verdict), "parsed": verdict.parsed})
    return rows

"""Data hygiene for feedback logs before training; each step optional and counted.

- normalize: Unicode NFC, so "й" typed as и + combining breve equals the precomposed letter
  (matters for Russian, where both forms occur in copied text);
- pii: e-mail addresses, URLs with personal paths, phone numbers and ID-like numbers are
  replaced by typed placeholders [EMAIL], [URL], [PHONE], [ID] in questions, answers, comments
  and contexts; general URLs (https://uni.example/library) are kept;
- dedupe: exact duplicates (same question, tags, contexts, answer and label) are dropped;
- near_duplicates: rows of the same label whose rendered text is at least this similar
  (rapidfuzz's normalised Indel similarity, 0..1) to a kept row are dropped. Rows of different
  labels are never merged, so the good/bad pairs DPO needs survive.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tunelab.config import HygieneConfig
from tunelab.data.logs import LogRecord

# Order matters: e-mails and URLs contain digit runs the ID and phone patterns would also take;
# an unbroken run of 6+ digits is an ID, digits with separators or a leading + are a phone.
PII_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)),
    (
        "URL",
        re.compile(
            r"https?://[^\s,;]*?(?:/~[\w-]+|/(?:users?|home|people|profiles?|u|id)/[\w@-]+)[^\s,;]*(?<![.!?])",
            re.IGNORECASE,
        ),
    ),
    ("ID", re.compile(r"(?<![\w+(\[-])(?:[A-ZА-Я]{1,3}[- ]?)?\d{6,}(?![\w-])")),
    ("PHONE", re.compile(r"(?<![\w+(])\+?\(?\d(?:[\s().-]*\d){8,13}(?!\w)")),
)


@dataclass
class HygieneReport:
    normalized: int = 0  # records changed by NFC
    pii: Counter = field(default_factory=Counter)  # placeholder type -> replacements
    records_with_pii: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "normalized": self.normalized,
            "pii_replaced": dict(self.pii),
            "records_with_pii": self.records_with_pii,
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
        }


def scrub_pii(text: str, counts: Counter | None = None) -> str:
    for kind, pattern in PII_PATTERNS:
        text, n = pattern.subn(f"[{kind}]", text)
        if counts is not None and n:
            counts[kind] += n
    return text


def _map_text(record: LogRecord, fn: Callable[[str], str]) -> LogRecord:
    return replace(
        record,
        question=fn(record.question),
        answer=fn(record.answer),
        comment=fn(record.comment),
        contexts=tuple(fn(c) for c in record.contexts),
        tags={k: fn(v) for k, v in record.tags.items()},
    )


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _key(record: LogRecord) -> tuple:
    squash = lambda s: " ".join(s.casefold().split())  # noqa: E731 - whitespace and case never make a new example
    return (
        squash(record.question),
        tuple(sorted(record.tags.items())),
        tuple(map(squash, record.contexts)),
        squash(record.answer),
        record.label,
    )


def _text_of(record: LogRecord) -> str:
    tags = " ".join(f"{k}={v}" for k, v in sorted(record.tags.items()))
    return f"{tags} | {record.question} | {' '.join(record.contexts)} | {record.answer}".casefold()


def drop_near_duplicates(records: list[LogRecord], threshold: float) -> tuple[list[LogRecord], int]:
    """Keep the first of every group of same-label rows at least `threshold` similar."""
    import numpy as np
    from rapidfuzz import fuzz, process

    kept: list[LogRecord] = []
    dropped = 0
    for label in (True, False):
        group = [r for r in records if r.label == label]
        texts = [_text_of(r) for r in group]
        if not texts:
            continue
        # One vectorised all-pairs pass; fine for tens of thousands of rows.
        scores = process.cdist(texts, texts, scorer=fuzz.ratio, score_cutoff=threshold * 100, workers=1)
        removed = set()
        for i in range(len(group)):
            if i not in removed:
                removed.update((np.nonzero(scores[i, i + 1 :])[0] + i + 1).tolist())
        dropped += len(removed)
        kept.extend(r for i, r in enumerate(group) if i not in removed)
    order = {id(r): n for n, r in enumerate(records)}
    return sorted(kept, key=lambda r: order[id(r)]), dropped


def clean(records: list[LogRecord], cfg: HygieneConfig = HygieneConfig()) -> tuple[list[LogRecord], HygieneReport]:
    report = HygieneReport()
    out = list(records)
    if cfg.normalize:
        normalized = [_map_text(r, _nfc) for r in out]
        report.normalized = sum(1 for a, b in zip(out, normalized) if a != b or a.tags != b.tags)
        out = normalized
    if cfg.pii:
        scrubbed = []
        for r in out:
            counts: Counter = Counter()
            new = _map_text(r, lambda s, counts=counts: scrub_pii(s, counts))
            report.records_with_pii += bool(counts)
            report.pii.update(counts)
            scrubbed.append(new)
        out = scrubbed
    if cfg.dedupe:
        seen: set[tuple] = set()
        unique = []
        for r in out:
            key = _key(r)
            if key not in seen:
                seen.add(key)
                unique.append(r)
        report.exact_duplicates = len(out) - len(unique)
        out = unique
    if cfg.near_duplicates is not None:
        out, report.near_duplicates = drop_near_duplicates(out, cfg.near_duplicates)
    return out, report

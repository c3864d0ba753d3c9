"""From one feedback log: an SFT set, a KTO set, DPO pairs, and statistics.

- SFT: the good answers, as OpenAI chat conversations (user turn rendered from the template);
- KTO: every answer with its label (unpaired), TRL's conversational format
  {"prompt": [user message], "completion": [assistant message], "label": bool};
- DPO: every (good, bad) pair of answers to the same rendered user turn (same question, tags and
  contexts, so the prompt is identical), {"prompt", "chosen", "rejected"};
- statistics: counts by label, by each tag value (good/bad), and the most frequent comment
  themes (whole comments after normalisation, and their most frequent content words).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.data.logs import LogRecord, compile_template, render_user_turn, to_conversation

_WORD = re.compile(r"[^\W\d_]{4,}", re.UNICODE)
_COMMENT_STOP = set(
    "does that this with than from into more answer reply user нет что чтобы вместо ответ ответил".split()
)


def _prompt(record: LogRecord, template: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": render_user_turn(record, template)}]


def sft_rows(
    records: Iterable[LogRecord], template: str | None = None, system_prompt: str | None = None
) -> list[dict[str, Any]]:
    compiled = compile_template(template)
    return [to_conversation(r, compiled, system_prompt).to_openai() for r in records if r.label]


def kto_rows(records: Iterable[LogRecord], template: str | None = None) -> list[dict[str, Any]]:
    compiled = compile_template(template)
    return [
        {
            "id": r.id,
            "prompt": _prompt(r, compiled),
            "completion": [{"role": "assistant", "content": r.answer}],
            "label": r.label,
        }
        for r in records
    ]


def dpo_pairs(records: Iterable[LogRecord], template: str | None = None) -> list[dict[str, Any]]:
    compiled = compile_template(template)
    groups: dict[str, list[LogRecord]] = defaultdict(list)
    for r in records:
        groups[render_user_turn(r, compiled)].append(r)
    pairs = []
    for prompt, group in groups.items():
        good = [r for r in group if r.label]
        bad = [r for r in group if not r.label]
        for g in good:
            for b in bad:
                if g.answer != b.answer:  # the same text labelled both ways teaches nothing
                    pairs.append(
                        {
                            "id": f"{g.id}|{b.id}",
                            "prompt": [{"role": "user", "content": prompt}],
                            "chosen": [{"role": "assistant", "content": g.answer}],
                            "rejected": [{"role": "assistant", "content": b.answer}],
                        }
                    )
    return pairs


def _norm_comment(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.casefold()).split())


def statistics(records: list[LogRecord], top: int = 10) -> dict[str, Any]:
    by_tag: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for r in records:
        for tag, value in r.tags.items():
            by_tag[tag][value]["good" if r.label else "bad"] += 1
    comments = Counter(_norm_comment(r.comment) for r in records if r.comment.strip())
    words = Counter(
        w for r in records if r.comment for w in {m.lower() for m in _WORD.findall(r.comment)} - _COMMENT_STOP
    )
    return {
        "records": len(records),
        "by_label": {"good": sum(r.label for r in records), "bad": sum(not r.label for r in records)},
        "by_tag": {
            tag: {value: dict(c) for value, c in sorted(values.items())} for tag, values in sorted(by_tag.items())
        },
        "with_contexts": sum(1 for r in records if r.contexts),
        "comment_themes": [{"comment": c, "count": n} for c, n in comments.most_common(top)],
        "comment_words": [{"word": w, "count": n} for w, n in words.most_common(top)],
    }


def write_sets(records: list[LogRecord], out_dir: str | Path, template: str | None = None) -> dict[str, Any]:
    """Write sft.jsonl, kto.jsonl, dpo.jsonl and stats.json into `out_dir`; returns their counts."""
    out = Path(out_dir)
    sft, kto, dpo = sft_rows(records, template), kto_rows(records, template), dpo_pairs(records, template)
    rundir.write_jsonl(out / "sft.jsonl", sft)
    rundir.write_jsonl(out / "kto.jsonl", kto)
    rundir.write_jsonl(out / "dpo.jsonl", dpo)
    stats = statistics(records)
    rundir.write_json(out / "stats.json", stats)
    return {"sft": len(sft), "kto": len(kto), "dpo": len(dpo), "stats": stats}

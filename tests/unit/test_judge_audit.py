"""The strict judge against replies labelled by reading them.

tests/fixtures/judge_audit.jsonl holds real replies of the base and tuned SmolLM2-135M to held-out
cafe contexts (plus replies quoted in a user's bug report), each with the generator's record of what
the turn needed, a label given by a person reading the reply and the context ("right"/"wrong"),
and the reason for that label. The judge must agree with at least 97% of them.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tunelab.eval.behaviour import judge_expected

FIXTURE = Path(__file__).parents[1] / "fixtures" / "judge_audit.jsonl"


def load() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_audit_set_is_big_and_varied_enough() -> None:
    rows = load()
    assert len(rows) >= 150
    kinds = Counter((r["expected"]["act"], r["label"]) for r in rows)
    # both acts, each with right and wrong replies, from the base and the tuned model (right asks
    # are the scarce kind: the tuned models rarely ask right)
    assert all(kinds[(act, label)] >= 10 for act in ("ask", "confirm") for label in ("right", "wrong")), kinds
    sources = Counter(r["source"].split(":")[-1] for r in rows)
    assert sources["base"] >= 30 and sources["tuned"] >= 60, sources
    assert all(r["reason"].strip() for r in rows)


def test_the_judge_agrees_with_the_labels() -> None:
    rows = load()
    disagreements = []
    for row in rows:
        verdict = judge_expected(row["reply"], row["expected"])
        if verdict.right != (row["label"] == "right"):
            disagreements.append(
                f"{row['id']}: label {row['label']} ({row['reason']}); judge: {verdict.reason}; reply: {row['reply']!r}"
            )
    agreement = 1 - len(disagreements) / len(rows)
    assert agreement >= 0.97, f"agreement {agreement:.1%} on {len(rows)}:\n" + "\n".join(disagreements)

"""How the behaviour classifier sees real Taskmaster-4 data, and how far it agrees with the
human good/bad judgements in reward/*.json (a sanity check of the classifier, not a benchmark
of a model).

    .venv/bin/python bench/taskmaster_classifier_agreement.py [../shared/data/taskmaster4]

Prints: conversion counts; the act distribution of agent turns in the dialogues; act
distributions of good vs bad judged generations; for (good, bad) pairs sharing a context how
often the bad one differs in act / function / arguments; scoring each judged generation
against another good generation of the same context; and a context rule ("the act the last
context turn calls for") used as a good/bad predictor, against the always-good baseline.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from tunelab.data.taskmaster import context_key, convert_dialogs, convert_rewards, preference_pairs
from tunelab.eval.behaviour import classify, missing_slots, score_pair


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} = {100 * n / d:.1f}%" if d else f"{n}/0"


def _dist(counter: Counter) -> str:
    total = sum(counter.values())
    return ", ".join(f"{k}: {v} ({100 * v / total:.1f}%)" for k, v in counter.most_common())


def dialog_acts(path: Path) -> None:
    result = convert_dialogs(path)
    print("## Dialogues", json.dumps(result.summary()))
    acts, slots = Counter(), Counter()
    for row in result.rows:
        for m in row["messages"]:
            if m["role"] == "assistant":
                act = classify(m)
                acts[act.act] += 1
                if act.act == "ask":
                    slots[act.slot] += 1
    print("agent turns by act:", _dist(acts))
    text_acts = Counter({k: v for k, v in acts.items() if k != "tool_call"})
    print("agent text turns by act:", _dist(text_acts))
    print("ask turns by slot:", _dist(slots))


def _last_call(context: list[dict[str, Any]]) -> tuple[str | None, Any]:
    """(function, parsed result) when the context ends with a tool result, else (None, None)."""
    if not context or context[-1]["role"] != "tool":
        return None, None
    fn = next(m["tool_calls"][0]["function"]["name"] for m in reversed(context) if m.get("tool_calls"))
    try:
        return fn, json.loads(context[-1]["content"])
    except json.JSONDecodeError:
        return fn, None


def expected_acts(context: list[dict[str, Any]]) -> set[str]:
    """The acts a good agent may take next, from the last context turn alone."""
    fn, result = _last_call(context)
    if fn is None:  # after a user turn: anything but confirming or closing
        return {"tool_call", "ask", "inform", "steer"}
    empty = not result or result == "empty"
    if fn == "finish_order":
        return {"closing"}
    if fn == "get_order_details":
        return {"confirm"}
    if fn == "add_order_item":
        if missing_slots(context):
            return {"ask"}
        # an empty result means the call failed: retrying is as good as asking
        return {"tool_call", "steer", "ask", "inform"} if empty else {"tool_call", "confirm"}
    if fn == "get_addons":
        return {"tool_call", "steer", "ask", "inform"} if empty else {"tool_call"}
    if fn == "get_menu_items":  # the match may not be what the customer asked for: steer
        return {"tool_call", "ask", "inform", "steer"}
    if fn in ("update_order", "update_order_item"):
        return {"tool_call"}
    return {"ask", "inform", "steer"}  # show_menu, invalid_intent


def reward_agreement(path: Path) -> None:
    result = convert_rewards(path)
    rows = result.rows
    print("\n## Judgements", json.dumps(result.summary()))
    for label in (True, False):
        acts = Counter(classify(r["completion"]).act for r in rows if r["label"] is label)
        print(f"{'good' if label else 'bad '} generations by act:", _dist(acts))

    pairs = preference_pairs(rows)
    diff_act = diff_fn = diff_args = both_calls = 0
    for good, bad in pairs:
        g, b = classify(good["completion"]), classify(bad["completion"])
        diff_act += g.act != b.act
        if g.act == b.act == "tool_call":
            both_calls += 1
            diff_fn += [n for n, _ in g.tool_calls] != [n for n, _ in b.tool_calls]
            diff_args += g.tool_calls != b.tool_calls
    print(f"\n(good, bad) pairs sharing a context: {len(pairs)}")
    print("  bad differs from good in act:", _pct(diff_act, len(pairs)))
    print(
        "  both tool calls:",
        _pct(both_calls, len(pairs)),
        "; of those, function differs:",
        _pct(diff_fn, both_calls),
        "; function or arguments differ:",
        _pct(diff_args, both_calls),
    )
    text_pairs = [
        (g, b) for g, b in pairs if not g["completion"].get("tool_calls") and not b["completion"].get("tool_calls")
    ]
    text_diff = sum(1 for g, b in text_pairs if classify(g["completion"]).act != classify(b["completion"]).act)
    print(
        "  both text: ", _pct(len(text_pairs), len(pairs)), "; of those, act differs:", _pct(text_diff, len(text_pairs))
    )
    same = sum(1 for g, b in pairs if classify(g["completion"]) == classify(b["completion"]))
    print("  bad classified identically to good (act, slot, mentions, call):", _pct(same, len(pairs)))
    _against_good_reference(rows)
    _context_rule(rows)


def _against_good_reference(rows: list[dict[str, Any]]) -> None:
    """Score every other judged generation against the first good one of its context."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[context_key(row["context"])].append(row)
    tallies = {True: Counter(), False: Counter()}
    for group in groups.values():
        goods = [r for r in group if r["label"]]
        if not goods:
            continue
        reference = goods[0]["completion"]
        for row in group:
            if row is goods[0]:
                continue
            score = score_pair(row["completion"], reference, missing=missing_slots(row["context"]) or None)
            tally = tallies[row["label"]]
            tally["n"] += 1
            tally["appropriate"] += score.appropriate
            tally["correct"] += score.correct
            if score.reference_act == "tool_call":
                tally["calls"] += 1
                tally["name"] += score.detail["name_correct"]
                tally["loose"] += score.detail["args_normalised_correct"]
    print("\nscored against another good generation of the same context:")
    for label, tally in tallies.items():
        name = "good" if label else "bad "
        print(
            f"  {name} candidates: appropriate {_pct(tally['appropriate'], tally['n'])}, "
            f"correct {_pct(tally['correct'], tally['n'])}; where the reference is a call: function "
            f"{_pct(tally['name'], tally['calls'])}, arguments equal up to case/space "
            f"{_pct(tally['loose'], tally['calls'])}"
        )


def _context_rule(rows: list[dict[str, Any]]) -> None:
    """Predict good iff the act (and, for a listed missing attribute, the slot) suits the context."""
    confusion = Counter()
    for row in rows:
        act = classify(row["completion"])
        missing = missing_slots(row["context"])
        ok = act.act in expected_acts(row["context"]) and (act.act != "ask" or not missing or act.slot in missing)
        confusion[(row["label"], ok)] += 1
    n = len(rows)
    right = confusion[(True, True)] + confusion[(False, False)]
    n_bad = confusion[(False, True)] + confusion[(False, False)]
    flagged = confusion[(True, False)] + confusion[(False, False)]
    print("\ncontext rule 'act suits the last context turn' as a good/bad predictor:")
    print("  accuracy:", _pct(right, n), "; always-good baseline:", _pct(n - n_bad, n))
    print("  bad generations flagged (recall of bad):", _pct(confusion[(False, False)], n_bad))
    print("  flagged that really are bad (precision):", _pct(confusion[(False, False)], flagged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parents[1].parent / "shared/data/taskmaster4",
        help="Taskmaster-4 folder (default: ../shared/data/taskmaster4 beside the repository)",
    )
    path = parser.parse_args().path
    dialog_acts(path)
    reward_agreement(path)


if __name__ == "__main__":
    main()

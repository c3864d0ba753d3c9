"""The one grouped split: groups never straddle the sides, and every caller gets exactly the split
its own function used to draw (each old function is copied verbatim below as the reference)."""

from __future__ import annotations

import collections
import random
from collections.abc import Sequence
from typing import Any

import pytest

from tunelab.data.logs import LogRecord
from tunelab.data.split import dedupe, grouped_split, split, split_by_dialogue
from tunelab.data.taskmaster import opening, split_by_opening
from tunelab.demos.helpdesk import split_by_group
from tunelab.messages import Conversation, Message
from tunelab.train.bake_inputs import question_groups, same_question_key
from tunelab.train.recipes.bake import split_by_question

SEEDS = range(12)


# --- the old functions, verbatim (only renamed), as the reference ----------------------------


def old_split(convs, val_fraction: float, seed: int):
    order = list(convs)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(order) > 1:
        n_val = 1
    return order[n_val:], order[:n_val]


def old_split_by_question(records, fraction: float, seed: int, jaccard: float | None = None):
    groups = question_groups(sorted({same_question_key(r.question) for r in records}), jaccard=jaccard)
    random.Random(seed).shuffle(groups)
    target, held = round(sum(map(len, groups)) * fraction), set()
    for group in groups:
        if len(held) >= target:
            break
        if len(group) < 2 * (target - len(held)):  # closer to the target with it than without
            held |= set(group)
    if not held and target:  # every group is bigger than the target: hold out the smallest
        held = set(min(groups, key=len))
    train = [r for r in records if same_question_key(r.question) not in held]
    return train, [r for r in records if same_question_key(r.question) in held]


def old_split_by_group(logs, fraction: float, seed: int):
    groups = sorted({r["group"] for r in logs})
    random.Random(seed).shuffle(groups)
    target, held, n_held = fraction * len(logs), set(), 0
    sizes = collections.Counter(r["group"] for r in logs)
    for g in groups:
        if n_held >= target:
            break
        held.add(g)
        n_held += sizes[g]
    return [r for r in logs if r["group"] not in held], [r for r in logs if r["group"] in held]


def old_split_by_opening(rows, held_fraction: float, seed: int):
    groups = sorted({opening(r) for r in rows})
    random.Random(seed).shuffle(groups)
    held = set(groups[: round(len(groups) * held_fraction)])
    return [r for r in rows if opening(r) not in held], [r for r in rows if opening(r) in held]


def old_split_by_dialogue(convs: Sequence[Conversation], n_train: int, n_val: int, n_eval: int, seed: int):
    unique, dropped = dedupe(sorted(convs, key=lambda c: c.id))
    wanted = n_train + n_val + n_eval
    order = list(unique)
    random.Random(seed).shuffle(order)
    return order[n_eval + n_val : wanted], order[n_eval : n_eval + n_val], order[:n_eval], dropped


# --- inputs ----------------------------------------------------------------------------------


def _convs(n: int, copies: int = 0) -> list[Conversation]:
    convs = [
        Conversation(id=f"c{i:03d}", messages=(Message("user", f"order {i % 37} {i}"), Message("assistant", "ok")))
        for i in range(n)
    ]
    return convs + [Conversation(id=f"copy{i}", messages=convs[i].messages) for i in range(copies)]


WORDS = [
    "library",
    "tuition",
    "dormitory",
    "exam",
    "card",
    "leave",
    "password",
    "scholarship",
    "thesis",
    "parking",
    "canteen",
    "sports",
    "visa",
    "transcript",
    "printing",
    "wifi",
]


def _records(n: int, rng: random.Random) -> list[LogRecord]:
    questions = [f"When is the {a} {b} open?" for a in WORDS for b in WORDS[:3]] + [f"Who handles {w}?" for w in WORDS]
    return [
        LogRecord(id=str(i), question=rng.choice(questions) + rng.choice(["", "  ", " ?"]), answer="a", label=True)
        for i in range(n)
    ]


def _logs(n: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{"id": str(i), "group": f"g{rng.randrange(max(1, n // 4)):03d}"} for i in range(n)]


def _judgements(n: int, rng: random.Random) -> list[dict[str, Any]]:
    openings = [f"I'd like a {w} please" for w in WORDS]
    return [
        {
            "id": str(i),
            "context": [
                {"role": "user", "content": rng.choice(openings) + rng.choice(["", "  "])},
                {"role": "assistant", "content": "sure"},
            ],
        }
        for i in range(n)
    ]


# --- each caller against its old function ----------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 40, 101])
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.1, 0.2, 0.5, 0.9])
def test_split_is_the_old_split(n: int, fraction: float) -> None:
    convs = _convs(n)
    for seed in SEEDS:
        assert split(convs, fraction, seed) == old_split(convs, fraction, seed)


@pytest.mark.parametrize("n", [1, 5, 30, 120])
@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.2, 0.5])
@pytest.mark.parametrize("jaccard", [None, 0.5])
def test_split_by_question_is_the_old_one(n: int, fraction: float, jaccard: float | None) -> None:
    records = _records(n, random.Random(n))
    for seed in SEEDS:
        assert split_by_question(records, fraction, seed, jaccard) == old_split_by_question(
            records, fraction, seed, jaccard
        )


def test_split_by_question_is_the_old_one_with_one_huge_group() -> None:
    big = [
        LogRecord(id=str(i), question=f"Where is the library room {i} for the {w} course?", answer="a", label=True)
        for i, w in enumerate(WORDS)
    ]
    records = big + _records(20, random.Random(0))
    for fraction in (0.05, 0.2, 0.6):
        for seed in SEEDS:
            assert split_by_question(records, fraction, seed) == old_split_by_question(records, fraction, seed)


@pytest.mark.parametrize("n", [0, 1, 9, 50, 600])
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.2, 0.33, 1.0])
def test_split_by_group_is_the_old_one(n: int, fraction: float) -> None:
    logs = _logs(n, random.Random(n))
    for seed in SEEDS:
        assert split_by_group(logs, fraction, seed) == old_split_by_group(logs, fraction, seed)


@pytest.mark.parametrize("n", [0, 1, 4, 60, 300])
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.2, 0.5])
def test_split_by_opening_is_the_old_one(n: int, fraction: float) -> None:
    rows = _judgements(n, random.Random(n))
    for seed in SEEDS:
        assert split_by_opening(rows, fraction, seed) == old_split_by_opening(rows, fraction, seed)


@pytest.mark.parametrize("sizes", [(1, 0, 1), (10, 3, 5), (40, 0, 20), (5, 5, 5), (20, 10, 30)])
def test_split_by_dialogue_is_the_old_one(sizes: tuple[int, int, int]) -> None:
    convs = _convs(60, copies=4)
    for seed in SEEDS:
        new = split_by_dialogue(convs, *sizes, seed=seed)
        assert (new.train, new.val, new.eval, new.duplicates_dropped) == old_split_by_dialogue(convs, *sizes, seed=seed)


# --- the function itself ---------------------------------------------------------------------


@pytest.mark.parametrize("closest", [False, True])
def test_groups_never_straddle_the_sides(closest: bool) -> None:
    items = [(f"g{i % 13}", i) for i in range(200)]
    for seed in SEEDS:
        kept, held = grouped_split(items, lambda x: x[0], seed, fraction=0.25, closest=closest)
        assert sorted(kept + held) == sorted(items) and held
        assert not {g for g, _ in kept} & {g for g, _ in held}
        assert kept == [x for x in items if x in kept]  # input order kept


def test_count_and_shuffled_order() -> None:
    items = list(range(20))
    kept, held = grouped_split(items, None, 7, count=5, shuffled=True)
    order = list(items)
    random.Random(7).shuffle(order)
    assert (held, kept) == (order[:5], order[5:])


def test_closest_skips_a_group_that_overshoots() -> None:
    items = ["big"] * 10 + ["a", "b", "c"]  # sorted groups: a, b, big, c
    for seed in SEEDS:
        _, held = grouped_split(items, str, seed, count=2, closest=True)
        assert "big" not in held and len(held) == 2
    _, held = grouped_split(["big"] * 10 + ["mid"] * 4, str, 0, count=1, closest=True)
    assert held == ["mid"] * 4  # nothing fits: the smallest group


def test_needs_exactly_one_of_fraction_and_count() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        grouped_split([1, 2], None, 0)
    with pytest.raises(ValueError, match="exactly one"):
        grouped_split([1, 2], None, 0, fraction=0.5, count=1)

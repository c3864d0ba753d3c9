"""Exact-duplicate removal and the one seeded, grouped split every held-out set is drawn with."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tunelab.messages import Conversation
from tunelab.rundir import write_jsonl

T = TypeVar("T")
log = logging.getLogger(__name__)


def fingerprint(conv: Conversation) -> str:
    """Same messages -> same fingerprint, whatever the id or source line."""
    payload = json.dumps([m.to_openai() for m in conv.messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def dedupe(convs: list[Conversation], seen: set[str] | None = None) -> tuple[list[Conversation], int]:
    """Keep the first of each exact duplicate (and drop those already in `seen`); return the count removed."""
    seen = set() if seen is None else seen
    kept = []
    for conv in convs:
        key = fingerprint(conv)
        if key not in seen:
            seen.add(key)
            kept.append(conv)
    return kept, len(convs) - len(kept)


def grouped_split(
    items: Sequence[T],
    key: Callable[[T], Hashable] | None,
    seed: int,
    *,
    fraction: float | None = None,
    count: int | None = None,
    closest: bool = False,
    shuffled: bool = False,
) -> tuple[list[T], list[T]]:
    """(kept, held): whole groups of items held out, so a group never straddles the two sides.

    The groups (the distinct `key` values, sorted; with `key=None` every item alone, in the given
    order) are shuffled with `seed` and taken in that order until the held items reach the target:
    `count` items, or round(fraction * len(items)). By default each group is taken until the target
    is met, the last one may overshoot it; with `closest` a group is taken only when it brings the
    held count closer to the target (so one huge group cannot swallow the kept side), and if none
    does, the smallest. Each side keeps the input order, or with `shuffled` the shuffled order.
    """
    if (fraction is None) == (count is None):
        raise ValueError("give exactly one of fraction and count")
    labels: list[Hashable] = list(range(len(items))) if key is None else [key(x) for x in items]
    groups = list(range(len(items))) if key is None else sorted(set(labels))
    random.Random(seed).shuffle(groups)
    target = count if count is not None else round(len(items) * fraction)
    held = set(_take(groups, Counter(labels), target, closest))
    order = range(len(items))
    if shuffled:
        rank = {g: i for i, g in enumerate(groups)}
        order = sorted(order, key=lambda i: rank[labels[i]])
    return [items[i] for i in order if labels[i] not in held], [items[i] for i in order if labels[i] in held]


def _take(groups: list[Hashable], sizes: Counter, target: int, closest: bool) -> list[Hashable]:
    """The groups held out, in the order taken (see grouped_split)."""
    held: list[Hashable] = []
    n_held = 0
    for group in groups:
        if n_held >= target:
            break
        if not closest or sizes[group] < 2 * (target - n_held):  # with closest: nearer the target with it than without
            held.append(group)
            n_held += sizes[group]
    if closest and not held and target:  # every group is bigger than the target: hold out the smallest
        held = [min(groups, key=sizes.__getitem__)]
    return held


def split(convs: list[Conversation], val_fraction: float, seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """Shuffle with `seed` and hold out round(val_fraction * n) conversations (at least 1 if asked for any)."""
    n_val = round(len(convs) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(convs) > 1:
        n_val = 1
    return grouped_split(convs, None, seed, count=n_val, shuffled=True)


@dataclass
class DialogueSplit:
    train: list[Conversation]
    val: list[Conversation]
    eval: list[Conversation]
    duplicates_dropped: int = 0


def split_by_dialogue(convs: Sequence[Conversation], n_train: int, n_val: int, n_eval: int, seed: int) -> DialogueSplit:
    """Disjoint eval / val / train dialogues from a seeded shuffle (eval first, then val, then train),
    so the eval dialogues depend only on `seed` and `n_eval`, not on how many are trained on.

    Exact duplicates (same messages under another id) are dropped before the split, so a copy of
    an eval dialogue cannot reach training.
    """
    # Sorted first, so that which copy of a duplicate survives does not depend on the file order.
    unique, dropped = dedupe(sorted(convs, key=lambda c: c.id))
    if dropped:
        log.info("dropped %d exact duplicate dialogues before the split", dropped)
    wanted = n_train + n_val + n_eval
    if min(n_train, n_eval) < 1 or n_val < 0:
        raise ValueError(f"need --train >= 1, --eval >= 1, --val >= 0; got {n_train}, {n_eval}, {n_val}")
    if wanted > len(unique):
        raise ValueError(
            f"asked for {wanted} dialogues ({n_train} train + {n_val} val + {n_eval} eval) "
            f"but only {len(unique)} distinct ones exist"
        )
    rest, held = grouped_split(unique, None, seed, count=n_eval, shuffled=True)
    return DialogueSplit(train=rest[n_val : wanted - n_eval], val=rest[:n_val], eval=held, duplicates_dropped=dropped)


def write_subsets(split: DialogueSplit, folder: Path) -> dict[str, Path]:
    """train.jsonl, val.jsonl and eval.jsonl in `folder`, as OpenAI chat rows; returns their paths."""
    paths = {}
    for name in ("train", "val", "eval"):
        paths[name] = folder / f"{name}.jsonl"
        write_jsonl(paths[name], [c.to_openai() for c in getattr(split, name)])
    return paths

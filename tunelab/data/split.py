"""Exact-duplicate removal and a seeded train/validation split by conversation."""

from __future__ import annotations

import hashlib
import json
import random

from tunelab.messages import Conversation


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


def split(convs: list[Conversation], val_fraction: float, seed: int) -> tuple[list[Conversation], list[Conversation]]:
    """Shuffle with `seed` and hold out round(val_fraction * n) conversations (at least 1 if asked for any)."""
    order = list(convs)
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(order) > 1:
        n_val = 1
    return order[n_val:], order[:n_val]

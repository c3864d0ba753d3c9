"""The cut of a padded batch into groups of similar length: every row once, at the least cost."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from tunelab.train.length_groups import group_rows, length_groups, row_extents


def cost(extents: list[int], groups: list[list[int]], group_cost: int) -> int:
    return sum(len(g) * max(extents[i] for i in g) + group_cost for g in groups)


def partitions(items: list[int]):
    """Every set partition of `items` (Bell(7) = 877 for seven rows)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        yield [[first], *smaller]
        for k in range(len(smaller)):
            yield smaller[:k] + [[first, *smaller[k]]] + smaller[k + 1 :]


@given(st.lists(st.integers(1, 400), min_size=1, max_size=7), st.integers(0, 300))
def test_the_cut_is_the_cheapest_of_every_partition(extents, group_cost):
    groups = length_groups(extents, group_cost)
    assert sorted(i for g in groups for i in g) == list(range(len(extents)))  # every row, once
    cheapest = min(cost(extents, p, group_cost) for p in partitions(list(range(len(extents)))))
    assert cost(extents, groups, group_cost) == cheapest


def test_a_free_cut_gives_each_length_its_own_group_and_a_dear_one_keeps_the_batch():
    extents = [120, 300, 120, 90]
    assert sorted(map(sorted, length_groups(extents, 0))) == [[0, 2], [1], [3]]
    assert length_groups(extents, 10_000) == [[3, 0, 2, 1]]


def test_extents_trim_right_padding_and_keep_left_padding():
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]])
    assert row_extents(mask) == [3, 5, 4, 5]
    batch = {"input_ids": torch.arange(20).view(4, 5), "attention_mask": mask, "other": 7}
    part = group_rows(batch, [2, 0], 4)
    assert part.keys() == {"input_ids", "attention_mask"}
    assert part["input_ids"].tolist() == [[10, 11, 12, 13], [0, 1, 2, 3]]

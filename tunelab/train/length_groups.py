"""A padded batch cut into groups of rows of similar length, each run at its own width.

A batch of dialogues padded to its longest row spends its padded positions' products and attention
for nothing (about 30% of a batch of 8 cafe dialogues). Running the rows in a few groups of similar
length, each padded only to its own longest, takes most of that out; every group costs a fixed
amount more (the calls of one more pass through the layers), so the cut minimises the padded
positions plus that cost per group. The loss and gradients are the batch's (the same sum over the
same target tokens), so what is learned per step does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

# What one more group costs, in padded positions: less than a whole extra step, which is worth
# roughly 50 positions on a Zen 4 and 150 on a Xeon with AMX (the best of the values measured:
# docs/performance.md, "A padded batch run in groups of similar length").
GROUP_COST = 96


def row_extents(attention_mask: torch.Tensor) -> list[int]:
    """Each row's width up to its last attended position (right padding trims to the length; a row
    padded on the left keeps its full width)."""
    positions = torch.arange(1, attention_mask.shape[1] + 1)
    return (attention_mask.bool() * positions).amax(dim=1).tolist()


def length_groups(extents: Sequence[int], group_cost: int = GROUP_COST) -> list[list[int]]:
    """Row indices in groups: the rows sorted by extent and cut where the padded positions saved
    outweigh `group_cost` (an exact dynamic programme over the sorted order, where an optimal cut
    always lies). One group when nothing is worth cutting.

    >>> length_groups([100, 300, 110, 290], group_cost=96)
    [[0, 2], [3, 1]]
    >>> length_groups([100, 120, 110], group_cost=96)
    [[0, 2, 1]]
    """
    order = sorted(range(len(extents)), key=lambda i: extents[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: the cheapest cut of the j shortest rows
    cut_at = [0] * (n + 1)
    for j in range(1, n + 1):
        width = extents[order[j - 1]]  # the group order[i:j] is padded to its longest, the j-th
        for i in range(j):
            cost = best[i] + (j - i) * width + group_cost
            if cost < best[j]:
                best[j], cut_at[j] = cost, i
    groups, j = [], n
    while j:
        groups.append(order[cut_at[j] : j])
        j = cut_at[j]
    return groups[::-1]


def group_rows(inputs: dict[str, torch.Tensor], rows: list[int], width: int) -> dict[str, torch.Tensor]:
    """The batch's tensors for `rows`, trimmed to `width` columns."""
    index = torch.tensor(rows)
    return {k: v[index, :width] for k, v in inputs.items() if isinstance(v, torch.Tensor) and v.dim() == 2}

"""Token-level pieces every generator shares: which ids end a turn, and left padding.

The serving engine, chat sessions and the batched reply generator all stop on the same ids and
pad the same way, so a reply does not depend on which of them produced it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# End-of-turn markers of common chat templates; whichever the tokenizer knows also stops generation.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


def stop_token_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """The EOS id(s) of the tokenizer and model, plus any end-of-turn token the vocabulary has (sorted)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        ids.update(i for i in ([config_eos] if isinstance(config_eos, int) else config_eos) if i is not None)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return sorted(ids)


def pad_token_id(tokenizer: Any, stop_ids: Sequence[int]) -> int:
    """The tokenizer's pad id, or the smallest stop id for tokenizers without one (masked out anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stop_ids)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors with each prompt right-aligned: padding on the left keeps
    every row's last prompt token next to its first generated one."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
    return ids, mask

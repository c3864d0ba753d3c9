"""A tiny decoder-only transformer whose attention patterns can be read out and replaced.

Plain PyTorch rather than a transformers config because experiment (g) trains a model whose
attention *probabilities* come from another model; that needs a forward pass that accepts them,
which no library model offers without patching its internals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    max_len: int
    d_model: int = 128
    n_layer: int = 4
    n_head: int = 4


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(
        self, x: torch.Tensor, pattern: torch.Tensor | None, want: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        if pattern is None and not want:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if pattern is None:
                scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
                causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
                pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
            y = pattern @ v
        return self.proj(y.transpose(1, 2).reshape(b, t, d)), (pattern if want else None)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn = Attention(cfg)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, 4 * cfg.d_model), nn.GELU(), nn.Linear(4 * cfg.d_model, cfg.d_model)
        )

    def forward(
        self, x: torch.Tensor, pattern: torch.Tensor | None, want: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, p = self.attn(self.ln1(x), pattern, want)
        x = x + a
        return x + self.mlp(self.ln2(x)), p


class TinyGPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(
        self, ids: torch.Tensor, patterns: list[torch.Tensor] | None = None, return_patterns: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits [b, t, vocab]; `patterns` (one [b, heads, t, t] per layer) replace the model's own."""
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        seen = []
        for i, block in enumerate(self.blocks):
            x, p = block(x, None if patterns is None else patterns[i], return_patterns)
            if p is not None:
                seen.append(p)
        return self.ln_f(x) @ self.tok.weight.T, seen


def lm_loss(logits: torch.Tensor, ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Next-token cross-entropy over every non-pad target (biographies are trained on all words)."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=pad_id)

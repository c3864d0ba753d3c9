"""Measurements: attribute loss, recall accuracy, confidence, the no-knowledge baseline,
automatic phase detection and power-law fits. Pure functions apart from `probe`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from knowledge_lab.data import ATTRIBUTES, Population, ProbeSet, World


@dataclass
class ProbeResult:
    loss: float  # mean NLL (nats) over attribute-value tokens
    accuracy: float  # fraction of (individual, attribute) whose whole value greedy decoding recalls
    confidence: float  # mean probability of the model's own top prediction at value tokens
    per_person: np.ndarray  # accuracy per probed individual, in probe order of first appearance

    def as_dict(self) -> dict[str, float]:
        return {"loss": self.loss, "accuracy": self.accuracy, "confidence": self.confidence}


@torch.no_grad()
def probe(model: torch.nn.Module, probes: ProbeSet, batch: int = 1024) -> ProbeResult:
    """Teacher-forced pass over held-out-template sentences.

    Greedy decoding of a value is exactly right iff the argmax is right at every value position
    given the right prefix, so teacher forcing gives exact-recall accuracy in one pass.
    """
    was_training = model.training
    model.eval()
    nll, correct, conf, counts = [], [], [], []
    for lo in range(0, len(probes.ids), batch):
        ids, tgt = probes.ids[lo : lo + batch], probes.target[lo : lo + batch]
        logp = model(ids)[0].log_softmax(-1)
        nxt = torch.roll(ids, -1, dims=1)
        tok_nll = -logp.gather(-1, nxt.unsqueeze(-1)).squeeze(-1)
        top_p, top_i = logp.max(-1)
        nll.append(tok_nll[tgt])
        conf.append(top_p.exp()[tgt])
        hit = (top_i == nxt) | ~tgt
        correct.append(hit.all(-1))
        counts.append(tgt.sum(-1))
    model.train(was_training)
    correct_t = torch.cat(correct).float().numpy()
    _, first = np.unique(probes.person, return_index=True)
    order = probes.person[np.sort(first)]
    per_person = np.array([correct_t[probes.person == p].mean() for p in order])
    return ProbeResult(
        loss=float(torch.cat(nll).mean()),
        accuracy=float(correct_t.mean()),
        confidence=float(torch.cat(conf).mean()),
        per_person=per_person,
    )


def entropy(values: list) -> float:
    """Entropy (nats) of the empirical distribution of `values`."""
    counts = np.array(list(Counter(values).values()), dtype=np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def no_knowledge_baseline(world: World, pop: Population) -> float:
    """Best mean loss per value token for a model that knows the value statistics but no individual.

    For each attribute and each value-token position, the optimum without knowing *who* is the
    empirical marginal distribution, whose expected loss is its entropy. Value positions are
    independent by construction (day, month and year are drawn independently of each other),
    so per-position marginals lose nothing. Averaged with the weights `probe` uses: every
    value token of every (individual, attribute) pair counts once.
    """
    total, n_tokens = 0.0, 0
    for attr in ATTRIBUTES:
        tuples = [world.choices[attr][v] for v in pop.values[attr]]
        for pos in range(len(tuples[0])):
            total += entropy([t[pos] for t in tuples])
            n_tokens += 1
    return total / n_tokens


def uniform_guess_loss(world: World) -> float:
    """Loss of a model that spreads probability evenly over the whole vocabulary."""
    return float(np.log(len(world.vocab)))


def smooth(values: list[float], window: int = 3) -> np.ndarray:
    """Running median: a single noisy evaluation should not start or end a phase."""
    arr = np.asarray(values, dtype=np.float64)
    half = window // 2
    return np.array([np.median(arr[max(0, i - half) : i + half + 1]) for i in range(len(arr))])


def detect_phases(steps: list[int], losses: list[float], baseline: float, tol: float | None = None) -> dict:
    """Plateau start: first step the (smoothed) attribute loss is within `tol` of the baseline.
    Plateau end (knowledge emergence): first later step it falls `tol` below the baseline.

    `tol` defaults to 5% of the baseline (at least 0.05 nats). An end of None means the plateau
    outlasted the run.
    """
    tol = max(0.05, 0.05 * baseline) if tol is None else tol
    s = smooth(losses)
    start = next((i for i, v in enumerate(s) if v <= baseline + tol), None)
    end = None if start is None else next((i for i in range(start, len(s)) if s[i] <= baseline - tol), None)
    return {
        "baseline": baseline,
        "tolerance": tol,
        "plateau_start": None if start is None else int(steps[start]),
        "plateau_end": None if end is None else int(steps[end]),
        "plateau_length": None if start is None or end is None else int(steps[end] - steps[start]),
    }


def fit_power_law(x: list[float], y: list[float]) -> dict[str, float]:
    """Least-squares fit of log y = log c + k log x; returns the exponent k, c and R^2."""
    lx, ly = np.log(np.asarray(x, dtype=np.float64)), np.log(np.asarray(y, dtype=np.float64))
    if len(lx) < 2:
        raise ValueError(f"a power law needs at least 2 points, got {len(lx)}")
    k, logc = np.polyfit(lx, ly, 1)
    pred = k * lx + logc
    ss_res, ss_tot = float(((ly - pred) ** 2).sum()), float(((ly - ly.mean()) ** 2).sum())
    return {"exponent": float(k), "coefficient": float(np.exp(logc)), "r2": 1.0 - ss_res / ss_tot if ss_tot else 1.0}

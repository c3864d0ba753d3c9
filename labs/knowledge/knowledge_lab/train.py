"""The training loop shared by every experiment: AdamW, cosine decay without warm-up, periodic
probes of attribute loss/accuracy, optional attention patterns from a frozen reference model."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from knowledge_lab.data import PAD, World, biography_batch, make_world, probe_set, sampling_weights
from knowledge_lab.measure import ProbeResult, detect_phases, no_knowledge_baseline, probe
from knowledge_lab.model import ModelConfig, TinyGPT, lm_loss

log = logging.getLogger(__name__)
Sampler = Callable[[int, np.random.Generator], torch.Tensor]


def set_threads(n: int | None = None) -> int:
    """One thread by default: this model's 64-wide matmuls gain little from a second thread, and on
    a shared machine two threads are slower per step, waiting on each other whenever another
    process holds a core."""
    n = n or int(os.environ.get("TUNELAB_LAB_THREADS", "1"))
    n = max(1, min(n, os.cpu_count() or 1))
    torch.set_num_threads(n)
    return n


@dataclass(frozen=True)
class Spec:
    """One pre-training run. Frozen and hashable so `all` can reuse a run several experiments share."""

    n_people: int
    steps: int
    n_heldout: int = 200
    n_new: int = 0  # a third population, unseen in pre-training, for the fine-tuning experiment
    alpha: float = 0.0
    warmup_fraction: float = 0.0  # share of steps spent on a subset of individuals first
    warmup_subset: float = 0.1  # that subset, as a share of n_people
    batch: int = 32
    lr: float = 3e-3
    d_model: int = 64
    n_layer: int = 2
    n_head: int = 4
    eval_every: int = 50
    n_probe: int = 200  # individuals probed per population at each evaluation
    seed: int = 0  # the world (people, values, templates) and the data order
    init_seed: int | None = None  # the model's initial weights; None means `seed`
    stop_after_emergence: bool = False  # (b) only needs the plateau's end: stop there to save time

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Run:
    spec: Spec
    world: World
    model: TinyGPT
    history: list[dict]  # one row per evaluation: step, lr, lm_loss, <pop>_loss/accuracy/confidence
    checkpoints: dict[int, dict]  # step -> state_dict, for attention patching
    final: dict[str, ProbeResult]


def make_model(world: World, spec: Spec) -> TinyGPT:
    torch.manual_seed(spec.seed if spec.init_seed is None else spec.init_seed)
    cfg = ModelConfig(len(world.vocab), world.max_len, spec.d_model, spec.n_layer, spec.n_head)
    return TinyGPT(cfg)


def population_sampler(world: World, spec: Spec) -> Sampler:
    pop = world.populations["train"]
    weights = sampling_weights(len(pop), spec.alpha)
    warm_steps = int(spec.warmup_fraction * spec.steps)
    subset = max(1, int(spec.warmup_subset * len(pop)))

    def sample(step: int, rng: np.random.Generator) -> torch.Tensor:
        if step < warm_steps:
            people = rng.integers(0, subset, size=spec.batch)
        else:
            people = rng.choice(len(pop), size=spec.batch, p=weights)
        return biography_batch(world, pop, people, rng)

    return sample


def probe_sets(world: World, n_probe: int, seed: int) -> dict:
    """Fixed probes per population: the same individuals and templates at every evaluation."""
    rng = np.random.default_rng(seed + 1)
    out = {}
    for name, pop in world.populations.items():
        people = np.sort(rng.choice(len(pop), size=min(n_probe, len(pop)), replace=False))
        out[name] = probe_set(world, pop, people, rng)
    return out


def fit(
    model: TinyGPT,
    world: World,
    sampler: Sampler,
    steps: int,
    lr: float,
    probes: dict,
    eval_every: int,
    seed: int,
    reference: TinyGPT | None = None,
    stop: Callable[[list[dict]], bool] | None = None,
    checkpoint_every: int = 0,
    desc: str = "train",
) -> tuple[list[dict], dict[int, dict]]:
    """Train `model` in place; returns the evaluation history and any checkpoints taken."""
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.01)
    pad = world.vocab.index[PAD]
    history, checkpoints, running = [], {}, []
    if reference is not None:
        reference.eval()
    model.train()
    bar = tqdm(range(steps + 1), desc=desc, leave=False, mininterval=1.0, disable=None)
    for step in bar:
        if step % eval_every == 0 or step == steps:
            row = {"step": step, "lr": sched.get_last_lr()[0], "lm_loss": float(np.mean(running)) if running else None}
            for name, ps in probes.items():
                row.update({f"{name}_{k}": v for k, v in probe(model, ps).as_dict().items()})
            history.append(row)
            running = []
            bar.set_postfix(attr_loss=f"{row.get('train_loss', 0):.2f}", acc=f"{row.get('train_accuracy', 0):.2f}")
            if bar.disable and len(history) % 10 == 1:  # no terminal (a background run): still show progress
                log.info(
                    "%s step %d/%d attribute loss %.3f accuracy %.3f",
                    desc,
                    step,
                    steps,
                    row.get("train_loss", float("nan")),
                    row.get("train_accuracy", float("nan")),
                )
            if stop is not None and stop(history):
                break
        if checkpoint_every and step % checkpoint_every == 0:
            checkpoints[step] = copy.deepcopy(model.state_dict())
        if step == steps:
            break
        ids = sampler(step, rng)
        patterns = None
        if reference is not None:
            with torch.no_grad():
                patterns = reference(ids, return_patterns=True)[1]
        loss = lm_loss(model(ids, patterns)[0], ids, pad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
    bar.close()
    return history, checkpoints


def emergence_stop(world: World) -> Callable[[list[dict]], bool]:
    """True once the attribute loss has fallen clearly below the no-knowledge baseline."""
    baseline = no_knowledge_baseline(world, world.populations["train"])

    def stop(history: list[dict]) -> bool:
        ph = detect_phases([h["step"] for h in history], [h["train_loss"] for h in history], baseline)
        return ph["plateau_end"] is not None

    return stop


def pretrain(spec: Spec, checkpoint_every: int = 0, reference: TinyGPT | None = None, desc: str = "pretrain") -> Run:
    """Build the world and the model for `spec` and train; the world depends only on sizes and seed."""
    sizes = {"train": spec.n_people, "heldout": spec.n_heldout, "new": spec.n_new}
    world = make_world({k: v for k, v in sizes.items() if v}, spec.seed)
    model = make_model(world, spec)
    probes = {k: v for k, v in probe_sets(world, spec.n_probe, spec.seed).items() if k != "new"}
    history, ckpts = fit(
        model,
        world,
        population_sampler(world, spec),
        spec.steps,
        spec.lr,
        probes,
        spec.eval_every,
        spec.seed,
        reference=reference,
        stop=emergence_stop(world) if spec.stop_after_emergence else None,
        checkpoint_every=checkpoint_every,
        desc=desc,
    )
    final = {name: probe(model, ps) for name, ps in probes.items()}
    return Run(spec, world, model, history, ckpts, final)

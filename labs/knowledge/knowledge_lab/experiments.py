"""The seven experiments (a)-(g). Each returns a `Result`: numbers, curves and figures.

A `Lab` holds the scale (quick or full) and a cache of pre-training runs keyed by their frozen
`Spec`, so `all` trains the shared uniform run once and (a), (c), (d), (e), (f), (g) reuse it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from knowledge_lab import plots
from knowledge_lab.data import biography_batch
from knowledge_lab.measure import detect_phases, fit_power_law, no_knowledge_baseline
from knowledge_lab.train import Run, Spec, fit, pretrain, probe_sets


@dataclass(frozen=True)
class Scale:
    base: Spec
    scaling_ns: tuple[int, ...]
    scaling_steps: int  # one cosine horizon for every N, so plateau lengths are comparable
    scaling_eval_every: int  # finer than the base run: short plateaus at small N need the resolution
    alphas: tuple[float, ...]
    warmup_fraction: float
    warmup_subset: float
    ft_steps: int
    ft_lr: float
    replay: float  # share of each fine-tuning batch drawn from the old individuals
    patch_stages: tuple[str, ...] = ("init", "plateau_start", "plateau_mid", "plateau_end", "final")


def scale(quick: bool, seed: int) -> Scale:
    if quick:
        base = Spec(
            n_people=16,
            n_heldout=16,
            n_new=16,
            steps=80,
            batch=16,
            d_model=32,
            n_layer=2,
            n_head=2,
            lr=1e-2,
            eval_every=10,
            n_probe=16,
            seed=seed,
        )
        return Scale(base, (8, 16, 32), 120, 10, (0.0, 1.0), 0.3, 0.25, 40, 3e-3, 0.5, ("init", "plateau_mid", "final"))
    # Sized so (a)-(f) fit in about half an hour on a laptop CPU (about 10,600 optimizer steps in all).
    base = Spec(
        n_people=400,
        n_heldout=150,
        n_new=150,
        steps=1500,
        batch=16,
        d_model=64,
        n_layer=2,
        n_head=4,
        lr=3e-3,
        eval_every=25,
        n_probe=150,
        seed=seed,
    )
    return Scale(base, (125, 250, 500, 1000), 3000, 10, (0.0, 0.4, 0.8, 1.2), 0.25, 0.1, 400, 1e-3, 0.5)


@dataclass
class Result:
    name: str
    title: str
    numbers: dict
    curves: list[dict]  # rows for metrics.jsonl
    figures: dict = field(default_factory=dict)  # file stem -> matplotlib Figure
    notes: list[str] = field(default_factory=list)


class Lab:
    def __init__(self, sc: Scale) -> None:
        self.sc = sc
        self.runs: dict[Spec, Run] = {}
        self.results: dict[str, Result] = {}

    def run(self, spec: Spec, desc: str, **kw) -> Run:
        if spec not in self.runs:
            self.runs[spec] = pretrain(spec, desc=desc, **kw)
        return self.runs[spec]

    def base(self) -> Run:
        # Checkpoints at every evaluation feed attention patching (g); they are a few MB at most.
        return self.run(self.sc.base, "uniform", checkpoint_every=self.sc.base.eval_every)


def phases_of(run: Run) -> dict:
    steps = [h["step"] for h in run.history]
    baseline = no_knowledge_baseline(run.world, run.world.populations["train"])
    return detect_phases(steps, [h["train_loss"] for h in run.history], baseline)


def heldout_baseline(run: Run) -> float:
    """For unseen people the best achievable is the *generating* distribution's entropy per token."""
    choices = run.world.choices
    per_pos = [np.log(len({v[p] for v in vals})) for vals in choices.values() for p in range(len(vals[0]))]
    return float(np.mean(per_pos))


def exp_phases(lab: Lab) -> Result:
    run = lab.base()
    ph = phases_of(run)
    uniform = float(np.log(len(run.world.vocab)))
    numbers = {
        "scale": run.spec.as_dict(),
        "uniform_guess_loss": uniform,
        **ph,
        "initial_loss": run.history[0]["train_loss"],
        "final_loss": run.final["train"].loss,
        "final_accuracy": run.final["train"].accuracy,
    }
    fig = plots.phases(run.history, ph, uniform)
    return Result("phases", "(a) Learning curve and its three phases", numbers, run.history, {"phases": fig})


def exp_plateau(lab: Lab) -> Result:
    rows, curves = [], []
    for n in lab.sc.scaling_ns:
        spec = replace(
            lab.sc.base,
            n_people=n,
            n_new=0,
            steps=lab.sc.scaling_steps,
            stop_after_emergence=True,
            eval_every=lab.sc.scaling_eval_every,
            n_probe=min(lab.sc.base.n_probe, 100),
        )
        run = lab.run(spec, f"N={n}")
        ph = phases_of(run)
        rows.append({"n_people": n, **ph})
        curves += [{"n_people": n, **h} for h in run.history]
    done = [r for r in rows if r["plateau_length"]]
    numbers: dict = {"points": rows, "paper_exponent": 0.81}
    if len(done) >= 2:
        numbers["fit"] = fit_power_law([r["n_people"] for r in done], [r["plateau_length"] for r in done])
    ended = [r for r in rows if r["plateau_end"]]
    if len(ended) >= 2:  # time to knowledge emergence, a second view less sensitive to where phase 1 ends
        numbers["fit_plateau_end"] = fit_power_law([r["n_people"] for r in ended], [r["plateau_end"] for r in ended])
    notes = [
        f"N={r['n_people']}: plateau outlasted {lab.sc.scaling_steps} steps (censored, left out of the fit)"
        for r in rows
        if r["plateau_end"] is None
    ]
    notes += [
        f"N={r['n_people']}: loss crossed the baseline band between two evaluations (no plateau resolved, "
        "left out of the fit)"
        for r in rows
        if r["plateau_length"] == 0
    ]
    fig = plots.plateau_scaling(rows, numbers.get("fit"), numbers.get("fit_plateau_end"))
    return Result(
        "plateau",
        "(b) Plateau length against the number of individuals",
        numbers,
        curves,
        {"plateau_scaling": fig, "plateau_curves": plots.curves_by(curves, "n_people", "train_loss")},
        notes,
    )


def exp_alpha(lab: Lab) -> Result:
    rows, curves = [], []
    for a in lab.sc.alphas:
        run = lab.base() if a == 0 else lab.run(replace(lab.sc.base, alpha=a), f"alpha={a}")
        pp = run.final["train"].per_person  # probed people are sorted, so index order = popularity order
        half = len(pp) // 2
        rows.append(
            {
                "alpha": a,
                "accuracy": run.final["train"].accuracy,
                "loss": run.final["train"].loss,
                "head_accuracy": float(pp[:half].mean()),
                "tail_accuracy": float(pp[half:].mean()),
                **{k: v for k, v in phases_of(run).items() if k.startswith("plateau")},
            }
        )
        curves += [{"alpha": a, **h} for h in run.history]
    best = max(rows, key=lambda r: r["accuracy"])
    numbers = {
        "points": rows,
        "best_alpha": best["alpha"],
        "best_accuracy": best["accuracy"],
        "steps": lab.sc.base.steps,
        "paper_best_alpha": "0.6-0.8",
    }
    return Result(
        "alpha",
        "(c) Imbalanced individuals: accuracy over all people at a fixed budget",
        numbers,
        curves,
        {"alpha": plots.alpha_tradeoff(rows), "alpha_curves": plots.curves_by(curves, "alpha", "train_accuracy")},
    )


def exp_curriculum(lab: Lab) -> Result:
    alpha = lab.results.get("alpha") or exp_alpha(lab)
    best_a = alpha.numbers["best_alpha"]
    spec = replace(lab.sc.base, warmup_fraction=lab.sc.warmup_fraction, warmup_subset=lab.sc.warmup_subset)
    arms = {
        "uniform": lab.base(),
        f"best alpha={best_a}": lab.run(replace(lab.sc.base, alpha=best_a), f"alpha={best_a}"),
        "warm-up curriculum": lab.run(spec, "warm-up"),
    }
    rows, curves = [], []
    for arm, run in arms.items():
        rows.append(
            {
                "arm": arm,
                "accuracy": run.final["train"].accuracy,
                "loss": run.final["train"].loss,
                **{k: v for k, v in phases_of(run).items() if k.startswith("plateau")},
            }
        )
        curves += [{"arm": arm, **h} for h in run.history]
    numbers = {
        "points": rows,
        "warmup_fraction": lab.sc.warmup_fraction,
        "warmup_subset": lab.sc.warmup_subset,
        "best": max(rows, key=lambda r: r["accuracy"])["arm"],
    }
    return Result(
        "curriculum",
        "(d) Warm-up curriculum against uniform and the best alpha",
        numbers,
        curves,
        {"curriculum": plots.curves_by(curves, "arm", "train_accuracy")},
    )


def exp_hallucination(lab: Lab) -> Result:
    run = lab.base()
    ph = phases_of(run)
    hb = heldout_baseline(run)
    h = run.history
    low = min(h, key=lambda r: r["heldout_loss"])
    # Hallucination onset: the loss on strangers turns back up from its minimum while facts emerge.
    rise = next(
        (r["step"] for r in h if r["step"] > low["step"] and r["heldout_loss"] > low["heldout_loss"] + ph["tolerance"]),
        None,
    )
    at = {
        lbl: min(h, key=lambda r: abs(r["step"] - s))
        for lbl, s in (
            ("plateau_start", ph["plateau_start"]),
            ("plateau_end", ph["plateau_end"]),
            ("final", h[-1]["step"]),
        )
        if s is not None
    }
    numbers = {
        "heldout_baseline": hb,
        "train_baseline": ph["baseline"],
        **{k: ph[k] for k in ("plateau_start", "plateau_end")},
        "heldout_loss_min": low["heldout_loss"],
        "heldout_loss_min_step": low["step"],
        "heldout_loss_rises_at": rise,
        "at": {
            k: {m: r[m] for m in ("heldout_loss", "heldout_confidence", "train_accuracy", "train_confidence")}
            for k, r in at.items()
        },
    }
    return Result(
        "hallucination",
        "(e) Hallucination on unseen individuals",
        numbers,
        h,
        {"hallucination": plots.hallucination(h, hb, ph)},
    )


def exp_finetune(lab: Lab) -> Result:
    base = lab.base()
    world, old, new = base.world, base.world.populations["train"], base.world.populations["new"]
    probes = {k: v for k, v in probe_sets(world, base.spec.n_probe, base.spec.seed).items() if k in ("train", "new")}
    rows, curves = [], []
    for replay in (0.0, lab.sc.replay):
        model = copy.deepcopy(base.model)
        batch = base.spec.batch

        def sample(step: int, rng: np.random.Generator, _r=replay, batch=batch) -> torch.Tensor:
            k = int(rng.binomial(batch, _r))
            parts = [biography_batch(world, new, rng.integers(0, len(new), batch - k), rng)]
            if k:
                parts.append(biography_batch(world, old, rng.integers(0, len(old), k), rng))
            width = max(p.shape[1] for p in parts)
            return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])

        hist, _ = fit(
            model,
            world,
            sample,
            lab.sc.ft_steps,
            lab.sc.ft_lr,
            probes,
            base.spec.eval_every,
            base.spec.seed + 7,
            desc=f"finetune replay={replay}",
        )
        curves += [{"replay": replay, **h} for h in hist]
        rows.append(
            {
                "replay": replay,
                "old_accuracy_before": hist[0]["train_accuracy"],
                "old_accuracy_after": hist[-1]["train_accuracy"],
                "new_accuracy_after": hist[-1]["new_accuracy"],
                "old_loss_after": hist[-1]["train_loss"],
                "new_loss_after": hist[-1]["new_loss"],
            }
        )
    return Result(
        "finetune",
        "(f) Fine-tuning on new individuals: forgetting, with and without replay",
        {"points": rows, "ft_steps": lab.sc.ft_steps, "ft_lr": lab.sc.ft_lr},
        curves,
        {"finetune": plots.finetune(curves)},
    )


def exp_attention(lab: Lab) -> Result:
    base = lab.base()
    ph = phases_of(base)
    last = base.history[-1]["step"]
    start, end = ph["plateau_start"], ph["plateau_end"]
    wanted = {"init": 0, "final": last}
    if start is not None:
        wanted["plateau_start"] = start
        wanted["plateau_mid"] = (start + (end if end is not None else last)) // 2
    if end is not None:
        wanted["plateau_end"] = end
    rows, curves = [], []
    for stage in [s for s in lab.sc.patch_stages if s in wanted]:
        step = min(base.checkpoints, key=lambda s: abs(s - wanted[stage]))
        ref = copy.deepcopy(base.model)
        ref.load_state_dict(base.checkpoints[step])
        # Same people and data order, fresh weights: the student must not start as a copy of the reference.
        spec = replace(base.spec, init_seed=base.spec.seed + 1000)
        run = pretrain(spec, reference=ref, desc=f"patched from {stage}")
        p = phases_of(run)
        rows.append(
            {
                "stage": stage,
                "reference_step": step,
                "final_accuracy": run.final["train"].accuracy,
                **{k: v for k, v in p.items() if k.startswith("plateau")},
            }
        )
        curves += [{"stage": f"{stage} (step {step})", **h} for h in run.history]
    rows.append(
        {
            "stage": "none (own attention)",
            "reference_step": None,
            "final_accuracy": base.final["train"].accuracy,
            **{k: v for k, v in ph.items() if k.startswith("plateau")},
        }
    )
    curves += [{"stage": "none (own attention)", **h} for h in base.history]
    return Result(
        "attention",
        "(g) Training with attention patterns frozen from a reference checkpoint",
        {"points": rows},
        curves,
        {"attention": plots.curves_by(curves, "stage", "train_loss")},
    )


EXPERIMENTS = {
    "phases": exp_phases,
    "plateau": exp_plateau,
    "alpha": exp_alpha,
    "curriculum": exp_curriculum,
    "hallucination": exp_hallucination,
    "finetune": exp_finetune,
    "attention": exp_attention,
}

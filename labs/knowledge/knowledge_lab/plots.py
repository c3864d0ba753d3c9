"""Figures for the lab report. `Figure` objects directly (no pyplot global state), Agg backend."""

from __future__ import annotations

import io
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _phase_marks(ax, ph: dict) -> None:
    if ph.get("plateau_start") is not None:
        end = ph.get("plateau_end")
        right = end if end is not None else ax.get_xlim()[1]
        ax.axvspan(ph["plateau_start"], right, color="orange", alpha=0.15, label="plateau (detected)")


def phases(history: list[dict], ph: dict, uniform: float) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["train_loss"] for h in history], label="attribute loss (held-out templates)")
    ax.axhline(ph["baseline"], color="k", ls="--", label=f"no-knowledge baseline {ph['baseline']:.2f}")
    ax.axhline(uniform, color="grey", ls=":", label=f"uniform guess {uniform:.2f}")
    _phase_marks(ax, ph)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / value token)")
    ax2 = ax.twinx()
    ax2.plot(steps, [h["train_accuracy"] for h in history], color="green", alpha=0.7, label="recall accuracy")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("accuracy", color="green")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("Three phases: statistics, plateau, knowledge")
    return fig


def plateau_scaling(rows: list[dict], fit: dict | None, fit_end: dict | None = None) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for key, f, marker, what in (
        ("plateau_length", fit, "o", "plateau length (start to end)"),
        ("plateau_end", fit_end, "s", "steps to knowledge emergence"),
    ):
        done = [r for r in rows if r[key]]
        xs = [r["n_people"] for r in done]
        line = ax.loglog(xs, [r[key] for r in done], marker, label=what)[0]
        if f:
            ax.loglog(
                sorted(xs),
                [f["coefficient"] * x ** f["exponent"] for x in sorted(xs)],
                "-",
                color=line.get_color(),
                label=f"fit: N^{f['exponent']:.2f}",
            )
    ax.set_xlabel("number of individuals N")
    ax.set_ylabel("steps")
    ax.set_title("paper: plateau ~ N^0.81")
    ax.legend(fontsize=8)
    return fig


def curves_by(curves: list[dict], key: str, metric: str) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    groups: dict = defaultdict(list)
    for row in curves:
        groups[row[key]].append(row)
    for label, rows in groups.items():
        ax.plot([r["step"] for r in rows], [r[metric] for r in rows], label=f"{key}={label}")
    ax.set_xlabel("step")
    ax.set_ylabel(metric.replace("train_", "attribute ").replace("_", " "))
    ax.legend(fontsize=8)
    return fig


def alpha_tradeoff(rows: list[dict]) -> Figure:
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    alphas = [r["alpha"] for r in rows]
    ax.plot(alphas, [r["accuracy"] for r in rows], "o-", label="all individuals")
    ax.plot(alphas, [r["head_accuracy"] for r in rows], "s--", label="frequent half")
    ax.plot(alphas, [r["tail_accuracy"] for r in rows], "^--", label="rare half")
    ax.set_xlabel("alpha (P(i) ~ i^-alpha)")
    ax.set_ylabel("final recall accuracy")
    ax.legend(fontsize=8)
    return fig


def hallucination(history: list[dict], heldout_baseline: float, ph: dict) -> Figure:
    fig = Figure(figsize=(7, 6))
    ax, bx = fig.subplots(2, 1, sharex=True)
    steps = [h["step"] for h in history]
    ax.plot(steps, [h["heldout_loss"] for h in history], color="red", label="unseen individuals")
    ax.plot(steps, [h["train_loss"] for h in history], color="blue", label="trained individuals")
    ax.axhline(heldout_baseline, color="red", ls="--", label=f"baseline, unseen {heldout_baseline:.2f}")
    ax.axhline(ph["baseline"], color="blue", ls=":", label=f"baseline, trained {ph['baseline']:.2f}")
    _phase_marks(ax, ph)
    ax.set_ylabel("attribute loss")
    ax.legend(fontsize=8)
    bx.plot(steps, [h["heldout_confidence"] for h in history], color="red", label="confidence, unseen")
    bx.plot(steps, [h["train_confidence"] for h in history], color="blue", label="confidence, trained")
    bx.plot(steps, [h["train_accuracy"] for h in history], color="green", label="accuracy, trained")
    bx.set_xlabel("step")
    bx.set_ylabel("probability / accuracy")
    bx.legend(fontsize=8)
    return fig


def finetune(curves: list[dict]) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for replay, style in ((r, s) for r, s in zip(sorted({c["replay"] for c in curves}), ("-", "--", ":"))):
        rows = [c for c in curves if c["replay"] == replay]
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["train_accuracy"] for r in rows], style, color="blue", label=f"old people, replay={replay}")
        ax.plot(steps, [r["new_accuracy"] for r in rows], style, color="red", label=f"new people, replay={replay}")
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel("recall accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return fig

"""`tunelab-lab ...`: one command per experiment of the knowledge lab, plus `all`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import typer

from knowledge_lab.experiments import EXPERIMENTS, Lab, scale
from knowledge_lab.report import page, write_result
from knowledge_lab.train import set_threads
from tunelab import rundir

app = typer.Typer(
    help="The knowledge lab: watch a tiny transformer learn facts about synthetic people "
    "(Zucchet et al. 2025, arXiv:2503.21676), on a laptop CPU.\n\n"
    "Example: `tunelab-lab phases --quick --out runs/lab` (seconds), then open runs/lab/phases/report.html. "
    "`tunelab-lab all --out runs/lab-full` runs (a)-(g) at full scale.",
    no_args_is_help=True,
)

OUT = typer.Option(Path("runs/lab"), "--out", help="Folder for the run directory (one sub-folder per experiment).")
QUICK = typer.Option(False, "--quick", help="Tiny scale: seconds per experiment, for smoke tests and tests.")
SEED = typer.Option(0, "--seed", help="Seeds the people, templates, data order and weights.")
THREADS = typer.Option(None, "--threads", help="Torch CPU threads (default 1 or $TUNELAB_LAB_THREADS).")


def run_experiments(names: list[str], out: Path, quick: bool, seed: int, threads: int | None = None) -> dict:
    """Run the named experiments sharing one `Lab`; writes out/<name>/ and, for several, out/report.html."""
    set_threads(threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    lab = Lab(scale(quick, seed))
    what = names[0] if len(names) == 1 else "all" + ("" if "attention" in names else " --skip-attention")
    command = f"tunelab-lab {what} --out {out} --seed {seed}" + (" --quick" if quick else "")
    sections, timings, started = [], {}, time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        result = EXPERIMENTS[name](lab)
        lab.results[name] = result
        timings[name] = time.perf_counter() - t0
        sections.append(write_result(result, out / name, command, timings[name]))
        typer.echo(f"{name}: {timings[name]:.0f} s -> {out / name / rundir.REPORT}")
    total = time.perf_counter() - started
    if len(names) > 1:
        body = f"<p>Scale: <code>{lab.sc}</code></p><p>Total wall time: {total:.0f} s.</p>" + "".join(sections)
        rundir.write_text(out / rundir.REPORT, page("Knowledge lab", body, command))
        rundir.write_json(
            out / rundir.SUMMARY,
            {
                "experiments": names,
                "seconds": timings,
                "total_seconds": total,
                "quick": quick,
                "seed": seed,
                "results": {n: lab.results[n].numbers for n in names},
            },
        )
    return {n: lab.results[n] for n in names}


def _command(name: str, doc: str) -> Callable:
    def command(out: Path = OUT, quick: bool = QUICK, seed: int = SEED, threads: int | None = THREADS) -> None:
        run_experiments([name], out, quick, seed, threads)

    command.__doc__ = doc
    return command


_DOCS = {
    "phases": "(a) Learning curve with the three phases found automatically: statistics, plateau, knowledge.\n\n"
    "Example: tunelab-lab phases --quick --out runs/lab  ->  runs/lab/phases/report.html",
    "plateau": "(b) Plateau length against the number of individuals N, with the fitted power-law exponent "
    "(paper: N^0.81).\n\nExample: tunelab-lab plateau --out runs/lab",
    "alpha": "(c) Sweep the imbalance alpha of P(i) ~ i^-alpha at a fixed step budget; reports the best alpha "
    "(paper: 0.6-0.8).\n\nExample: tunelab-lab alpha --out runs/lab",
    "curriculum": "(d) Warm-up curriculum (a subset of people first, then all) against uniform and the best alpha. "
    "Runs the alpha sweep too.\n\nExample: tunelab-lab curriculum --out runs/lab",
    "hallucination": "(e) Loss and confidence on never-seen individuals over training, against the baseline.\n\n"
    "Example: tunelab-lab hallucination --quick --out runs/lab",
    "finetune": "(f) Fine-tune the pre-trained model on new individuals: forgetting of the old ones, with and "
    "without replay.\n\nExample: tunelab-lab finetune --out runs/lab",
    "attention": "(g) Train fresh models whose attention patterns come from a reference model's checkpoints "
    "(before, during, after the plateau).\n\nExample: tunelab-lab attention --quick --out runs/lab",
}

for _name, _doc in _DOCS.items():
    app.command(_name, help=_doc)(_command(_name, _doc))


@app.command("all")
def all_(
    out: Path = OUT,
    quick: bool = QUICK,
    seed: int = SEED,
    threads: int | None = THREADS,
    skip_attention: bool = typer.Option(False, "--skip-attention", help="Only (a)-(f), the 30-minute budget."),
) -> None:
    """Run every experiment, sharing the uniform pre-training run; writes out/report.html with all of them.

    Example: tunelab-lab all --quick --out runs/lab   (about a minute)
    """
    names = [n for n in EXPERIMENTS if not (skip_attention and n == "attention")]
    run_experiments(names, out, quick, seed, threads)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

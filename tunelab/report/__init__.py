"""`tunelab report RUN_DIR|SWEEP_DIR`: one self-contained HTML file built from the directory's files.

No torch, no network: charts are inline SVG, styles and the one small script are inlined, so
the file can be mailed or opened offline. A sweep directory (with sweep.json) gets the sweep's
sections followed by the best trial's run sections.
"""

from __future__ import annotations

from pathlib import Path

from tunelab import rundir
from tunelab.report.page import page, section
from tunelab.report.run import run_sections, run_title

SWEEP_JSON = "sweep.json"  # same name as tunelab.train.sweep.SWEEP_JSON (not imported: that module pulls in training)


def is_sweep_dir(path: Path) -> bool:
    return (path / SWEEP_JSON).exists()


def build_report(path: str | Path) -> str:
    """The report's HTML for a run directory or a sweep directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: not a directory (expected a run directory or a sweep directory)")
    if is_sweep_dir(path):
        from tunelab.report.sweep import sweep_sections

        sweep = rundir.read_json(path / SWEEP_JSON)
        best_dir = (
            path / "best"
            if (path / "best" / rundir.CONFIG).exists()
            else (Path(sweep["best"]["run_dir"]) if sweep.get("best") else None)
        )
        sections = sweep_sections(sweep)
        if best_dir is not None and best_dir.is_dir():
            sections.append(section(f"The best trial's run ({best_dir})"))
            sections += run_sections(best_dir)
        objective = sweep["objective"]
        return page(
            f"tunelab sweep: {sweep['name']}",
            f"{path} — {objective['direction']} {objective['metric']}, {sweep['sampler']} sampler, {len(sweep['trials'])} trials",
            sections,
        )
    if not (path / rundir.CONFIG).exists() and not (path / rundir.METRICS).exists():
        raise FileNotFoundError(
            f"{path}: neither a run directory (config.yaml, metrics.jsonl) nor a sweep directory ({SWEEP_JSON})"
        )
    title, subtitle = run_title(path)
    return page(title, subtitle, run_sections(path))


def write_report(path: str | Path, out: str | Path | None = None) -> Path:
    """Write the report (default: PATH/report.html) and return where it went."""
    target = Path(out) if out else Path(path) / rundir.REPORT
    return rundir.write_text(target, build_report(path))

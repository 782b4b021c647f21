"""Overlaying finished explorations (``axonnx explore --compare``)."""

from __future__ import annotations

import csv
from pathlib import Path

from axonnx.errors import AxonnxError
from axonnx.model import results_folder


def front_points(run) -> list[dict]:
    """The run's Pareto rows as dicts with ``gain``, ``loss`` (full test set when it was
    re-evaluated, else the search subset), ``label`` and ``on`` (which data)."""
    points = []
    for row in run.pareto:
        # (runs written before the split names: accuracy_loss_full/subset)
        full = row.get("loss_report", row.get("accuracy_loss_full"))
        use_full = full not in (None, "")
        search = row.get("loss_search", row.get("accuracy_loss_subset"))
        points.append({"label": row["label"], "gain": float(row["energy_gain"]),
                       "loss": float(full) if use_full else float(search),
                       "on": "full" if use_full else "subset", "plan": str(run.path / row["plan"])})
    return points


def best_gain(points: list[dict], max_loss: float, on: str | None = None) -> dict | None:
    """The point with the largest energy gain whose loss is at most ``max_loss``."""
    ok = [p for p in points if p["loss"] <= max_loss + 1e-12 and (on is None or p["on"] == on)]
    return max(ok, key=lambda p: p["gain"]) if ok else None


def compare_runs(dirs: list[Path], out: Path) -> dict:
    from axonnx.analysis.explore import load_run
    from axonnx.analysis.plots import plot_runs

    if not dirs:
        raise AxonnxError("give the run folders to compare")
    runs = [load_run(d) for d in dirs]
    results_folder(out)
    plot = plot_runs(runs, out / "compare.png", title="exploration runs compared")
    rows = []
    for run in runs:
        pts = front_points(run)
        # Never mix the two kinds of loss: the full test set when the front was re-scored.
        on = "full" if any(p["on"] == "full" for p in pts) else "subset"
        at1, at4 = best_gain(pts, 0.01, on), best_gain(pts, 0.04, on)
        rows.append({"path": str(run.path), "name": run.name, "evaluated": len(run.records),
                     "front": len(run.pareto), "loss_on": on,
                     "best_gain_at_1pp": at1 and at1["gain"], "best_gain_at_4pp": at4 and at4["gain"],
                     "best_at_1pp": at1 and at1["label"], "best_at_4pp": at4 and at4["label"]})
    path = out / "compare.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "name", "evaluated", "front", "loss_on", "best_gain_at_1pp",
                    "best_at_1pp", "best_gain_at_4pp", "best_at_4pp"])
        for r in rows:
            w.writerow([r["path"], r["name"], r["evaluated"], r["front"], r["loss_on"],
                        r["best_gain_at_1pp"],
                        r["best_at_1pp"], r["best_gain_at_4pp"], r["best_at_4pp"]])
    return {"runs": rows, "plot": str(plot), "csv": str(path)}

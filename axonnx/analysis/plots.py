"""Figures (matplotlib, Agg backend; nothing is shown on screen)."""

from __future__ import annotations

from pathlib import Path

from axonnx.pareto import pareto_records

APPROACH_COLOURS = {
    "llam": "#7f7f7f", "flam": "#1f77b4", "klam-chan": "#d62728", "klam-row": "#2ca02c",
    "klam-col": "#9467bd", "klms": "#ff7f0e", "uniform": "#000000",
}
MULTIPLIER_COLOURS = ["#2ca02c", "#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#8c564b"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def metric_axis(metric: dict | None) -> tuple[float, str]:
    """(scale, unit label) to plot a metric's values: fractions as percentages, dB as is."""
    metric = metric or {"name": "top1", "unit": "fraction"}
    name = "top-1 accuracy" if metric["name"] == "top1" else metric["name"]
    if metric.get("unit") == "fraction":
        return 100.0, f"{name} (%)"
    if metric.get("unit") == "dB":
        return 1.0, f"{name} (dB)"
    return 1.0, name


def plot_sensitivity(rows: list[dict], path: Path, *, title: str, baseline: float,
                     metric: dict | None = None) -> Path:
    """Score vs layer, one line per multiplier, the baseline at layer 0 (paper Fig. 3)."""
    scale, unit = metric_axis(metric)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    mults = []
    for r in rows:
        if r["multiplier"] not in mults:
            mults.append(r["multiplier"])
    for k, m in enumerate(mults):
        pts = sorted((r["layer"], r["score"]) for r in rows if r["multiplier"] == m)
        xs = [0] + [p[0] for p in pts]
        ys = [scale * baseline] + [scale * p[1] for p in pts]
        label = m if not rows or "alias" not in rows[0] else next(
            (r["alias"] for r in rows if r["multiplier"] == m), m)
        ax.plot(xs, ys, marker="o", color=MULTIPLIER_COLOURS[k % len(MULTIPLIER_COLOURS)],
                label=label)
    ax.axhline(scale * baseline, color="#999999", lw=0.8, ls="--")
    ax.set_xlabel("layer (0 = baseline, no approximation)")
    ax.set_ylabel(unit)
    ax.set_xticks(sorted({0} | {r["layer"] for r in rows}))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_runs(runs, path: Path, *, extra_points: list[dict] | None = None,
              max_loss: float | None = None, title: str | None = None) -> Path:
    """Energy vs loss (in the runs' metric) of every evaluated candidate, coloured by
    approach, with each run's Pareto front as a line (paper Fig. 4). ``extra_points``: dicts
    with ``label``, ``loss``, ``energy``, drawn as black crosses (e.g. uniform EvoApprox
    multipliers)."""
    plt = _pyplot()
    metric = runs[0].info.get("metric") if runs else None
    scale, unit = metric_axis(metric)
    unit = unit.replace("(%)", "(percentage points)")
    fig, ax = plt.subplots(figsize=(7.0, 4.8), dpi=120)
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    for k, run in enumerate(runs):
        colour = APPROACH_COLOURS.get(run.approach, None)
        pts = [(scale * r.loss, 100 * r.energy) for r in run.records
               if max_loss is None or r.loss <= max_loss]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, s=9, alpha=0.25, color=colour, marker=markers[k % len(markers)],
                       linewidths=0)
        front = [(scale * float(p["loss_search"]), 100 * float(p["energy_relative"]))
                 for p in run.pareto]
        if not front:  # an unfinished run: its front so far
            front = [(scale * r.loss, 100 * r.energy) for r in pareto_records(run.records)]
        if max_loss is not None:
            front = [p for p in front if p[0] <= scale * max_loss]
        if front:
            xs, ys = zip(*sorted(front))
            ax.plot(xs, ys, marker=markers[k % len(markers)], ms=4, lw=1.2, color=colour,
                    label=f"{run.name} (front)", drawstyle="steps-post")
    for p in extra_points or []:
        ax.scatter([scale * p["loss"]], [100 * p["energy"]], marker="x", s=40, color="black")
        ax.annotate(p["label"], (scale * p["loss"], 100 * p["energy"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"loss of {unit} vs the exact model (search split)")
    ax.set_ylabel("multiplier energy (% of all-exact)")
    ax.set_title(title or f"energy vs {unit.split(' (')[0]} loss", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path

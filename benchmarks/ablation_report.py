"""Tables and plots of `benchmarks/ablation.py`'s runs: results.json, results.md and PNGs in the results folder."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

TERMS = ("loss/supervised", "loss/consistency", "loss/structured")


def _miou(run: dict) -> float:
    return 100 * run["metrics"]["eval_mean_iou"]


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def summarise(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """{fraction: {variant: {mean, std, seeds, values, wall_s}}} over seeds."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["fraction"], run["variant"])].append(run)
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for (fraction, variant), members in sorted(groups.items()):
        values = [_miou(r) for r in sorted(members, key=lambda r: r["seed"])]
        mean, std = _mean_std(values)
        table[fraction][variant] = {"mean": mean, "std": std, "values": values, "num_labeled": members[0]["num_labeled"],
                                    "seeds": sorted(r["seed"] for r in members),
                                    "wall_s": statistics.median(r["wall_s"] for r in members)}
    return dict(table)


def _pm(entry: dict) -> str:
    std = "" if entry["std"] != entry["std"] else f" ± {entry['std']:.2f}"
    return f"{entry['mean']:.2f}{std}"


def ablation_table(summary: dict, fraction: str, labels: dict[str, str]) -> str:
    rows = ["| variant | val mIoU (%) mean ± std | per seed | median wall time per run (s) |", "|---|---|---|---|"]
    for variant, label in labels.items():
        entry = summary.get(fraction, {}).get(variant)
        if entry is not None:
            seeds = ", ".join(f"{v:.2f}" for v in entry["values"])
            rows.append(f"| {label} | {_pm(entry)} | {seeds} | {entry['wall_s']:.0f} |")
    return "\n".join(rows)


def sweep_table(summary: dict) -> str:
    rows = ["| labeled fraction | labeled images | (a) supervised | (c) SCL | (c) − (a) |", "|---|---|---|---|---|"]
    for fraction in sorted(summary, key=Fraction):
        a, c = summary[fraction].get("a_supervised"), summary[fraction].get("c_scl")
        if a is not None and c is not None:
            rows.append(f"| {fraction} | {a['num_labeled']} | {_pm(a)} | {_pm(c)} | {c['mean'] - a['mean']:+.2f} |")
    return "\n".join(rows)


def _total_minutes(runs: list[dict], out: Path) -> float:
    pretrain = [json.loads(p.read_text())["wall_s"] for p in out.glob("runs/pretrain_*.json")]
    return (sum(r["wall_s"] for r in runs) + sum(pretrain)) / 60


def pretrain_table(out: Path) -> str:
    rows = ["| labeled fraction | labeled images | val mIoU (%) after pretraining | wall time (s) |", "|---|---|---|---|"]
    for path in sorted(out.glob("runs/pretrain_*.json")):
        run = json.loads(path.read_text())
        rows.append(f"| {run['fraction']} | {run['num_labeled']} | {_miou(run):.2f} | {run['wall_s']:.0f} |")
    return "\n".join(rows)


def write_report(runs: list[dict], setup: dict, out: Path, *, wall_s: float, environment: dict) -> None:
    from ablation import LABELS

    summary = summarise(runs)
    (out / "results.json").write_text(json.dumps({"setup": setup, "environment": environment, "wall_s": wall_s,
                                                   "summary": summary}, indent=1, default=str))
    plots = write_plots(runs, summary, out, LABELS, setup["main_fraction"])
    lines = [f"# SCL ablation on the synthetic Cityscapes ({len(runs)} runs)", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in environment.items()), "",
             f"Setup: {json.dumps(setup)}", f"Sum of the runs' wall times (pretraining included): {_total_minutes(runs, out):.1f} min; "
             f"this invocation: {wall_s / 60:.1f} min", "",
             f"## Ablation at {setup['main_fraction']} labeled", "",
             ablation_table(summary, setup["main_fraction"], LABELS), "", "## Label-fraction sweep", "",
             sweep_table(summary), "", "## Starting points (supervised pretraining, seed 0)", "",
             pretrain_table(out), ""] + [f"![{p.stem}]({p.name})" for p in plots]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[6:]))


def write_plots(runs: list[dict], summary: dict, out: Path, labels: dict[str, str], fraction: str) -> list[Path]:
    """mIoU vs labeled fraction, and per-variant training curves; nothing (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'sclseg[plots]'): no plots written")
        return []
    return [_plot_sweep(plt, summary, out, labels), _plot_curves(plt, runs, out, labels, fraction)]


def _plot_sweep(plt, summary: dict, out: Path, labels: dict[str, str]) -> Path:
    fractions = sorted(summary, key=Fraction)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    colours = {variant: f"C{i}" for i, variant in enumerate(labels)}  # the colours of the training curves
    for variant in ("a_supervised", "c_scl"):
        points = [(summary[f][variant]["num_labeled"], summary[f][variant]) for f in fractions if variant in summary[f]]
        xs = [p[0] for p in points]
        ax.errorbar(xs, [p[1]["mean"] for p in points], yerr=[0 if p[1]["std"] != p[1]["std"] else p[1]["std"]
                                                               for p in points], marker="o", capsize=3,
                    label=labels[variant], color=colours[variant])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labeled synthetic images")
    ax.set_ylabel("val mIoU (%)")
    ax.set_title("mIoU vs labeled images (mean ± std over seeds)")
    ax.legend()
    fig.tight_layout()
    path = out / "miou_vs_labeled.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_curves(plt, runs: list[dict], out: Path, labels: dict[str, str], fraction: str) -> Path:
    """The first seed at the ablation's fraction: each loss term, and the validation mIoU, against the step
    (the four variants; probes are in the tables only)."""
    from ablation import VARIANTS

    at_fraction = [r for r in runs if r["fraction"] == fraction and r["variant"] in VARIANTS]
    main = [r for r in at_fraction if r["seed"] == min(x["seed"] for x in at_fraction)]
    fig, axes = plt.subplots(1, len(TERMS) + 1, figsize=(16, 3.6))
    start = out / "runs" / f"pretrain_f{fraction.replace('/', 'of')}.json"
    start_miou = _miou(json.loads(start.read_text())) if start.exists() else None
    colours = {variant: f"C{i}" for i, variant in enumerate(labels)}  # one colour per variant in every panel
    for run in main:
        history, style = run["log_history"], {"color": colours[run["variant"]], "label": labels[run["variant"]]}
        for ax, term in zip(axes, TERMS):
            points = [(h["step"], h[term]) for h in history if term in h]
            if points:
                ax.plot(*zip(*points), **style)
            ax.set_title(term)
        points = [(h["step"], 100 * h["eval_mean_iou"]) for h in history if "eval_mean_iou" in h]
        if start_miou is not None:  # step 0 is the supervised model every variant starts from
            points = [(0, start_miou)] + points
        axes[-1].plot(*zip(*points), marker="o", **style)
    axes[-1].set_title("val mIoU (%)")
    for ax in axes:
        ax.set_xlabel("step")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Tables and plots of `experiments/ablation.py`'s runs: results.json, results.md and PNGs in the results folder.

Two mIoU figures per run: over all 19 classes (what `sclseg evaluate` prints) and over the benchmark's *scored*
classes, those that supervised training with every label learns at 128x256 (IoU >= `LEARNABLE_IOU` for (a) at
1/1, averaged over seeds). The rule reads the supervised curve only, never a semi-supervised run.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from fractions import Fraction
from pathlib import Path

TERMS = ("loss/supervised", "loss/consistency", "loss/structured", "loss/pseudo_label")
LEARNABLE_IOU = 0.10
PREFIX = "eval_iou_"


def scored_classes(runs: list[dict]) -> list[str]:
    """Classes with mean IoU >= LEARNABLE_IOU for supervised training on every label (fraction 1/1)."""
    full = [r for r in runs if r["variant"] == "a_supervised" and r["fraction"] == "1/1"]
    if not full:
        return []
    names = [k[len(PREFIX):] for k in full[0]["metrics"] if k.startswith(PREFIX)]
    return [n for n in names if statistics.fmean(_iou(r, n) for r in full) >= LEARNABLE_IOU]


def _iou(run: dict, name: str) -> float:
    value = run["metrics"].get(PREFIX + name)
    return 0.0 if value is None or value != value else value


def miou(run: dict, classes: list[str] | None) -> float:
    """mIoU in %, over `classes` (absent or NaN IoU counts 0) or, for None, the trainer's 19-class figure."""
    if not classes:
        return 100 * run["metrics"]["eval_mean_iou"]
    return 100 * statistics.fmean(_iou(run, n) for n in classes)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else float("nan")


def summarise(runs: list[dict], classes: list[str]) -> dict[str, dict[str, dict]]:
    """{fraction: {variant: {mean, std, values, mean19, std19, per_class, num_labeled, wall_s}}} over seeds."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["fraction"], run["variant"])].append(run)
    table: dict[str, dict[str, dict]] = defaultdict(dict)
    for (fraction, variant), members in sorted(groups.items()):
        members = sorted(members, key=lambda r: r["seed"])
        values = [miou(r, classes) for r in members]
        mean, std = _mean_std(values)
        mean19, std19 = _mean_std([miou(r, None) for r in members])
        names = [k[len(PREFIX):] for k in members[0]["metrics"] if k.startswith(PREFIX)]
        table[fraction][variant] = {
            "mean": mean, "std": std, "values": values, "mean19": mean19, "std19": std19,
            "per_class": {n: 100 * statistics.fmean(_iou(r, n) for r in members) for n in names},
            "num_labeled": members[0]["num_labeled"], "seeds": [r["seed"] for r in members],
            "wall_s": statistics.median(r["wall_s"] for r in members)}
    return dict(table)


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f}" if std != std else f"{mean:.2f} ± {std:.2f}"


def curve_table(summary: dict) -> str:
    rows = ["| labeled fraction | labeled images | (a) supervised, scored classes | all 19 classes |",
            "|---|---|---|---|"]
    for fraction in sorted(summary, key=Fraction):
        entry = summary[fraction].get("a_supervised")
        if entry is not None:
            rows.append(f"| {fraction} | {entry['num_labeled']} | {_pm(entry['mean'], entry['std'])} | "
                        f"{_pm(entry['mean19'], entry['std19'])} |")
    return "\n".join(rows)


def design_checks(summary: dict, low: str) -> str:
    """The two conditions the benchmark had to meet on the supervised curve alone."""
    full, few = summary.get("1/1", {}).get("a_supervised"), summary.get(low, {}).get("a_supervised")
    if full is None or few is None:
        return "(the supervised curve is incomplete)"
    gap = full["mean"] - few["mean"]
    return (f"- all labels − {low}: {gap:+.2f} points (required: ≥ 15) — {'met' if gap >= 15 else 'NOT met'}\n"
            f"- {low} supervised model: {few['mean']:.2f} (required: ≥ 25 as a teacher) — "
            f"{'met' if few['mean'] >= 25 else 'NOT met'}")


def ablation_table(summary: dict, fraction: str, labels: dict[str, str]) -> str:
    """Every variant at `fraction` against (a): difference and how many pooled standard deviations it is."""
    base = summary.get(fraction, {}).get("a_supervised")
    rows = ["| variant | scored mIoU (%) | per seed | − (a) | in pooled std | all 19 classes | wall time (s) |",
            "|---|---|---|---|---|---|---|"]
    for variant, label in labels.items():
        entry = summary.get(fraction, {}).get(variant)
        if entry is None:
            continue
        seeds = ", ".join(f"{v:.2f}" for v in entry["values"])
        diff = sigmas = ""
        if base is not None and variant != "a_supervised":
            delta = entry["mean"] - base["mean"]
            pooled = math.sqrt((entry["std"] ** 2 + base["std"] ** 2) / 2) if entry["std"] == entry["std"] else 0
            diff, sigmas = f"{delta:+.2f}", (f"{delta / pooled:+.1f}" if pooled > 0 else "")
        rows.append(f"| {label} | {_pm(entry['mean'], entry['std'])} | {seeds} | {diff} | {sigmas} | "
                    f"{_pm(entry['mean19'], entry['std19'])} | {entry['wall_s']:.0f} |")
    return "\n".join(rows)


def sweep_table(summary: dict, labels: dict[str, str], sweep: tuple[str, ...]) -> str:
    present = [v for v in sweep if any(v in summary[f] for f in summary)]
    rows = ["| labeled fraction | images | " + " | ".join(labels[v] for v in present) + " |",
            "|---|---|" + "---|" * len(present)]
    for fraction in sorted(summary, key=Fraction):
        if fraction == "1/1":
            continue
        cells = [_pm(summary[fraction][v]["mean"], summary[fraction][v]["std"]) if v in summary[fraction] else "—"
                 for v in present]
        # The fewest: the all-labels probe runs at the main fraction's start with every label.
        labeled = min(entry["num_labeled"] for entry in summary[fraction].values())
        rows.append(f"| {fraction} | {labeled} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_class_table(summary: dict, fraction: str, labels: dict[str, str]) -> str:
    at = summary.get(fraction, {})
    entries = {v: at[v] for v in labels if v in at}
    if not entries:
        return ""
    names = list(next(iter(entries.values()))["per_class"])
    rows = ["| class | " + " | ".join(labels[v] for v in entries) + " |", "|---|" + "---|" * len(entries)]
    for name in names:
        values = [e["per_class"][name] for e in entries.values()]
        if max(values) >= 0.5:
            rows.append(f"| {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |")
    return "\n".join(rows)


def pretrain_table(out: Path, classes: list[str]) -> str:
    rows = ["| labeled fraction | labeled images | scored mIoU (%) | all 19 (%) | wall time (s) |",
            "|---|---|---|---|---|"]
    for path in sorted(out.glob("runs/pretrain_*.json")):
        run = json.loads(path.read_text())
        rows.append(f"| {run['fraction']} | {run['num_labeled']} | {miou(run, classes):.2f} | "
                    f"{miou(run, None):.2f} | {run['wall_s']:.0f} |")
    return "\n".join(rows)


def write_report(runs: list[dict], setup: dict, out: Path, *, wall_s: float, environment: dict,
                 labels: dict[str, str], sweep: tuple[str, ...], classes: list[str] | None = None) -> None:
    """`classes`: the scored classes, when this folder has no supervised 1/1 run to take them from."""
    classes = scored_classes(runs) if classes is None else classes
    summary = summarise(runs, classes)
    (out / "results.json").write_text(json.dumps({"setup": setup, "environment": environment, "wall_s": wall_s,
                                                   "scored_classes": classes, "summary": summary},
                                                  indent=1, default=str))
    main = setup["main_fraction"]
    plots = write_plots(runs, summary, out, labels, sweep, main, classes)
    total = sum(r["wall_s"] for r in runs) + sum(json.loads(p.read_text())["wall_s"]
                                                 for p in out.glob("runs/pretrain_*.json"))
    lines = [f"# Semi-supervised ablation on the synthetic Cityscapes ({len(runs)} runs)", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in environment.items()), "",
             f"Setup: {json.dumps(setup)}", "",
             f"Sum of the runs' wall times (pretraining included): {total / 60:.1f} min; this invocation: "
             f"{wall_s / 60:.1f} min", "",
             f"Scored classes (IoU ≥ {100 * LEARNABLE_IOU:.0f}% for supervised training on all labels): "
             f"{', '.join(classes) or '(no 1/1 run yet)'}", "",
             "## Supervised curve (decides the design)", "", curve_table(summary), "",
             design_checks(summary, setup["fractions"][0]), "",
             f"## All variants at {main} labeled", "", ablation_table(summary, main, labels), "",
             "## Label-fraction sweep (scored mIoU, %)", "", sweep_table(summary, labels, sweep), "",
             f"## Per-class IoU at {main} (%, mean over seeds)", "", per_class_table(summary, main, labels), "",
             "## Starting points (supervised pretraining, seed 0)", "", pretrain_table(out, classes), ""]
    if any(key.startswith("diag/") for run in runs if run["fraction"] == main for entry in run["log_history"]
           for key in entry):
        lines += ["## Per-step diagnostics (mean over seeds of each phase's mean)", "",
                  diagnostics_table(runs, labels, main), ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[8:]))


DIAGNOSTICS = ("diag/teacher_accuracy", "diag/student_accuracy", "diag/teacher_relation_error",
               "diag/student_relation_error", "grad_norm/supervised", "grad_norm/consistency",
               "grad_norm/structured", "loss/supervised")


def _phase_mean(run: dict, key: str, first: int, last: int) -> float | None:
    # Non-finite windows are left out: before the float32 fix of L_sc's cosine (pairs of two zero vectors), the
    # relation errors against a one-hot truth were NaN in some logging windows (a diagnostic only; training
    # compares softmax vectors, which are never zero).
    values = [e[key] for e in run["log_history"]
              if key in e and first <= e["step"] <= last and math.isfinite(e[key])]
    return statistics.fmean(values) if values else None


def diagnostics_table(runs: list[dict], labels: dict[str, str], fraction: str) -> str:
    """For each variant with logged diagnostics: every DIAGNOSTICS key averaged over the first tenth, the rest of
    the first half and the second half of the run's steps, then over seeds."""
    by_variant: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        if run["fraction"] == fraction:
            by_variant[run["variant"]].append(run)
    with_diag = [v for v in labels if v in by_variant
                 and any("diag/" in k for r in by_variant[v] for e in r["log_history"] for k in e)]
    steps = max(e["step"] for v in with_diag for r in by_variant[v] for e in r["log_history"])
    phases = [(1, steps // 10), (steps // 10 + 1, steps // 2), (steps // 2 + 1, steps)]
    rows = ["| variant | value | " + " | ".join(f"steps {a}–{b}" for a, b in phases) + " |",
            "|---|---|" + "---|" * len(phases)]
    for variant in with_diag:
        for key in DIAGNOSTICS:
            cells = []
            for first, last in phases:
                means = [m for r in by_variant[variant] if (m := _phase_mean(r, key, first, last)) is not None]
                cells.append(f"{statistics.fmean(means):.3f}" if means else "")
            if any(cells):
                rows.append(f"| {labels[variant]} | {key} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_plots(runs: list[dict], summary: dict, out: Path, labels: dict[str, str], sweep: tuple[str, ...],
                fraction: str, classes: list[str]) -> list[Path]:
    """mIoU vs labeled images, and per-variant training curves; nothing (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install 'sclseg[plots]'): no plots written")
        return []
    colours = {variant: f"C{i}" for i, variant in enumerate(labels)}
    return [_plot_sweep(plt, summary, out, labels, sweep, colours),
            _plot_curves(plt, runs, out, labels, fraction, colours, classes)]


def _plot_sweep(plt, summary: dict, out: Path, labels: dict, sweep: tuple, colours: dict) -> Path:
    fractions = sorted(summary, key=Fraction)
    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in sweep:
        points = [summary[f][variant] for f in fractions if variant in summary[f]]
        if points:
            ax.errorbar([p["num_labeled"] for p in points], [p["mean"] for p in points],
                        yerr=[0 if p["std"] != p["std"] else p["std"] for p in points], marker="o", capsize=3,
                        label=labels[variant], color=colours[variant])
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labeled synthetic images")
    ax.set_ylabel("val mIoU, scored classes (%)")
    ax.set_title("mIoU vs labeled images (mean ± std over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "miou_vs_labeled.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_curves(plt, runs: list[dict], out: Path, labels: dict, fraction: str, colours: dict,
                 classes: list[str]) -> Path:
    """The first seed at the ablation's fraction: each loss term and the validation mIoU against the step."""
    at_fraction = [r for r in runs if r["fraction"] == fraction and r["variant"] in labels]
    main = [r for r in at_fraction if r["seed"] == min(x["seed"] for x in at_fraction)]
    fig, axes = plt.subplots(1, len(TERMS) + 1, figsize=(18, 3.6))
    for run in main:
        history, style = run["log_history"], {"color": colours[run["variant"]], "label": labels[run["variant"]]}
        for ax, term in zip(axes, TERMS):
            points = [(h["step"], h[term]) for h in history if term in h]
            if points:
                ax.plot(*zip(*points), **style)
            ax.set_title(term)
        points = [(h["step"], miou({"metrics": h}, classes)) for h in history if "eval_mean_iou" in h]
        axes[-1].plot(*zip(*points), marker="o", **style)
    axes[-1].set_title("val mIoU, scored classes (%)")
    for ax in axes:
        ax.set_xlabel("step")
    axes[-1].legend(fontsize=6)
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""The README's main job against its supervised-only counterpart, over seeds.

    python experiments/main_job.py [--seeds 0 1 2] [--report-only]

For each seed runs, one after the other (each uses both cores),
`accelerate launch recipes/train_scl.py --seed S --output_dir outputs/main-ssl-sS` (the embedded default) and the
same with `--consistency_weight 0 --structured_consistency_weight 0 --output_dir outputs/main-sup-sS`, then reads
the teacher's per-class IoU from each saved model card and prints a table: the mIoU the job prints (19 classes),
the mIoU over the synthetic benchmark's scored classes (those supervised training with every label learns, taken
from `results/ablation-v3/results.json`, never from a semi-supervised run), each seed's difference (the two runs
of a seed share the first 900 steps exactly), and mean ± std. The last column is the std of each seed's scored
difference over 1000 bootstrap resamples of the validation images (the two teachers re-evaluated image by image):
how much of a difference the 32 validation images alone could make. `--report-only` tabulates existing outputs.
Writes `results.json` and `results.md` to `--out` (default `results/main-job/`).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SUPERVISED = ["--consistency_weight", "0", "--structured_consistency_weight", "0"]
IOU_ROW = re.compile(r"^\| ([a-z ]+) \| ([0-9.]+|n/a|—|-) \|$", re.M)
RUNS = {"ssl": [], "sup": SUPERVISED}
DATA_ROOT = ROOT / "data" / "synthetic-128x256"  # the embedded default's data_root


def output_dir(kind: str, seed: int) -> Path:
    return ROOT / "outputs" / f"main-{kind}-s{seed}"


def train(kind: str, seed: int) -> float:
    """One run of the main job (kind "ssl") or its supervised counterpart ("sup"); returns its wall time (s)."""
    command = ["accelerate", "launch", "recipes/train_scl.py", "--seed", str(seed),
               "--output_dir", str(output_dir(kind, seed)), *RUNS[kind]]
    start = time.perf_counter()
    log = output_dir(kind, seed).with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def per_class_iou(folder: Path) -> dict[str, float | None]:
    """Per-class IoU (fraction; None for a class absent from prediction and truth, "n/a" in the card) from the
    validation block of the model card sclseg writes into `folder`."""
    card = (folder / "README.md").read_text()
    block = card.split("<!-- sclseg:iou", 1)[1].split("<!-- /sclseg:iou -->", 1)[0]
    return {name: (float(value) / 100 if value[0].isdigit() else None) for name, value in IOU_ROW.findall(block)}


def miou(ious: dict[str, float | None], classes: list[str] | None = None) -> float:
    """mIoU in %: over the classes with an IoU (what the trainer prints), or over `classes`, absent ones as 0 (as
    the ablation's report scores them)."""
    if not classes:
        return 100 * statistics.fmean(v for v in ious.values() if v is not None)
    return 100 * statistics.fmean(ious.get(n) or 0.0 for n in classes)


def val_confusions(folder: Path) -> torch.Tensor:
    """(N, C, C) confusion matrices of the model saved in `folder` on each validation image."""
    from transformers import AutoModelForSemanticSegmentation

    from sclseg.data import CityscapesDataset, EvalTransform, list_split
    from sclseg.evaluation.trainer_metrics import per_image_confusion

    model = AutoModelForSemanticSegmentation.from_pretrained(folder).eval()
    dataset = CityscapesDataset(list_split(DATA_ROOT, "val"), EvalTransform())
    matrices = []
    with torch.no_grad():
        for index in range(len(dataset)):
            item = dataset[index]
            pred = model(pixel_values=item["pixel_values"][None]).logits.argmax(1)
            matrices.append(per_image_confusion(pred, item["labels"][None], model.config.num_labels)[0])
    return torch.stack(matrices)


def _scored_miou(confusion: torch.Tensor, indices: list[int]) -> float:
    """mIoU in % of a (C, C) confusion matrix over the class `indices` (a class absent from both counts 0)."""
    from sclseg.evaluation.metrics import scores_from_confusion

    iou = scores_from_confusion(confusion)["per_class_iou"]
    return 100 * statistics.fmean(0.0 if iou[i] != iou[i] else iou[i] for i in indices)


def bootstrap_std(seed: int, classes: list[str], resamples: int = 1000) -> float:
    """Std of the scored mIoU difference (main job − supervised) over resamples of the validation images."""
    from sclseg.data.labels import CLASS_NAMES

    ssl, sup = val_confusions(output_dir("ssl", seed)), val_confusions(output_dir("sup", seed))
    indices = [CLASS_NAMES.index(name) for name in classes]
    picks = torch.randint(len(ssl), (resamples, len(ssl)), generator=torch.Generator().manual_seed(seed))
    differences = [_scored_miou(ssl[p].sum(0), indices) - _scored_miou(sup[p].sum(0), indices) for p in picks]
    return statistics.stdev(differences)


def report(seeds: list[int], classes: list[str], wall: dict[str, float], out: Path) -> str:
    rows = ["| seed | main job, 19 classes | supervised, 19 classes | difference | main job, scored | "
            "supervised, scored | difference | std from the 32 val images |", "|---|---|---|---|---|---|---|---|"]
    columns: dict[str, list[float]] = {key: [] for key in ("ssl19", "sup19", "d19", "ssl", "sup", "d", "boot")}
    for seed in seeds:
        ssl, sup = per_class_iou(output_dir("ssl", seed)), per_class_iou(output_dir("sup", seed))
        values = {"ssl19": miou(ssl), "sup19": miou(sup), "ssl": miou(ssl, classes), "sup": miou(sup, classes)}
        values["d19"], values["d"] = values["ssl19"] - values["sup19"], values["ssl"] - values["sup"]
        values["boot"] = bootstrap_std(seed, classes)
        for key, value in values.items():
            columns[key].append(value)
        rows.append(f"| {seed} | {values['ssl19']:.2f} | {values['sup19']:.2f} | {values['d19']:+.2f} | "
                    f"{values['ssl']:.2f} | {values['sup']:.2f} | {values['d']:+.2f} | {values['boot']:.2f} |")
    if len(seeds) > 1:
        cell = {k: f"{statistics.fmean(v):.2f} ± {statistics.stdev(v):.2f}" for k, v in columns.items()}
        rows.append(f"| mean ± std | {cell['ssl19']} | {cell['sup19']} | {cell['d19']} | {cell['ssl']} | "
                    f"{cell['sup']} | {cell['d']} | |")
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"seeds": seeds, "scored_classes": classes, "values": columns,
                                                  "wall_s": wall}, indent=1))
    text = "\n".join(rows)
    (out / "results.md").write_text(f"Scored classes: {', '.join(classes)}\n\n{text}\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "main-job",
                        help="folder of results.json and results.md")
    cli = parser.parse_args()
    classes = json.loads((ROOT / "experiments/results/ablation-v3/results.json").read_text())["scored_classes"]
    recorded = cli.out / "results.json"
    # A report of finished runs keeps the wall times the runs recorded.
    wall = json.loads(recorded.read_text()).get("wall_s", {}) if cli.report_only and recorded.exists() else {}
    if not cli.report_only:
        for seed in cli.seeds:
            for kind in RUNS:
                wall[f"{kind}-s{seed}"] = train(kind, seed)
                print(f"{kind} seed {seed}: {wall[f'{kind}-s{seed}']:.0f} s", file=sys.stderr)
    print(report(cli.seeds, classes, wall, cli.out))


if __name__ == "__main__":
    main()

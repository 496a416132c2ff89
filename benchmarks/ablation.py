"""The paper's ablation (Table 2/3) on the embedded synthetic Cityscapes, and a label-fraction sweep.

    python benchmarks/ablation.py                 # the full run (~1 h on 2 CPU cores)
    python benchmarks/ablation.py --quick         # a 5-minute version (1 seed, fewer steps, fewer images)
    python benchmarks/ablation.py --report-only   # rebuild tables and plots from finished runs

Protocol, as in the paper (which fine-tunes NVIDIA's supervised model): per labeled set, one supervised model is
trained first (`pretrain_steps`, seed 0, labeled images only); every variant starts from it and trains `steps`
more, with identical budgets (model, steps, crops, labeled set; seeds 0, 1, 2 change sampling, augmentation and
CutMix, never the labeled split or the starting weights):
  (a) supervised only, (b) + pixel consistency (λ_c), (c) + structured consistency (λ_c + λ_sc) = SCL,
  (d) SCL without EMA (the teacher is the student after each step).
Sweep: (a) and (c) at 1/16, 1/8 and 1/4 of the synthetic train set labeled (the rest + train_extra unlabeled).
Each run is one subprocess (`--worker`) with one torch thread; `--jobs` run side by side. A run's result is a JSON
file; finished runs are not repeated, so an interrupted benchmark resumes. Everything is written to `--out`:
runs/*.json, results.json, results.md (tables) and PNG plots (matplotlib, optional extra `plots`).
Reported: validation mIoU of the teacher weights (of the student for (a), which has no unlabeled term; SCLTrainer
still keeps an EMA copy and evaluates it), whole-image inference, mean ± sample std over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EMBEDDED = ROOT / "recipes" / "configs" / "embedded.yaml"

VARIANTS: dict[str, dict[str, str]] = {
    "a_supervised": {"--consistency_weight": "0", "--structured_consistency_weight": "0"},
    "b_consistency": {"--structured_consistency_weight": "0"},
    "c_scl": {},
    "d_scl_no_ema": {"--ema_decay": "0"},
}
# Probes of why a variant behaves as it does; run only when named with --variants.
PROBES: dict[str, dict[str, str]] = {
    "c_scl_weights_div20": {"--consistency_weight": "1", "--structured_consistency_weight": "0.15"},
    # Box size: 32 boxes on a 128 crop are ~20 px (2.5 cells of the stride-8 features); 4 boxes are ~50 px.
    "c_scl_4_boxes": {"--cutmix_boxes": "4", "--structured_boxes": "2"},
    # Learning rate: the fine-tuning stage at the paper's 0.002 (the protocol uses the embedded default's 0.02, and
    # λ_c = 20 multiplies the step the consistency term takes).
    "a_supervised_lr_paper": {"--consistency_weight": "0", "--structured_consistency_weight": "0",
                              "--learning_rate": "0.002"},
    "c_scl_lr_paper": {"--learning_rate": "0.002"},
    # A mechanics check: consistency towards a better, frozen teacher (distillation) must lift the student.
    "c_scl_frozen_better_teacher": {"--ema_decay": "1", "--ema_warmup": "false", "--eval_with_teacher": "false"},
}
# The teacher weights of that probe: the supervised start of the longer-pretraining probe (results folder name).
TEACHER_FROM = {"c_scl_frozen_better_teacher": "ablation-probe-longer-pretraining"}
LABELS = {"a_supervised": "(a) supervised", "b_consistency": "(b) + consistency",
          "c_scl": "(c) + structured consistency (SCL)", "d_scl_no_ema": "(d) SCL without EMA",
          "c_scl_weights_div20": "probe: (c) with λ_c, λ_sc / 20 (1, 0.15)",
          "a_supervised_lr_paper": "probe: (a) at the paper's learning rate 0.002",
          "c_scl_lr_paper": "probe: (c) at the paper's learning rate 0.002",
          "c_scl_4_boxes": "probe: (c) with 4 CutMix boxes (2 scored by L_sc) instead of 32 (16)",
          "c_scl_frozen_better_teacher": "probe: (c) towards a frozen better teacher (student evaluated)"}

# The benchmark's fixed size. Images at 128x256 (1/8 of Cityscapes per side) keep a 2-core run near an hour;
# 64 train images of which 1/4 = 16 are labeled (the issue's example), 512 train_extra unlabeled, 64 val.
# Like the paper (which fine-tunes NVIDIA's supervised Cityscapes model), every variant starts from one supervised
# model per labeled set (`pretrain_steps` on the labeled images only, seed 0) and then trains `steps` more steps.
FULL = {"size": (128, 256), "train": 64, "val": 64, "extra": 512, "pretrain_steps": 300, "steps": 300,
        "seeds": (0, 1, 2), "crop": 128, "fractions": ("1/16", "1/8", "1/4"), "main_fraction": "1/4", "evals": 5}
QUICK = {"size": (96, 192), "train": 32, "val": 16, "extra": 64, "pretrain_steps": 40, "steps": 40, "seeds": (0,),
         "crop": 96, "fractions": ("1/8", "1/4"), "main_fraction": "1/4", "evals": 2}


def run_specs(setup: dict, variants: list[str]) -> list[dict]:
    """Every run: the variants at the main fraction, then (a) and (c) (if chosen) at the other fractions."""
    specs = [{"variant": v, "fraction": setup["main_fraction"], "seed": s} for v in variants for s in setup["seeds"]]
    for fraction in setup["fractions"]:
        if fraction != setup["main_fraction"]:
            specs += [{"variant": v, "fraction": fraction, "seed": s}
                      for v in ("a_supervised", "c_scl") if v in variants for s in setup["seeds"]]
    return specs


def run_name(spec: dict) -> str:
    if spec.get("pretrain"):
        return f"pretrain_f{spec['fraction'].replace('/', 'of')}"
    return f"{spec['variant']}_f{spec['fraction'].replace('/', 'of')}_s{spec['seed']}"


def pretrain_spec(fraction: str) -> dict:
    return {"variant": "a_supervised", "fraction": fraction, "seed": 0, "pretrain": True}


def pretrained_dir(out: Path, fraction: str) -> Path:
    return out / "work" / f"pretrained_f{fraction.replace('/', 'of')}"


def worker_flags(spec: dict, setup: dict, data_root: Path, output_dir: Path) -> list[str]:
    """The recipe's flags for one run: the embedded default, resized to the benchmark, plus the variant."""
    steps = setup["pretrain_steps"] if spec.get("pretrain") else setup["steps"]
    flags = {
        "--data_root": str(data_root), "--synthetic": "false", "--labeled_fraction": spec["fraction"],
        "--output_dir": str(output_dir), "--seed": str(spec["seed"]), "--max_steps": str(steps),
        "--crop_size": str(setup["crop"]), "--class_uniform_tile": str(setup["crop"]),
        # The embedded default's schedule scaled to this budget: ramp over a third of the steps.
        "--consistency_rampup_steps": str(steps // 3), "--logging_steps": str(max(steps // 30, 1)),
        "--eval_strategy": "steps", "--eval_steps": str(max(steps // setup["evals"], 1)),
        "--save_strategy": "no", "--dataloader_num_workers": "0", "--unlabeled_prefetch": "0",
        "--disable_tqdm": "true", "--num_prediction_images": "0",
    }
    flags.update({**VARIANTS, **PROBES}[spec["variant"]])
    if not spec.get("pretrain"):
        flags["--model_name_or_path"] = str(pretrained_dir(output_dir.parents[1], spec["fraction"]))
    return [str(EMBEDDED)] + [item for pair in flags.items() for item in pair]


def build_trainer(flags: list[str]):
    """The recipe's model, data and `SCLTrainer` for `flags` (no training); returns (trainer, labeled count)."""
    from sclseg import SCLImageProcessor, SCLTrainer
    from sclseg.recipe import build_datasets, build_model, parse_arguments

    model_args, data_args, args = parse_arguments(flags)
    model = build_model(model_args)
    train, evaluation, unlabeled, num_labeled = build_datasets(data_args, args)
    trainer = SCLTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                         unlabeled_dataset=unlabeled, processing_class=SCLImageProcessor())
    return trainer, num_labeled


def worker(spec_json: str) -> None:
    """One training run in this process (one thread); writes the run's JSON result."""
    import torch

    torch.set_num_threads(1)
    job = json.loads(spec_json)
    start = time.perf_counter()
    trainer, num_labeled = build_trainer(job["flags"])
    if job.get("teacher_from"):
        from safetensors.torch import load_file

        trainer.teacher.model.load_state_dict(load_file(Path(job["teacher_from"]) / "model.safetensors"))
    trainer.train()
    metrics = trainer.evaluate()
    if job["spec"].get("pretrain"):
        trainer.save_model(job["save_to"])
    result = {**job["spec"], "num_labeled": num_labeled, "metrics": metrics, "wall_s": time.perf_counter() - start,
              "log_history": trainer.state.log_history}
    path = Path(job["result"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1))
    os.replace(tmp, path)  # a result file is complete or absent


def launch(spec: dict, setup: dict, out: Path, data_root: Path) -> dict:
    """Run `spec` in a subprocess unless its result exists; returns the result."""
    result = out / "runs" / f"{run_name(spec)}.json"
    if not result.exists():
        teacher = TEACHER_FROM.get(spec["variant"])
        job = {"spec": spec, "result": str(result), "save_to": str(pretrained_dir(out, spec["fraction"])),
               "teacher_from": teacher and str(pretrained_dir(out.parent / teacher, spec["fraction"])),
               "flags": worker_flags(spec, setup, data_root, out / "work" / run_name(spec))}
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        log = out / "logs" / f"{run_name(spec)}.log"
        with open(log, "w") as f:
            done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], stdout=f,
                                  stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        if done.returncode != 0:
            raise RuntimeError(f"run {run_name(spec)} failed (exit {done.returncode}); see {log}")
    data = json.loads(result.read_text())
    print(f"{run_name(spec):32s} mIoU {100 * data['metrics']['eval_mean_iou']:6.2f}  {data['wall_s']:6.0f} s",
          flush=True)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5-minute version: 1 seed, 60 steps, small images")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default benchmarks/results/ablation[-quick])")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side, one thread each (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="override the optimizer steps per run")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="override the supervised pretraining steps")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=[*VARIANTS, *PROBES],
                        help="variants to run (default: the four of the ablation)")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="override the seeds")
    parser.add_argument("--fractions", nargs="+", default=None, help="override the labeled fractions (the first "
                        "one is the ablation's)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from finished runs")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.worker is not None:
        return worker(cli.worker)
    setup = dict(QUICK if cli.quick else FULL)
    overrides = {"steps": cli.steps, "pretrain_steps": cli.pretrain_steps, "seeds": cli.seeds,
                 "fractions": cli.fractions}
    setup.update({k: v for k, v in overrides.items() if v is not None})
    if cli.fractions is not None:
        setup["main_fraction"] = cli.fractions[0]
    out = cli.out or ROOT / "benchmarks" / "results" / ("ablation-quick" if cli.quick else "ablation")
    for sub in ("runs", "logs", "work"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    collect(setup, out, cli)
    from ablation_report import write_report

    results = [json.loads(path.read_text()) for path in sorted(out.glob("runs/*.json"))
               if not path.name.startswith("pretrain_")]  # every finished run in the folder, probes included
    write_report(results, setup, out, wall_s=time.perf_counter() - started, environment=environment())
    print(f"report: {out / 'results.md'}")


def collect(setup: dict, out: Path, cli: argparse.Namespace) -> None:
    """Run every missing run of this invocation (pretraining first)."""
    if cli.report_only:
        return
    specs = run_specs(setup, cli.variants)
    from sclseg.data import ensure_synthetic_cityscapes

    data_root = ROOT / "data" / ("ablation-quick" if cli.quick else "ablation")
    t0 = time.perf_counter()
    ensure_synthetic_cityscapes(data_root, size=setup["size"], train=setup["train"], val=setup["val"],
                                extra=setup["extra"])
    print(f"data: {data_root} ({time.perf_counter() - t0:.0f} s)", flush=True)
    with ThreadPoolExecutor(max_workers=cli.jobs) as pool:
        list(pool.map(lambda f: launch(pretrain_spec(f), setup, out, data_root), setup["fractions"]))
        list(pool.map(lambda spec: launch(spec, setup, out, data_root), specs))


def environment() -> dict[str, str]:
    import accelerate
    import torch
    import transformers

    return {"machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs, {platform.processor() or 'cpu'}",
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "accelerate": accelerate.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()

"""Training throughput of the embedded default under each labeled-loader setting.

    python benchmarks/bench_loader.py [--steps 200] [--repeats 2]

Runs `recipes/train_scl.py` (the embedded default's model, data and method) for `--steps` optimizer steps, once
supervised only and once with the unlabeled terms from step 0, with the labeled DataLoader in the main process
(`--dataloader_num_workers 0`), with one worker process (a new one each epoch), and with one persistent worker;
semi-supervised also with the unlabeled pairs prepared inline (`--unlabeled_prefetch 0`).
At 1/16 of the synthetic set a labeled epoch is a single batch of 4 crops, so Trainer makes a new DataLoader
iterator every step. Prints Trainer's `train_runtime` per setting (median of `--repeats`, settings interleaved) and
steps/s. The synthetic data must exist (one run of the default makes it). No saving, one 2-image evaluation.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import transformers

ROOT = Path(__file__).resolve().parents[1]
LOADERS = {
    "main process (workers 0)": ["--dataloader_num_workers", "0"],
    "1 worker, new each epoch": ["--dataloader_num_workers", "1", "--dataloader_persistent_workers", "false"],
    "1 persistent worker": ["--dataloader_num_workers", "1", "--dataloader_persistent_workers", "true"],
}
PHASES = {
    "supervised": ["--consistency_weight", "0", "--structured_consistency_weight", "0"],
    "semi-supervised": ["--supervised_warmup_steps", "0"],
}
# Semi-supervised only: the unlabeled pairs decoded and augmented inline instead of in the background thread
# (`--unlabeled_prefetch 2`, the default), with the labeled loader in the main process.
INLINE_PAIRS = {"workers 0, pairs inline": ["--dataloader_num_workers", "0", "--unlabeled_prefetch", "0"]}


def train_runtime(steps: int, flags: list[str], out: str) -> float:
    """Trainer's train_runtime (s) of one recipe run with `flags`."""
    command = [sys.executable, str(ROOT / "recipes" / "train_scl.py"), "--max_steps", str(steps),
               "--output_dir", out, "--save_strategy", "no", "--max_eval_samples", "2",
               "--num_prediction_images", "0", "--disable_tqdm", "true", *flags]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    found = re.findall(r"'train_runtime': '([0-9.]+)'", result.stdout + result.stderr)
    if not found:
        raise RuntimeError(f"no train_runtime in the output of {' '.join(command)}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    cli = parser.parse_args()
    print(f"machine: {platform.platform()}, {os.cpu_count()} cpus")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"embedded default (recipes/configs/embedded.yaml), {cli.steps} steps, median of {cli.repeats}")
    for phase, phase_flags in PHASES.items():
        settings = {**LOADERS, **(INLINE_PAIRS if phase == "semi-supervised" else {})}
        times: dict[str, list[float]] = {name: [] for name in settings}
        with tempfile.TemporaryDirectory() as out:
            for _ in range(cli.repeats):  # interleaved, so a busy spell hits every setting
                for name, loader_flags in settings.items():
                    times[name].append(train_runtime(cli.steps, phase_flags + loader_flags, out))
        base = statistics.median(times["1 worker, new each epoch"])
        for name, values in times.items():
            seconds = statistics.median(values)
            print(f"{phase:>15} | {name:<26} | {seconds:7.1f} s | {cli.steps / seconds:5.2f} steps/s | "
                  f"{base / seconds:4.2f}x")


if __name__ == "__main__":
    main()

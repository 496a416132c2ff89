"""Start-up cost: wall time and peak memory of importing sclseg and of the `sclseg` command, against
transformers' Trainer and `accelerate --help` on the same machine (issue 13).

Usage: python benchmarks/bench_imports.py [--repeats 5]

Each row runs in `--repeats` fresh interpreters, alternating with the other rows so that machine noise hits all
of them alike; it prints the median wall time and the median peak resident memory (ru_maxrss of the child).
The ratio `import sclseg` / `import transformers.Trainer` is taken from the medians of this one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROWS = {
    "python (empty)": [sys.executable, "-c", "pass"],
    "from transformers import Trainer": [sys.executable, "-c", "from transformers import Trainer"],
    "import sclseg": [sys.executable, "-c", "import sclseg"],
    "import sclseg.data": [sys.executable, "-c", "import sclseg.data"],
    "from sclseg import SCLTrainer": [sys.executable, "-c", "from sclseg import SCLTrainer"],
    "sclseg --help": [shutil.which("sclseg") or "sclseg", "--help"],
    "accelerate --help": [shutil.which("accelerate") or "accelerate", "--help"],
}


def run_once(argv: list[str]) -> float:
    """Wall seconds of one child process."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def peak_mib(argv: list[str]) -> float:
    """Peak resident memory of `argv`, measured in a fresh parent (ru_maxrss of children is a running maximum)."""
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
             "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, check=True)
    return int(out.stdout.strip()) / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    cli = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    for _ in range(cli.repeats):
        for name, argv in ROWS.items():
            times[name].append(run_once(argv))
    memory = {name: peak_mib(argv) for name, argv in ROWS.items()}
    import torch
    import transformers

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    print(f"{'command':34s} {'median s':>9s} {'min s':>7s} {'peak MiB':>9s}")
    for name in ROWS:
        print(f"{name:34s} {statistics.median(times[name]):9.2f} {min(times[name]):7.2f} {memory[name]:9.0f}")
    ratio = statistics.median(times["import sclseg"]) / statistics.median(times["from transformers import Trainer"])
    print(f"import sclseg / import Trainer: {ratio:.2f} (medians of {cli.repeats})")


if __name__ == "__main__":
    main()

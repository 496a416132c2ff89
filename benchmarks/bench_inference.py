"""Time and peak memory per image of `predict_probabilities` on the full-size WideResNet38-DeepLabV3+ (137M params).

Modes: whole, sliding, sliding+flip, sliding+flip+scales (0.5, 1, 2); float32 and bfloat16 autocast.
For each run the model is wrapped so that every forward is timed where it happens (same tiles, same batches,
synchronised on CUDA); "overhead" = wall time of the call / sum of its forwards, the goal being ≤ 1.05
(cropping, resizing, softmax and accumulation should cost under 5 % of the forwards).

Defaults follow the device: on CUDA the Cityscapes protocol (1024×2048 input, tile 1024, 3 repeats); on CPU a
reduced 512×1024 input with tile 512 and 1 repeat (one full-size forward takes ~10 s at 512×1024 on a 2-core
CPU, so the full protocol there would take most of an hour). Peak memory: CUDA max_memory_allocated above the
model; on CPU the peak resident set size above the level before the call, sampled every 5 ms.

Usage: python benchmarks/bench_inference.py [--size HxW] [--tile N] [--repeats N] [--device cpu|cuda]
                                            [--batch-size N] [--modes whole,sliding,...] [--dtypes float32,bfloat16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
from types import SimpleNamespace

import torch
import transformers
from torch import nn

import sclseg
from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation
from sclseg.evaluation import predict_probabilities

MODES = {
    "whole": dict(mode="whole"),
    "sliding": dict(mode="sliding"),
    "sliding+flip": dict(mode="sliding", flip=True),
    "sliding+flip+3scales": dict(mode="sliding", flip=True, scales=(0.5, 1.0, 2.0)),  # the paper's protocol
}
DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


class TimedModel(nn.Module):
    """Forwards to `model`, adding each forward's wall time (synchronised on CUDA) to `self.seconds`."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.seconds = 0.0
        self.forwards = 0

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        _sync(x.device)
        start = time.perf_counter()
        logits = self.model(x).logits
        _sync(x.device)
        self.seconds += time.perf_counter() - start
        self.forwards += 1
        return SimpleNamespace(logits=logits)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest resident set size above the starting level while the block runs (CPU memory; Linux /proc)."""

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.bytes = self.peak - self.start


def run_once(timed: TimedModel, x: torch.Tensor, kwargs: dict, tile: int, batch_size: int,
             dtype: torch.dtype | None) -> tuple[float, float, int, float]:
    """One call: (wall s, forward s, forwards, peak extra memory bytes)."""
    timed.seconds, timed.forwards = 0.0, 0
    if x.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(x.device)
        base = torch.cuda.memory_allocated(x.device)
    with PeakRSS() as rss:
        _sync(x.device)
        start = time.perf_counter()
        predict_probabilities(timed, x, tile=tile, batch_size=batch_size, autocast_dtype=dtype, **kwargs)
        _sync(x.device)
        wall = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated(x.device) - base if x.device.type == "cuda" else rss.bytes
    return wall, timed.seconds, timed.forwards, memory


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="HxW; default 1024x2048 on CUDA, 512x1024 on CPU")
    parser.add_argument("--tile", type=int, default=None, help="default 1024 on CUDA, 512 on CPU")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per case; default 3 CUDA, 1 CPU")
    parser.add_argument("--batch-size", type=int, default=4, help="tiles per forward")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.size = args.size or ("1024x2048" if cuda else "512x1024")
    args.tile = args.tile or (1024 if cuda else 512)
    args.repeats = args.repeats or (3 if cuda else 1)
    return args


def print_machine(device: torch.device, model: nn.Module) -> None:
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}, sclseg {sclseg.__version__}", flush=True)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters")


def main() -> None:
    args = parse_args()
    h, w = (int(v) for v in args.size.lower().split("x"))
    device = torch.device(args.device)
    model = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig()).eval().to(device)
    timed = TimedModel(model)
    x = torch.randn(1, 3, h, w, device=device, generator=torch.Generator(device).manual_seed(0))
    print_machine(device, model)
    print(f"input 1x3x{h}x{w}, tile {args.tile}, stride {-(-2 * args.tile // 3)}, batch_size {args.batch_size}, "
          f"repeats {args.repeats} (median shown), one untimed warm-up forward per dtype")
    print(f"{'mode':<22}{'dtype':<10}{'forwards':>9}{'time/img s':>12}{'fwd sum s':>11}{'overhead':>10}"
          f"{'peak MiB':>10}")
    for dtype_name in args.dtypes.split(","):
        dtype = DTYPES[dtype_name]
        run_once(timed, x[..., : min(h, 64), : min(w, 64)], MODES["whole"], args.tile, 1, dtype)  # warm-up
        for mode_name in args.modes.split(","):
            runs = [run_once(timed, x, MODES[mode_name], args.tile, args.batch_size, dtype)
                    for _ in range(args.repeats)]
            wall, fwd = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            print(f"{mode_name:<22}{dtype_name:<10}{runs[0][2]:>9}{wall:>12.3f}{fwd:>11.3f}{wall / fwd:>10.3f}"
                  f"{max(r[3] for r in runs) / 2**20:>10.0f}", flush=True)


if __name__ == "__main__":
    main()

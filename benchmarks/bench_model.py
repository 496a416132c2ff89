"""Forward time of the full WideResNet38-DeepLabV3+ (137.1M parameters) at 512×1024, float32 and bfloat16.

Usage: python benchmarks/bench_model.py [--size 512x1024] [--repeats 3] [--device cpu|cuda] [--channels-last]
Prints the machine, the versions and the median of `repeats` timed forwards after one warm-up.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import transformers

from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_forward(model, x, dtype: torch.dtype | None, repeats: int) -> list[float]:
    times = []
    for i in range(repeats + 1):
        _sync(x.device)
        start = time.perf_counter()
        with torch.inference_mode(), torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            model(x)
        _sync(x.device)
        if i > 0:  # the first call is a warm-up (allocator, kernels)
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels-last", action="store_true")
    args = parser.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    device = torch.device(args.device)
    model = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig()).eval().to(device)
    x = torch.randn(1, 3, h, w, device=device)
    if args.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"versions: torch {torch.__version__}, transformers {transformers.__version__}")
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters, input 1x3x{h}x{w}, "
          f"channels_last={args.channels_last}")
    for name, dtype in (("float32", None), ("bfloat16 autocast", torch.bfloat16)):
        times = time_forward(model, x, dtype, args.repeats)
        print(f"{name:>18}: median {statistics.median(times):.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")


if __name__ == "__main__":
    main()

"""Cost of the SCL losses and of CutMix box sampling (issue 3): time and peak memory per forward+backward.

Usage: python benchmarks/bench_losses.py [--sizes 512x1024,896x896,1024x2048] [--repeats 3] [--device cpu|cuda]
       [--dense-budget-gb 2.0] [--threads T] [--model-size HxW | --model-seconds S]

Setting: B = 1, C = 19, N = 32 boxes, N_box = 16, N_pair = 9000 (the paper's), float32. Rows:
- ``L_sc sampled``: ``structured_consistency_loss`` forward + backward.
- ``L_sc dense``: every pair, one box at a time with its own backward (the least memory an exact eq. 8
  needs: one box's |T_n|×|T_n| matrices at a time). Where it would need more than ``--dense-budget-gb`` it is
  not run; time and memory are then extrapolated from the per-pair cost measured at 256×512 ("est.").
- ``L_c``: ``pixel_consistency_loss`` forward + backward.
- ``boxes``: ``sample_cutmix_boxes`` (no gradient).
Peak memory (first pass) is measured above the inputs: on CUDA with ``max_memory_allocated``; on CPU as the
peak resident set (``/proc/self/status`` VmHWM, reset through ``/proc/self/clear_refs``) with glibc's mmap
threshold fixed at 128 KiB so freed blocks go back to the OS. It includes the gradient of the (1, 19, H, W)
student probabilities, which every loss on them produces (its size is printed per input size).
Times (second pass) are medians of ``--repeats`` runs after one warm-up. ``--model-size`` times one forward +
backward of the full model at that size and scales it by pixels to 896×896 for the ratio; without it the
ratio uses ``--model-seconds`` or a CPU estimate (9.7 s per 512×1024 forward of NVIDIA's network
on an idle 2-core CPU).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from sclseg.cutmix import sample_cutmix_boxes
from sclseg.losses import pixel_consistency_loss, structured_consistency_loss, structured_consistency_loss_dense

CLASSES, NUM_BOXES, LAST_BOXES, MAX_PAIRS = 19, 32, 16, 9000
# Size at which the dense loss is measured to get its per-pair cost (its largest box needs ~0.3 GB).
CALIBRATION_SIZE = (256, 512)
# The per-box dense step holds about five float32 |T_n|² matrices at its peak (19.6 bytes per pair measured):
# used to decide, before measuring, whether it fits the budget.
_DENSE_BYTES_PER_PAIR = 20


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


LIBC = _libc()


def set_mmap_threshold(size: int) -> None:
    """glibc M_MMAP_THRESHOLD, fixed. 128 KiB: freed blocks go back to the OS at once, so the resident-set
    peak follows what torch holds (memory pass); 32 MiB, glibc's dynamic maximum: allocations are reused
    instead of page-faulted in anew, as in a long-running process (timing pass)."""
    if LIBC is not None:
        LIBC.mallopt(-3, size)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    raise KeyError(key)


def peak_mb(fn: Callable[[], None], device: torch.device) -> float:
    """Peak memory of ``fn`` above what was allocated before it, in MiB."""
    fn()  # warm-up: one-time allocations (thread pools, kernels) do not count
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    if LIBC is not None:
        LIBC.malloc_trim(0)
    base = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current resident set
    fn()
    return _status_mb("VmHWM") - base


def median_seconds(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_inputs(height: int, width: int, device: torch.device, seed: int = 0):
    generator = torch.Generator(device=device).manual_seed(seed)
    student = torch.randn(1, CLASSES, height, width, generator=generator, device=device).softmax(1)
    teacher = torch.randn(1, CLASSES, height, width, generator=generator, device=device).softmax(1)
    owner = sample_cutmix_boxes(1, height, width, num_boxes=NUM_BOXES, generator=generator, device=device).owner
    return student.requires_grad_(), teacher, owner


def box_sizes(owner: torch.Tensor) -> list[int]:
    return [int((owner == n).sum()) for n in range(NUM_BOXES - LAST_BOXES, NUM_BOXES)]


# Each step frees the gradient it made, so that the next measurement starts from the inputs alone.


def sampled_step(student, teacher, owner, generator) -> Callable[[], None]:
    def run() -> None:
        loss = structured_consistency_loss(
            student, teacher, owner, num_boxes=NUM_BOXES, last_boxes=LAST_BOXES, max_pairs=MAX_PAIRS,
            generator=generator,
        )
        loss.backward()
        student.grad = None

    return run


def dense_step(student, teacher, owner) -> Callable[[], None]:
    boxes = [n for n in range(NUM_BOXES - LAST_BOXES, NUM_BOXES) if (owner == n).any()]

    def run() -> None:
        for n in boxes:  # one box per graph: frees each |T_n|² matrix before the next box
            single = torch.where(owner == n, 0, -1)
            loss = structured_consistency_loss_dense(
                student, teacher, single, num_boxes=1, last_boxes=1, dtype=torch.float32
            )
            loss.backward()
        student.grad = None

    return run


def consistency_step(student, teacher) -> Callable[[], None]:
    def run() -> None:
        pixel_consistency_loss(student, teacher).backward()
        student.grad = None

    return run


def boxes_step(height: int, width: int, device: torch.device, generator) -> Callable[[], None]:
    def run() -> None:
        sample_cutmix_boxes(1, height, width, num_boxes=NUM_BOXES, generator=generator, device=device)

    return run


def dense_cost(device: torch.device, phase: str) -> float:
    """Dense cost at CALIBRATION_SIZE: seconds per pair (Σ|T_n|²) or MiB per pair of the largest box."""
    student, teacher, owner = make_inputs(*CALIBRATION_SIZE, device, seed=1)
    sizes = box_sizes(owner)
    step = dense_step(student, teacher, owner)
    if phase == "time":
        return median_seconds(step, device, repeats=1) / sum(s * s for s in sizes)
    grad_mb = student.numel() * 4 / 2**20
    return max(peak_mb(step, device) - grad_mb, 0.0) / max(s * s for s in sizes)


def bench_size(height, width, device, phase, repeats, budget_mb, per_pair) -> dict[str, str]:
    """One phase ("time": ms, or "memory": MiB) of every row at one size; ``per_pair`` is the phase's
    dense cost per pair (``dense_cost``), used where the dense loss does not fit ``budget_mb``."""
    student, teacher, owner = make_inputs(height, width, device)
    generator = torch.Generator(device=device).manual_seed(1)
    sizes = box_sizes(owner)
    grad_mb = student.numel() * 4 / 2**20
    steps = {
        "L_sc sampled": sampled_step(student, teacher, owner, generator),
        "L_sc dense": dense_step(student, teacher, owner),
        "L_c": consistency_step(student, teacher),
        "boxes": boxes_step(height, width, device, generator),
    }
    dense_fits = _DENSE_BYTES_PER_PAIR * max(s * s for s in sizes) <= budget_mb * 2**20
    cells = {}
    for name, step in steps.items():
        if name == "L_sc dense" and not dense_fits:
            where = f"{CALIBRATION_SIZE[0]}x{CALIBRATION_SIZE[1]}"
            if phase == "time":
                cells[name] = f"est. {per_pair * sum(s * s for s in sizes):.0f} s"
            else:
                cells[name] = f"est. {per_pair * max(s * s for s in sizes) + grad_mb:,.0f} MB (from {where})"
        elif phase == "time":
            seconds = median_seconds(step, device, 1 if name == "L_sc dense" else repeats)
            cells[name] = f"{seconds * 1e3:.1f} ms"
        else:
            cells[name] = f"{peak_mb(step, device):.1f} MB"
    if phase == "memory":
        pairs = sum(s * s for s in sizes)
        print(f"{height}x{width}: |T_n| of the last 16 boxes: sum {sum(sizes)}, max {max(sizes)}; "
              f"sum |T_n|^2 = {pairs:.3g}; input gradient {grad_mb:.1f} MB")
    return cells


def model_seconds(size: str, device: torch.device) -> float:
    """One forward+backward of the default (full WRN38) DeepLabV3+ at ``size``, B = 1, scaled to 896×896
    by pixel count. Eval-mode BatchNorm: in train mode a batch of 1 cannot normalise the ASPP image-pooling
    branch (1 value per channel); the cost is the same."""
    from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation

    height, width = (int(v) for v in size.split("x"))
    model = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig()).eval().to(device)
    x = torch.randn(1, 3, height, width, device=device)
    start = time.perf_counter()
    model(pixel_values=x).logits.square().mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    scaled = seconds * (896 * 896) / (height * width)
    print(f"model forward+backward at {size}: {seconds:.1f} s (one run, no warm-up) -> {scaled:.1f} s at 896x896")
    return scaled


def describe_machine(device: torch.device) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    text = (
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"torch threads {torch.get_num_threads()}, load average {load:.1f}, device {device}"
    )
    if device.type == "cuda":
        text += f" ({torch.cuda.get_device_name(device)})"
    return text + f"\nversions: torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="512x1024,896x896,1024x2048")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dense-budget-gb", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model-seconds", type=float, default=None, help="model fwd+bwd at 896x896, seconds")
    model.add_argument("--model-size", default=None, help="measure the model fwd+bwd at HxW, scale to 896x896")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(describe_machine(device))
    print(f"setting: B=1, C={CLASSES}, N={NUM_BOXES}, N_box={LAST_BOXES}, N_pair={MAX_PAIRS}, float32")
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    budget_mb = args.dense_budget_gb * 1024
    # Memory first, from a fresh process state (a pass after the timings read up to 4x higher), then time.
    set_mmap_threshold(128 * 1024)
    per_pair_mb = dense_cost(device, "memory")
    peaks = {size: bench_size(*size, device, "memory", args.repeats, budget_mb, per_pair_mb) for size in sizes}
    set_mmap_threshold(32 * 2**20)
    per_pair = dense_cost(device, "time")
    print(f"dense cost at {CALIBRATION_SIZE[0]}x{CALIBRATION_SIZE[1]}: {per_pair * 1e9:.1f} ns per pair, "
          f"{per_pair_mb * 2**20:.1f} bytes per pair of the largest box")
    times = {size: bench_size(*size, device, "time", args.repeats, budget_mb, per_pair) for size in sizes}
    model_time = model_seconds(args.model_size, device) if args.model_size else args.model_seconds
    print_table(sizes, times, peaks)
    report_ratio(times, model_time)



def print_table(sizes, times, peaks) -> None:
    names = ("L_sc sampled", "L_sc dense", "L_c", "boxes")
    header = " | ".join(f"{h}x{w} time | {h}x{w} peak" for h, w in sizes)
    print(f"\n| what | {header} |\n|---|" + "---|---|" * len(sizes))
    for name in names:
        cells = " | ".join(f"{times[size][name]} | {peaks[size][name]}" for size in sizes)
        print(f"| {name} | {cells} |")


def report_ratio(times, model_time: float | None) -> None:
    if (896, 896) not in times:
        return
    sampled_ms = float(times[(896, 896)]["L_sc sampled"].split()[0])
    if model_time is None:
        # NVIDIA's network: ~9.7 s per forward at 512×1024 on a 2-core CPU; scaled by pixels to 896² and ×3 for
        # forward + backward (backward ≈ 2 forwards).
        model_time = 3 * 9.7 * (896 * 896) / (512 * 1024)
        source = "estimate: 9.7 s forward at 512x1024 on a 2-core CPU, scaled by pixels, x3 for fwd+bwd"
    else:
        source = "this device"
    print(f"\nL_sc sampled at 896x896 = {sampled_ms:.1f} ms = {100 * sampled_ms / 1e3 / model_time:.2f}% "
          f"of one model forward+backward ({model_time:.1f} s, {source})")


if __name__ == "__main__":
    main()

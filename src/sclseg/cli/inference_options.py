"""Command-line flags shared by `sclseg evaluate` and `sclseg predict`: how each image is predicted."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when the command runs: `sclseg --help` must not load torch
    from sclseg.evaluation.evaluate_model import InferenceOptions

# The paper's Cityscapes protocol (Kim et al. 2020 §4.1): sliding window, horizontal flip, scales 0.5/1.0/2.0.
PAPER_PROTOCOL = "--mode sliding --tile 1024 --flip --scales 0.5,1,2"


def _scales(text: str) -> tuple[float, ...]:
    try:
        scales = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--scales must be comma-separated numbers, got {text!r}") from None
    if not scales or any(not s > 0 for s in scales):
        raise argparse.ArgumentTypeError(f"--scales must be positive numbers, got {text!r}")
    return scales


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --mode --tile --stride --flip --scales --batch-size --bf16 --device."""
    group = parser.add_argument_group("inference", f"the paper's protocol is: {PAPER_PROTOCOL}")
    group.add_argument("--mode", choices=("whole", "sliding"), default="whole",
                       help="whole image per forward, or sliding windows (default whole)")
    group.add_argument("--tile", type=int, default=1024, help="sliding-window side in pixels (default 1024)")
    group.add_argument("--stride", type=int, default=None, help="sliding-window step (default ceil(2/3 tile))")
    group.add_argument("--flip", action="store_true", help="average with the horizontally flipped prediction")
    group.add_argument("--scales", type=_scales, default=(1.0,),
                       help="comma-separated input scales averaged after resizing back, e.g. 0.5,1,2 (default 1)")
    group.add_argument("--batch-size", type=int, default=4,
                       help="windows (sliding) or images (whole) per forward; bounds the memory (default 4)")
    group.add_argument("--bf16", action="store_true", help="run forwards under bfloat16 autocast")
    group.add_argument("--device", default=None, help="torch device (default: the process's accelerator, else cpu)")


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """The parsed flags as `InferenceOptions`; `SystemExit` for a non-positive tile, stride or batch size."""
    from sclseg.evaluation.evaluate_model import InferenceOptions

    import torch

    for name in ("tile", "batch_size"):
        if getattr(args, name) < 1:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.stride is not None and not 0 < args.stride <= args.tile:
        raise SystemExit(f"error: --stride must be in (0, --tile={args.tile}], got {args.stride}")
    return InferenceOptions(mode=args.mode, tile=args.tile, stride=args.stride, flip=args.flip,
                            scales=tuple(args.scales), batch_size=args.batch_size,
                            autocast_dtype=torch.bfloat16 if args.bf16 else None)

"""`sclseg make-synthetic OUTPUT_ROOT`: write the embedded synthetic street-scene set in the Cityscapes layout."""

from __future__ import annotations

import argparse
import sys
import time


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 256x512, got {text!r}") from None
    return height, width


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-synthetic",
        help="write the synthetic street-scene data set (Cityscapes layout and label ids)",
        description="Render synthetic street scenes into OUTPUT_ROOT in the exact Cityscapes layout: "
        "leftImg8bit/{train,val,test,train_extra}, gtFine/{train,val} labelIds and colour, gtCoarse/train_extra. "
        "Deterministic for a seed. For smoke runs, CI and small benchmarks; not Cityscapes results.",
    )
    parser.add_argument("output_root", metavar="OUTPUT_ROOT", help="folder to write (new, empty, or a previous set)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--size", type=_size, default=(256, 512), metavar="HxW", help="image size (default: 256x512)")
    parser.add_argument("--train", type=_count, default=64, help="fine-labeled train images (default: 64)")
    parser.add_argument("--val", type=_count, default=32, help="fine-labeled val images (default: 32)")
    parser.add_argument("--extra", type=_count, default=512, help="coarse-labeled train_extra images (default: 512)")
    parser.add_argument("--test", type=_count, default=0, help="unlabeled test images (default: 0)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count, max 8)")
    parser.add_argument("--preview", action=argparse.BooleanOptionalAction, default=True,
                        help="write OUTPUT_ROOT/preview.png (image | colour label rows; default: on)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sclseg.data.synthetic import make_synthetic_cityscapes  # here, not at the top: `--help` needs no torch

    start = time.perf_counter()
    try:
        root = make_synthetic_cityscapes(
            args.output_root, seed=args.seed, size=args.size, train=args.train, val=args.val,
            extra=args.extra, test=args.test, num_workers=args.workers, preview=args.preview,
        )
    except (FileExistsError, ValueError) as error:
        print(f"sclseg make-synthetic: error: {error}", file=sys.stderr)
        return 2
    total = args.train + args.val + args.test + args.extra
    print(f"wrote {total} images ({args.train} train, {args.val} val, {args.test} test, {args.extra} train_extra) "
          f"of {args.size[0]}x{args.size[1]} to {root} in {time.perf_counter() - start:.1f} s")
    if args.preview:
        print(f"preview: {root / 'preview.png'}")
    return 0

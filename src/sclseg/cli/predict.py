"""`sclseg predict MODEL INPUT... --output DIR`: segment images and write labelIds / trainIds / colour / overlay
PNGs; `--split test --data-root ROOT` writes a ready-to-zip Cityscapes test submission.

File naming is `sclseg.evaluation.export`'s (its module docstring). Default formats: labelids,color (the file a
benchmark server or `evaluate-predictions` reads, and the one a person looks at).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .inference_options import PAPER_PROTOCOL, add_inference_arguments, inference_options

DEFAULT_FORMATS = "labelids,color"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="segment images (files, folders, globs) or a whole Cityscapes split and write PNGs",
        description="Predict with MODEL (a save_pretrained folder or a Hub id). Per input image <stem>.<ext>, "
        "writes <stem>_labelIds.png (Cityscapes label ids), <stem>_trainIds.png, <stem>_color.png (official "
        "palette) and/or <stem>_overlay.png into --output. With --split test --data-root ROOT: the labelIds go "
        "to OUTPUT/submission/<city>/<id>_leftImg8bit.png, ready to zip for the Cityscapes server. "
        f"Paper protocol: {PAPER_PROTOCOL}.",
    )
    parser.add_argument("model", help="local model folder or Hub repo id")
    parser.add_argument("inputs", nargs="*", help="image files, folders (searched recursively) or glob patterns")
    parser.add_argument("--output", required=True, type=Path, help="folder to write into (created)")
    parser.add_argument("--format", default=DEFAULT_FORMATS,
                        help=f"comma-separated: labelids, trainids, color, overlay (default {DEFAULT_FORMATS})")
    parser.add_argument("--split", default=None, help="predict a whole Cityscapes split instead of INPUTs")
    parser.add_argument("--data-root", type=Path, default=None, help="Cityscapes root (with --split)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    add_inference_arguments(parser)
    parser.set_defaults(func=run)


def _jobs(args: argparse.Namespace, formats: tuple[str, ...]) -> list[tuple[Path, dict[str, Path]]]:
    """(image path, {format: output path}) for every image to predict."""
    from sclseg.data import list_split
    from sclseg.evaluation.export import output_paths, submission_paths
    from sclseg.evaluation.inputs import collect_images

    if args.split is not None:
        if args.data_root is None or args.inputs:
            raise SystemExit("error: --split needs --data-root ROOT and no INPUT arguments")
        items = list_split(args.data_root, args.split, labels=False)
        return [(i.image_path, submission_paths(i.image_path, i.city, args.output, formats)) for i in items]
    if not args.inputs:
        raise SystemExit("error: give INPUT images, folders or globs, or --split SPLIT --data-root ROOT")
    jobs = [(p, output_paths(p, args.output, formats)) for p in collect_images(args.inputs)]
    seen: dict[Path, Path] = {}
    for image_path, paths in jobs:
        first = seen.setdefault(next(iter(paths.values())), image_path)
        if first != image_path:
            raise SystemExit(f"error: {first} and {image_path} have the same file name; their outputs would "
                             "overwrite each other (predict them into different --output folders)")
    return jobs


def run(args: argparse.Namespace) -> int:
    import torch
    from tqdm.auto import tqdm

    from sclseg.evaluation.evaluate_model import load_model_and_processor, predict_train_ids
    from sclseg.evaluation.export import parse_formats, write_prediction
    from sclseg.evaluation.inputs import load_rgb

    try:
        formats = parse_formats(args.format)
        if args.split is not None and "labelids" not in formats:
            formats = ("labelids", *formats)  # a submission is the point of --split
        jobs = _jobs(args, formats)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    options = inference_options(args)
    model, processor = load_model_and_processor(args.model, **({"revision": args.revision} if args.revision else {}))
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    converted = False
    for image_path, paths in tqdm(jobs, desc="predicting", unit="image"):
        try:
            image, mode = load_rgb(image_path)
        except (OSError, ValueError) as error:  # read_image names the file
            raise SystemExit(f"error: {error}") from None
        if mode is not None and not converted:
            print(f"note: {image_path} is a {mode} image; non-RGB inputs are converted to RGB", file=sys.stderr)
            converted = True
        write_prediction(image, predict_train_ids(model, processor, image, options, device), paths)
    print(f"wrote {len(jobs)} prediction(s) ({', '.join(formats)}) to {args.output}")
    if args.split is not None:
        print(f"submission: cd {args.output / 'submission'} && zip -r ../submission.zip . "
              "(upload submission.zip at cityscapes-dataset.com/submit)")
    return 0

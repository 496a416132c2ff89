"""`sclseg evaluate MODEL --data-root ROOT --split val`: mIoU of a model on a labeled Cityscapes split.

Runs as one process or several under `accelerate launch` (each process takes every world-size-th image; the
confusion matrices are summed; only the main process prints and writes). The loop is
`sclseg.evaluation.evaluate_model`; this module parses, prints and writes.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from .inference_options import PAPER_PROTOCOL, add_inference_arguments, inference_options


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="mIoU, per-class IoU and pixel accuracy of a model on a labeled Cityscapes split",
        description="Evaluate MODEL (a save_pretrained folder or a Hub id) on ROOT's SPLIT with the Cityscapes "
        f"protocol (19 classes, labelIds mapped to train ids, 255 ignored). Paper protocol: {PAPER_PROTOCOL}. "
        "Several processes: accelerate launch --multi_gpu --num_processes N -m sclseg.cli evaluate ...",
    )
    parser.add_argument("model", help="local model folder or Hub repo id")
    parser.add_argument("--data-root", required=True, type=Path, help="Cityscapes root (or a synthetic set)")
    parser.add_argument("--split", default="val", help="labeled split to evaluate (default val)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N images of the split")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers to this JSON file")
    parser.add_argument("--save-examples", type=int, default=0, metavar="K",
                        help="write a K-row example grid (image | ground truth | prediction | error map) and a "
                        "per-class IoU bar chart into --examples-dir")
    parser.add_argument("--examples-dir", type=Path, default=None,
                        help="folder for the pictures (default: ./sclseg_eval_<split>)")
    parser.add_argument("--update-card", action="store_true",
                        help="write the results into MODEL's README.md model card (local folders only)")
    parser.add_argument("--revision", default=None, help="Hub revision (branch, tag or commit)")
    add_inference_arguments(parser)
    parser.set_defaults(func=run)


def format_table(per_class_iou: dict[str, float], mean_iou: float, pixel_accuracy: float) -> str:
    """A fixed-width table: one line per class (IoU in %, 'n/a' for a class absent from GT and predictions),
    then the mIoU and the pixel accuracy."""
    width = max(len(name) for name in [*per_class_iou, "pixel accuracy"]) + 2

    def percent(value: float) -> str:
        return "n/a" if math.isnan(value) else f"{100 * value:6.2f}"

    lines = [f"{'class':<{width}}{'IoU %':>7}", "-" * (width + 7)]
    lines += [f"{name:<{width}}{percent(value):>7}" for name, value in per_class_iou.items()]
    lines += ["-" * (width + 7), f"{'mIoU':<{width}}{percent(mean_iou):>7}",
              f"{'pixel accuracy':<{width}}{percent(pixel_accuracy):>7}"]
    return "\n".join(lines)


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value  # JSON has no NaN; null marks an absent class


def results_record(scores: dict, class_names: list[str], args: argparse.Namespace, options) -> dict:
    """The JSON-ready record of one evaluation (what --json writes)."""
    per_class = dict(zip(class_names, scores["per_class_iou"]))
    return {
        "model": args.model, "data_root": str(args.data_root), "split": args.split,
        "num_images": scores["num_images"], **options.describe(),
        "mean_iou": _json_number(scores["mean_iou"]), "pixel_accuracy": _json_number(scores["pixel_accuracy"]),
        "mean_accuracy": _json_number(scores["mean_accuracy"]),
        "per_class_iou": {name: _json_number(v) for name, v in per_class.items()},
    }


def _check_card_target(args: argparse.Namespace) -> Path | None:
    if not args.update_card:
        return None
    folder = Path(args.model)
    if not folder.is_dir():
        raise SystemExit(f"error: --update-card updates the card of a local folder, and {args.model} is not one; "
                         "evaluate a local copy and push it with `sclseg push`")
    return folder


def _save_pictures(scores: dict, per_class: dict[str, float], args: argparse.Namespace) -> None:
    from sclseg.evaluation.visualize import example_grid, iou_bar_chart

    folder = args.examples_dir or Path(f"sclseg_eval_{args.split}")
    folder.mkdir(parents=True, exist_ok=True)
    rows = [(e.image, e.label, e.prediction) for e in scores["examples"]]
    if rows:
        example_grid(rows).save(folder / "examples.png")
    backend = iou_bar_chart(per_class, folder / "iou_per_class.png",
                            title=f"{Path(args.model).name} on {args.split}: mIoU {scores['mean_iou']:.3f}")
    note = "" if backend == "matplotlib" else " (plain PIL chart; pip install 'sclseg[plots]' for matplotlib)"
    print(f"wrote {len(rows)} example rows to {folder / 'examples.png'} and the IoU chart to "
          f"{folder / 'iou_per_class.png'}{note}")


def _card_labels(record: dict, data_root: Path) -> tuple[str, str]:
    """(dataset name, inference mode) for the model card, e.g. ("Cityscapes", "sliding 1024 + flip, scales
    0.5/1/2"). A synthetic set is named as such, so that its numbers are never read as Cityscapes results."""
    from sclseg.data.synthetic import MARKER_NAME

    dataset = "sclseg synthetic street scenes" if (data_root / MARKER_NAME).is_file() else "Cityscapes"
    mode = "sliding " + str(record["tile"]) if record["mode"] == "sliding" else "whole"
    mode += " + flip" if record["flip"] else ""
    if record["scales"] != [1.0]:
        mode += ", scales " + "/".join(f"{s:g}" for s in record["scales"])
    return dataset, mode


def _update_card(folder: Path, record: dict, args: argparse.Namespace) -> None:
    from sclseg.model_card import update_model_card_results

    dataset, mode = _card_labels(record, Path(args.data_root))
    path = update_model_card_results(folder, record, dataset_name=dataset, split=args.split, inference_mode=mode)
    print(f"updated the model card {path} ({dataset} {args.split}, {mode})")


def run(args: argparse.Namespace) -> int:
    import torch
    from accelerate import PartialState

    from sclseg.process_group import leave_process_group_together

    card_folder = _check_card_target(args)
    options = inference_options(args)
    state = PartialState(cpu=not torch.cuda.is_available())  # joins the process group under accelerate launch
    code = _evaluate(args, state, options, card_folder)
    leave_process_group_together(state)
    return code


def _evaluate(args: argparse.Namespace, state, options, card_folder: Path | None) -> int:
    import torch

    from sclseg.data import list_split
    from sclseg.evaluation.evaluate_model import evaluate_model, load_model_and_processor

    try:
        items = list_split(args.data_root, args.split)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    items = items[: args.limit] if args.limit is not None else items
    kwargs = {"revision": args.revision} if args.revision else {}
    model, processor = load_model_and_processor(args.model, **kwargs)
    device = torch.device(args.device) if args.device else state.device
    try:
        scores = evaluate_model(model, processor, items, options, device=device,
                                keep_examples=args.save_examples, progress=True)
    except ValueError as error:  # an unreadable image or label, or an image and label of different sizes
        raise SystemExit(f"error: {error}") from None
    if not state.is_main_process:
        return 0
    class_names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    record = results_record(scores, class_names, args, options)
    per_class = dict(zip(class_names, scores["per_class_iou"]))
    print(f"{args.model} on {args.split} ({record['num_images']} images, mode {options.mode}, "
          f"flip {options.flip}, scales {list(options.scales)}, {state.num_processes} process(es))")
    print(format_table(per_class, scores["mean_iou"], scores["pixel_accuracy"]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    if args.save_examples > 0:
        _save_pictures(scores, per_class, args)
    if card_folder is not None:
        _update_card(card_folder, record, args)
    return 0

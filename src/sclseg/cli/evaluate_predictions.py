"""`sclseg evaluate-predictions PRED_DIR --data-root ROOT --split val`: score Cityscapes-server-format labelIds
PNGs against gtFine with the numbers cityscapesscripts' evalPixelLevelSemanticLabeling gives."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-predictions",
        help="score a folder of labelIds PNGs (Cityscapes server format) against gtFine",
        description="Score PRED_DIR (flat or per-city; one <city>_<seq>_<frame>*.png labelIds file per "
        "ground-truth image, as the Cityscapes server and cityscapesscripts expect) against ROOT's gtFine SPLIT. "
        "Class IoU and their mean equal cityscapesscripts' evalPixelLevelSemanticLabeling.",
    )
    parser.add_argument("pred_dir", type=Path, help="folder of labelIds prediction PNGs")
    parser.add_argument("--data-root", required=True, type=Path, help="Cityscapes root holding gtFine/SPLIT")
    parser.add_argument("--split", default="val", help="labeled split (default val)")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers to this JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sclseg.evaluation.score_predictions import PredictionError, score_prediction_folder

    from .evaluate import format_table

    try:
        scores = score_prediction_folder(args.pred_dir, args.data_root, args.split, progress=True)
    except (PredictionError, FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    print(f"{args.pred_dir} on {args.split} ({scores['num_images']} images)")
    print(format_table(scores["per_class_iou"], scores["mean_iou"], scores["pixel_accuracy"]))
    if args.json is not None:
        def number(v: float) -> float | None:
            return None if math.isnan(v) else v  # JSON has no NaN; null marks a class absent from GT and preds

        record = {"predictions": str(args.pred_dir), "data_root": str(args.data_root), "split": args.split,
                  "num_images": scores["num_images"], "mean_iou": number(scores["mean_iou"]),
                  "pixel_accuracy": number(scores["pixel_accuracy"]),
                  "per_class_iou": {k: number(v) for k, v in scores["per_class_iou"].items()}}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0

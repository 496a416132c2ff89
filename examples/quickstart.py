"""Inference without training: run the paper's network through `pipeline("image-segmentation")` (to train one,
`accelerate launch recipes/train_scl.py`).

    python examples/quickstart.py [--model DIR_OR_HUB_ID] [--data-root data/synthetic] [--output outputs/quickstart]

Without --model it builds WideResNet38-DeepLabV3+ with random weights (the NVIDIA checkpoint converted with
`sclseg convert-nvidia` gives real predictions). It segments the first validation image of a Cityscapes-layout
folder (the embedded synthetic one by default, generated if absent) and writes the colourised prediction.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from transformers import pipeline

from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor
from sclseg.data.cityscapes import list_split
from sclseg.data.labels import colorize
from sclseg.data.synthetic import ensure_synthetic_cityscapes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="save_pretrained folder or Hub id (default: random WRN38)")
    parser.add_argument("--data-root", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--output", type=Path, default=Path("outputs/quickstart"))
    args = parser.parse_args()

    ensure_synthetic_cityscapes(args.data_root)
    item = list_split(args.data_root, "val")[0]
    if args.model is None:
        torch.manual_seed(0)
        segmenter = pipeline(
            "image-segmentation",
            model=DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig()).eval(),
            image_processor=SCLImageProcessor(),
        )
    else:
        segmenter = pipeline("image-segmentation", model=args.model)
    image = Image.open(item.image_path).convert("RGB")
    start = time.perf_counter()
    segments = segmenter(image)
    seconds = time.perf_counter() - start

    label2id = segmenter.model.config.label2id
    train_ids = np.full((image.height, image.width), 255, dtype=np.uint8)
    for segment in segments:
        train_ids[np.array(segment["mask"]) > 0] = label2id[segment["label"]]
    args.output.mkdir(parents=True, exist_ok=True)
    out_path = args.output / f"{item.image_id}_prediction_color.png"
    Image.fromarray(colorize(train_ids)).save(out_path)
    print(f"segmented {item.image_path} ({image.width}x{image.height}) in {seconds:.2f} s")
    print(f"classes found: {', '.join(s['label'] for s in segments)}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

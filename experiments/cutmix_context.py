"""How much a teacher's own prediction on a CutMix image u_m differs from its guessed label p_mt (RESULTS.md).

    python experiments/cutmix_context.py MODEL_DIR [--data-root data/ablation] [--crop 128] [--pairs 40]

p_mt = CutMix(p_t(u_a), p_t(u_b)) is what the student must predict from u_m. Where the teacher itself, given u_m,
predicts another class, the target asks for what the image no longer shows (the context came from the other
view). Printed per number of boxes N: the share of pixels where argmax p_t(u_m) = argmax p_mt, and the same with
the mask inverted (a misaligned mix, for scale). Unlabeled pairs as in training (two augmentations of one
train_extra image, `TrainTransform(crop)`), boxes from `sample_cutmix_boxes`, seed 0.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from sclseg.cutmix import cutmix, sample_cutmix_boxes


def pairs(data_root: Path, crop: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    from sclseg.data import TrainTransform, UnlabeledPairStream, load_unlabeled

    folder = load_unlabeled(data_root / "leftImg8bit" / "train_extra")
    stream = iter(UnlabeledPairStream(folder, TrainTransform(crop), seed=0))
    return [(p["pixel_values_a"][None], p["pixel_values_b"][None]) for p in (next(stream) for _ in range(count))]


@torch.inference_mode()
def agreement(model, views: list, num_boxes: int) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    aligned, inverted = [], []
    for u_a, u_b in views:
        boxes = sample_cutmix_boxes(1, u_a.shape[2], u_a.shape[3], num_boxes=num_boxes, generator=generator)
        p_a, p_b = model(pixel_values=torch.cat([u_a, u_b])).logits.softmax(1).chunk(2)
        own = model(pixel_values=cutmix(u_a, u_b, boxes.mask)).logits.argmax(1)
        aligned.append((own == cutmix(p_a, p_b, boxes.mask).argmax(1)).float().mean())
        inverted.append((own == cutmix(p_b, p_a, boxes.mask).argmax(1)).float().mean())
    return float(torch.stack(aligned).mean()), float(torch.stack(inverted).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--data-root", type=Path, default=Path("data/ablation"))
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--boxes", type=int, nargs="+", default=[32, 16, 4, 1])
    args = parser.parse_args()
    torch.manual_seed(0)
    import sclseg  # noqa: F401  registers the model classes
    from transformers import AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(args.model).eval()
    views = pairs(args.data_root, args.crop, args.pairs)
    print(f"{platform.machine()}, torch {torch.__version__}; model {args.model}; {args.pairs} pairs, crop {args.crop}")
    print("boxes N | argmax p_t(u_m) = argmax p_mt | same, mask inverted")
    for n in args.boxes:
        aligned, inverted = agreement(model, views, n)
        print(f"{n:7d} | {100 * aligned:29.1f}% | {100 * inverted:18.1f}%")


if __name__ == "__main__":
    main()

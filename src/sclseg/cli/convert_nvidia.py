"""`sclseg convert-nvidia CHECKPOINT OUTPUT_DIR`: NVIDIA DeepWV3Plus / wider_resnet38 → a save_pretrained folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert-nvidia",
        help="convert an NVIDIA DeepWV3Plus checkpoint (or the ImageNet wider_resnet38) to a save_pretrained folder",
        description="Convert NVIDIA's DeepWV3Plus checkpoint ({'state_dict': ...} or a bare state dict, keys with or "
        "without 'module.') into safetensors + config + image processor. Exact: the converted model reproduces "
        "NVIDIA's logits; any missing, unexpected or mis-shaped tensor is an error.",
    )
    parser.add_argument("checkpoint", type=Path, help="NVIDIA .pth / .pth.tar file")
    parser.add_argument("output_dir", type=Path, help="folder to write (created)")
    parser.add_argument("--num-labels", type=int, default=None, help="classes of the checkpoint (default 19)")
    parser.add_argument(
        "--id2label",
        default=None,
        help="'cityscapes' (default for 19 classes) or a JSON file mapping class index to name",
    )
    parser.add_argument(
        "--backbone-only",
        action="store_true",
        help="the checkpoint is the ImageNet wider_resnet38.pth.tar: write a WideResNetBackbone (bn_out and "
        "classifier are dropped)",
    )
    parser.set_defaults(func=run)


def _label_maps(num_labels: int | None, id2label: str | None) -> dict:
    from sclseg.models import CITYSCAPES_CLASSES

    if id2label is None or id2label == "cityscapes":
        if id2label == "cityscapes" and num_labels not in (None, len(CITYSCAPES_CLASSES)):
            raise SystemExit(f"--id2label cityscapes has 19 classes but --num-labels is {num_labels}")
        return {} if num_labels in (None, len(CITYSCAPES_CLASSES)) else {"num_labels": num_labels}
    path = Path(id2label)
    if not path.is_file():
        raise SystemExit(f"--id2label: {id2label} is neither 'cityscapes' nor a JSON file")
    mapping = {int(k): str(v) for k, v in json.loads(path.read_text()).items()}
    if num_labels is not None and num_labels != len(mapping):
        raise SystemExit(f"--id2label {path} names {len(mapping)} classes but --num-labels is {num_labels}")
    return {"id2label": mapping, "label2id": {v: k for k, v in mapping.items()}}


def run(args: argparse.Namespace) -> int:
    from sclseg.models import DeepLabV3PlusConfig, SCLImageProcessor
    from sclseg.models.convert_nvidia import CheckpointError, convert_deepwv3plus, convert_wider_resnet38

    try:
        if args.backbone_only:
            model = convert_wider_resnet38(args.checkpoint)
        else:
            model = convert_deepwv3plus(args.checkpoint,
                                        DeepLabV3PlusConfig(**_label_maps(args.num_labels, args.id2label)))
    except (CheckpointError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    args.output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.output_dir)
    SCLImageProcessor().save_pretrained(args.output_dir)
    kind = "WideResNetBackbone" if args.backbone_only else "DeepLabV3PlusForSemanticSegmentation"
    print(f"wrote {kind} ({sum(p.numel() for p in model.parameters()):,} parameters) to {args.output_dir}")
    return 0

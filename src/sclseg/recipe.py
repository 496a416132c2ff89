"""The training recipe behind `recipes/train_scl.py`: arguments, model, data, train, evaluate, export.

`ModelArguments` and `DataArguments` hold what is not a training knob; every method knob is in
`SCLTrainingArguments`. `run()` is what `accelerate launch recipes/train_scl.py` executes on every process.
"""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from accelerate import PartialState
from PIL import Image
from transformers import AutoModelForSemanticSegmentation, HfArgumentParser, enable_full_determinism, set_seed

from .data import (
    ClassUniformDataset, CityscapesDataset, EvalTransform, TrainTransform, UnlabeledPairStream,
    ensure_synthetic_cityscapes, list_split, load_unlabeled, make_semi_supervised_split, read_id_list,
    select_items,
)
from .data.labels import colorize
from .models import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor, WideResNetConfig
from .process_group import leave_process_group_together
from .trainer import SCLTrainer
from .training_args import SCLTrainingArguments

# Architectures by name. "wrn38" is the paper's (NVIDIA DeepWV3Plus); "wrn-small" keeps its topology (pooling,
# strides, dilations, bottlenecks, ASPP) at ~1/30 of the width (0.5M parameters) so the embedded default trains
# on a CPU.
MODEL_PRESETS: dict[str, dict] = {
    "wrn38": {},
    "wrn-small": {
        "backbone_config": {"stem_channels": 16, "depths": [1, 1, 1, 1, 1, 1],
                            "stage_channels": [[24, 24], [32, 32], [48, 48], [64, 64], [48, 64, 96], [64, 96, 128]],
                            "stage_dropout": [0.0, 0.0, 0.0, 0.0, 0.1, 0.1]},
        "aspp_channels": 48, "aspp_rates": [6, 12, 18], "low_level_channels": 16, "decoder_channels": 48,
    },
    # wrn-small at 1.5x the width (1.1M parameters, ~2x the step time on a CPU): the synthetic benchmark's
    # candidate when wrn-small cannot fit even all 64 labeled images (training loss 0.80 after 1500 steps).
    "wrn-medium": {
        "backbone_config": {"stem_channels": 24, "depths": [1, 1, 1, 1, 1, 1],
                            "stage_channels": [[36, 36], [48, 48], [72, 72], [96, 96], [72, 96, 144],
                                               [96, 144, 192]],
                            "stage_dropout": [0.0, 0.0, 0.0, 0.0, 0.1, 0.1]},
        "aspp_channels": 72, "aspp_rates": [6, 12, 18], "low_level_channels": 24, "decoder_channels": 72,
    },
}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A save_pretrained folder or Hub id to start from; None = `model_preset`."}
    )
    model_preset: str = field(
        default="wrn38", metadata={"help": f"Architecture when starting fresh: {sorted(MODEL_PRESETS)}."}
    )
    backbone_name_or_path: str | None = field(
        default=None,
        metadata={"help": "ImageNet WideResNet38 backbone (`sclseg convert-nvidia wider_resnet38.pth.tar DIR "
                          "--backbone-only`) to initialise the encoder."},
    )


@dataclass
class DataArguments:
    data_root: str = field(default="data/synthetic", metadata={"help": "Cityscapes root (official or NVIDIA layout)."})
    synthetic: bool = field(
        default=False, metadata={"help": "Generate the embedded synthetic Cityscapes at data_root if absent."}
    )
    synthetic_size: list[int] = field(
        default_factory=lambda: [256, 512],
        metadata={"help": "Height and width of the generated synthetic images (1/4 of Cityscapes per side by "
                          "default)."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Name of the data in the model card (default: Cityscapes, or the synthetic "
                                        "set); for data in the Cityscapes layout that is not Cityscapes."},
    )
    dataset_id: str | None = field(
        default=None, metadata={"help": "Hub dataset id of the data, listed in the model card's metadata."},
    )
    labeled_fraction: str | None = field(
        default=None,
        metadata={"help": "Labeled share of gtFine train, e.g. 1/8 (seeded split); the rest is unlabeled."},
    )
    labeled_list: str | None = field(default=None, metadata={"help": "File of labeled image ids (one per line)."})
    split_seed: int = field(default=0, metadata={"help": "Seed of the labeled/unlabeled split."})
    use_coarse: bool = field(
        default=True,
        metadata={"help": "Use train_extra: coarse labels boost rare classes in class-uniform sampling, images are "
                          "unlabeled data (paper §4.2)."},
    )
    crop_size: int = field(default=896, metadata={"help": "Training crop (paper: 896)."})
    scale_range: list[float] = field(
        default_factory=lambda: [0.5, 2.0],
        metadata={"help": "Random scale range of the training crops (paper: 0.5 2.0)."},
    )
    blur_prob: float = field(
        default=1.0,
        metadata={"help": "Probability of the Gaussian blur, sigma in [0.15, 1.3) pixels (NVIDIA: every image). At "
                          "1/8 of Cityscapes' resolution that sigma is 8x stronger relative to the scene; the "
                          "synthetic benchmark turns it off."},
    )
    class_uniform_pct: float = field(
        default=0.5,
        metadata={"help": "Share of labeled crops centred on a uniformly chosen class (Zhu et al. 2019: 0.5); 0 = "
                          "random crops."},
    )
    class_uniform_tile: int = field(
        default=1024, metadata={"help": "Tile size of the per-class centroids (Zhu et al. 2019: 1024)."}
    )
    unlabeled_source: str | None = field(
        default=None,
        metadata={"help": "Unlabeled images: a folder, Parquet/WebDataset shards or a Hub dataset id; None = "
                          "train_extra plus the unlabeled part of gtFine train."},
    )
    unlabeled_pair_mode: str = field(
        default="same",
        metadata={"help": "'same': u_a, u_b = two augmentations of one image (the paper); 'different': two images "
                          "(French et al. 2020)."},
    )
    unlabeled_shuffle_buffer: int = field(
        default=64, metadata={"help": "Examples per shuffled block of the unlabeled stream."}
    )
    unlabeled_prefetch: int = field(
        default=2,
        metadata={"help": "Unlabeled pairs decoded and augmented ahead in a background thread (0 = inline)."},
    )
    eval_split: str = field(default="val", metadata={"help": "Split evaluated during and after training."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Evaluate on the first N images only."})
    num_prediction_images: int = field(default=4, metadata={"help": "Colourised predictions written at the end."})

    def __post_init__(self) -> None:
        checks = [(0.0 <= self.class_uniform_pct <= 1.0, "class_uniform_pct must lie in [0, 1]"),
                  (self.class_uniform_tile >= 1, "class_uniform_tile must be >= 1"),
                  (self.unlabeled_pair_mode in ("same", "different"),
                   "unlabeled_pair_mode must be 'same' or 'different'"),
                  (self.unlabeled_shuffle_buffer >= 1, "unlabeled_shuffle_buffer must be >= 1"),
                  (self.unlabeled_prefetch >= 0, "unlabeled_prefetch must be >= 0")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"DataArguments: {message}")


def parse_arguments(argv: list[str], default_config: Path | None = None):
    """`[CONFIG.yaml] [--flag value ...]`: the YAML (or `default_config` when none is given) sets defaults,
    command-line flags override them."""
    parser = HfArgumentParser((ModelArguments, DataArguments, SCLTrainingArguments))
    config = Path(argv[0]) if argv and argv[0].endswith((".yaml", ".yml")) else default_config
    rest = argv[1:] if argv and argv[0].endswith((".yaml", ".yml")) else argv
    flags = yaml_to_flags(config) if config is not None else []
    return parser.parse_args_into_dataclasses(args=_device_flags() + flags + rest, look_for_args_file=False)


def _device_flags() -> list[str]:
    """`--use_cpu true` on a machine without CUDA or MPS. Under `accelerate launch` with several CPU processes,
    only `TrainingArguments.use_cpu` makes Trainer build a distributed (gloo) state; accelerate's own
    `use_cpu` config key does not reach multi-process launches (accelerate 1.15, utils/launch.py)."""
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    return [] if torch.cuda.is_available() or has_mps else ["--use_cpu", "true"]


def yaml_to_flags(path: Path) -> list[str]:
    """A flat YAML mapping → `--key value` flags (lists as several values, mappings as JSON)."""
    import yaml

    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values")
    flags: list[str] = []
    for key, value in config.items():
        if value is None:
            continue
        flags.append(f"--{key}")
        if isinstance(value, list):
            flags.extend(str(v) for v in value)
        elif isinstance(value, dict):
            flags.append(json.dumps(value))
        else:
            flags.append(str(value).lower() if isinstance(value, bool) else str(value))
    return flags


def build_model(model_args: ModelArguments) -> torch.nn.Module:
    if model_args.model_name_or_path is not None:
        return AutoModelForSemanticSegmentation.from_pretrained(model_args.model_name_or_path)
    if model_args.model_preset not in MODEL_PRESETS:
        raise ValueError(f"--model_preset {model_args.model_preset!r} is not one of {sorted(MODEL_PRESETS)}")
    preset = dict(MODEL_PRESETS[model_args.model_preset])
    backbone = WideResNetConfig(**preset.pop("backbone_config", {}))
    model = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig(backbone_config=backbone, **preset))
    if model_args.backbone_name_or_path is not None:
        from .models import WideResNetBackbone

        pretrained = WideResNetBackbone.from_pretrained(model_args.backbone_name_or_path)
        model.backbone.load_state_dict(pretrained.state_dict(), strict=True)
    return model


def labeled_and_unlabeled_items(data_args: DataArguments):
    """gtFine train split into labeled items and the ids of the rest (used as unlabeled images)."""
    train = list_split(data_args.data_root, "train")
    if data_args.labeled_list is not None:
        ids = read_id_list(data_args.labeled_list, known_ids=[item.image_id for item in train])
    elif data_args.labeled_fraction is not None:
        ids = make_semi_supervised_split([i.image_id for i in train], data_args.labeled_fraction,
                                         seed=data_args.split_seed).labeled
    else:
        return train, []
    return select_items(train, ids)


def build_unlabeled(data_args: DataArguments, args: SCLTrainingArguments, unlabeled_train, transform):
    """The unlabeled pair stream of this process: `--unlabeled_source`, else train_extra images plus the
    unlabeled part of gtFine train."""
    if data_args.unlabeled_source is not None:
        dataset = load_unlabeled(data_args.unlabeled_source)
    else:
        extra = list_split(data_args.data_root, "train_extra", labels=False) if data_args.use_coarse else []
        paths = [str(item.image_path) for item in list(unlabeled_train) + list(extra)]
        if not paths:
            raise ValueError("no unlabeled images: set --labeled_fraction, --use_coarse or --unlabeled_source")
        table = datasets.Dataset.from_dict({"image": paths}).cast_column("image", datasets.Image(decode=False))
        # Several shards per process so that split_dataset_by_node hands out whole shards (no file read twice).
        dataset = table.to_iterable_dataset(num_shards=min(len(paths), 4 * max(args.world_size, 1)))
    return UnlabeledPairStream(dataset, transform, pair_mode=data_args.unlabeled_pair_mode, seed=args.seed,
                               shuffle_buffer=data_args.unlabeled_shuffle_buffer, rank=args.process_index,
                               world_size=args.world_size, prefetch=data_args.unlabeled_prefetch)


def full_batches(num_labeled: int, args: SCLTrainingArguments) -> int:
    """Samples per epoch: the labeled count rounded up to whole global batches. A last batch of one image would
    stop training in BatchNorm (the image-pooling branch sees 1 value per channel): 5 labeled images in batches
    of 4, or 1 labeled image, did. The extra samples are random crops of images `i % num_labeled`."""
    batch = args.per_device_train_batch_size * max(args.world_size, 1)
    return math.ceil(num_labeled / batch) * batch


def build_datasets(data_args: DataArguments, args: SCLTrainingArguments):
    labeled, unlabeled_train = labeled_and_unlabeled_items(data_args)
    transform = TrainTransform(data_args.crop_size, scale_range=tuple(data_args.scale_range),
                               blur_prob=data_args.blur_prob)
    extra = list_split(data_args.data_root, "train_extra") if data_args.use_coarse else []
    with args.main_process_first(desc="class centroids"):  # computed once, cached next to the data
        train = ClassUniformDataset(labeled, transform, extra_items=extra, pct=data_args.class_uniform_pct,
                                    tile_size=data_args.class_uniform_tile, seed=args.seed,
                                    epoch_size=full_batches(len(labeled), args))
    eval_items = list_split(data_args.data_root, data_args.eval_split)[: data_args.max_eval_samples]
    evaluation = CityscapesDataset(eval_items, EvalTransform())
    unlabeled = build_unlabeled(data_args, args, unlabeled_train, transform) if args.uses_unlabeled else None
    return train, evaluation, unlabeled, len(labeled)


def save_predictions(model: torch.nn.Module, dataset: CityscapesDataset, folder: Path, count: int) -> list[Path]:
    """Image | ground truth | prediction strips (official palette) for the first `count` images."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    model.eval()
    for index in range(min(count, len(dataset))):
        item = dataset[index]
        image, _ = dataset.load(index)
        with torch.no_grad():
            logits = model(pixel_values=item["pixel_values"][None].to(model.device)).logits
        pred = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
        strip = np.concatenate([image, colorize(item["labels"].numpy().astype(np.uint8)), colorize(pred)], axis=1)
        path = folder / f"{item['image_id']}_image_gt_pred.png"
        Image.fromarray(strip).save(path)
        written.append(path)
    return written


def _use_all_cores(args: SCLTrainingArguments) -> None:
    """On CPU, share the cores among the processes: `accelerate launch` sets OMP_NUM_THREADS=1 per process by
    default (its --num_cpu_threads_per_process), which leaves all but one core idle in a one-process run."""
    if args.use_cpu:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(args.world_size, 1)))


def _seed_everything(args: SCLTrainingArguments) -> None:
    """Seed before the model is built: Trainer seeds only in its own __init__, after a fresh model has drawn its
    initial weights, so two runs of one command started from different weights (up to 1.8 apart after 6 steps).
    `--full_determinism` also makes CUDA pick deterministic kernels (slower)."""
    if args.full_determinism:
        enable_full_determinism(args.seed)
    else:
        set_seed(args.seed)


def run(model_args: ModelArguments, data_args: DataArguments, args: SCLTrainingArguments) -> dict[str, float]:
    _use_all_cores(args)
    _seed_everything(args)
    if data_args.synthetic:
        with args.main_process_first(desc="synthetic data"):
            ensure_synthetic_cityscapes(data_args.data_root, size=tuple(data_args.synthetic_size))
    model = build_model(model_args)
    train, evaluation, unlabeled, num_labeled = build_datasets(data_args, args)
    processor = SCLImageProcessor()
    card = {"data_root": data_args.data_root, "synthetic": data_args.synthetic, "num_labeled": num_labeled,
            "data_args": data_args, "dataset_name": data_args.dataset_name, "dataset_id": data_args.dataset_id}
    trainer = SCLTrainer(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                         unlabeled_dataset=unlabeled, processing_class=processor, model_card_data=card)
    # A path, or a Hub repo "user/run[@revision]" whose last-checkpoint/ is downloaded (SCLTrainer.train).
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    metrics = trainer.evaluate()
    trainer.save_model(args.output_dir)  # the teacher and its card (with this mIoU); pushed with --push_to_hub
    _write_image_ids(trainer, Path(args.output_dir))
    if args.should_save:
        net = trainer.teacher.model if args.eval_with_teacher else trainer.model
        pictures = save_predictions(net, evaluation, Path(args.output_dir) / "predictions",
                                    data_args.num_prediction_images)
        _report(args.output_dir, metrics, Path(args.output_dir) / "README.md", pictures, trainer.hub_model_id,
                trainer.method_summary())
    leave_process_group_together(PartialState())
    return metrics


def _write_image_ids(trainer: SCLTrainer, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"train_image_ids_rank{trainer.args.process_index}.json"
    path.write_text(json.dumps(trainer.trained_image_ids))


def _report(output_dir: str, metrics: dict, card: Path, pictures: list[Path], repo_id: str | None,
            method: str) -> None:
    print(f"\n{method}", file=sys.stderr)
    print(f"validation mIoU (teacher, whole image): {metrics.get('eval_mean_iou', float('nan')):.4f}", file=sys.stderr)
    print(f"model + processor: {output_dir}  (load with AutoModelForSemanticSegmentation.from_pretrained)",
          file=sys.stderr)
    print(f"model card:        {card}", file=sys.stderr)
    if repo_id is not None:
        print(f"Hub repo:          {repo_id}  (resume elsewhere: --resume_from_checkpoint {repo_id})", file=sys.stderr)
    if pictures:
        print(f"predictions:       {pictures[0].parent} ({len(pictures)} PNGs: image | ground truth | prediction)",
              file=sys.stderr)

"""Model cards with evaluation results (`model-index`), written with `huggingface_hub.ModelCardData`.

Trainer's automatic card drops `mean_iou` (DESIGN §6), so sclseg writes its own: YAML metadata that the Hub
and `ModelCard.load` parse (task image-segmentation, metric mean_iou, dataset, split), a per-class IoU table,
the SCL hyper-parameters and how to load the model.
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .training_args import SCLTrainingArguments

CITATION = """@article{kim2020structured,
  title   = {Structured Consistency Loss for semi-supervised semantic segmentation},
  author  = {Kim, Jongmok and Jang, Jooyoung and Park, Hyunwoo and Jeong, SeongAh},
  journal = {arXiv preprint arXiv:2001.04647},
  year    = {2020}
}"""

_METHOD_FIELDS = ("consistency_weight", "structured_consistency_weight", "cutmix_boxes", "structured_boxes",
                  "max_pairs", "ema_decay", "ema_warmup", "relaxation_window", "class_weight_bound",
                  "strict_classes", "relaxation_off_fraction", "class_uniform_pct", "unlabeled_batch_size",
                  "unlabeled_pair_mode", "learning_rate", "weight_decay", "optim", "lr_scheduler_type",
                  "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs", "seed")


def _iou_table(metrics: dict[str, float]) -> str:
    rows = [(k.removeprefix("eval_iou_").replace("_", " "), v) for k, v in metrics.items() if k.startswith("eval_iou_")]
    lines = ["| class | IoU |", "|---|---|"] + [f"| {name} | {100 * value:.2f} |" for name, value in rows]
    return "\n".join(lines)


def _recipe(args: SCLTrainingArguments) -> str:
    return "\n".join(f"- `{name}`: {getattr(args, name)}" for name in _METHOD_FIELDS)


def write_model_card(output_dir: Path, metrics: dict[str, float], *, args: SCLTrainingArguments, data_root: str,
                     num_labeled: int, synthetic: bool) -> Path:
    """Write `output_dir/README.md` with the teacher's validation mIoU in `model-index`; returns its path."""
    dataset = "sclseg synthetic Cityscapes (embedded default, not Cityscapes)" if synthetic else "Cityscapes"
    miou = metrics.get("eval_mean_iou", float("nan"))
    results = [] if math.isnan(miou) else [EvalResult(
        task_type="image-segmentation", dataset_type="synthetic-cityscapes" if synthetic else "cityscapes",
        dataset_name=dataset, dataset_split="validation", metric_type="mean_iou", metric_value=round(miou, 4),
        metric_name="mIoU (teacher, whole-image inference)")]
    data = ModelCardData(model_name=Path(output_dir).name, library_name="transformers",
                         pipeline_tag="image-segmentation", license="apache-2.0", eval_results=results,
                         tags=["sclseg", "semantic-segmentation", "semi-supervised", "structured-consistency-loss"])
    body = f"""
# {Path(output_dir).name}

DeepLabV3+ trained with the Structured Consistency Loss (Kim, Jang, Park 2020) by
[sclseg](https://pypi.org/project/sclseg/): supervised loss with boundary relaxation on {num_labeled} labeled
images, CutMix pixel consistency and structured consistency against an EMA teacher. These weights are the teacher.

## Results ({dataset}, validation, whole-image inference)

mIoU: **{100 * miou:.2f}**, pixel accuracy: {100 * metrics.get('eval_pixel_accuracy', float('nan')):.2f}

{_iou_table(metrics)}

## Training recipe

Data root: `{data_root}`; hardware: {platform.machine()}, {torch.cuda.device_count() or 'no'} GPU(s), {args.world_size} process(es).

{_recipe(args)}

## How to use

```python
import sclseg  # registers the classes; or pass trust_remote_code=True without the package
from transformers import pipeline
segmenter = pipeline("image-segmentation", model="{Path(output_dir).name}")
```

## Intended use and limits

Semantic segmentation of street scenes with the 19 Cityscapes classes. A model trained on the embedded synthetic
data set is for smoke tests and demonstrations only; its numbers say nothing about real images.

## Citation

```bibtex
{CITATION}
```
"""
    card = ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")
    path = Path(output_dir) / "README.md"
    card.save(path)
    return path

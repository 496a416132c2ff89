"""Model cards with evaluation results (`model-index`), written with `huggingface_hub.ModelCardData`.

Trainer's automatic card drops `mean_iou` (checked with transformers 5), so sclseg writes its own from one template,
`model_card_template.md` (linked as `model_cards/TEMPLATE.md`; shipped inside the package so an installed
sclseg can render it): YAML metadata that the Hub and `ModelCard.load` parse (task image-segmentation, metric
mean_iou, dataset, split, inference mode in the metric name and `args`), a per-class IoU table, the training
recipe, intended use and limits, how to load the model, and the citation.

Two writers: `write_model_card` at the end of training, and `update_model_card_results` (used by
`sclseg evaluate --update-card`), which adds or replaces one evaluation and leaves the rest of the card alone:
the results live between `<!-- sclseg:results -->` markers, one per-class block per (dataset, split, mode).
Cards never hold tokens: every card passes through `redaction.mask_tokens`.
"""

from __future__ import annotations

import math
import os
import platform
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import torch
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .redaction import mask_tokens
from .training_args import SCLTrainingArguments

CITATION = """@article{kim2020structured,
  title   = {Structured Consistency Loss for semi-supervised semantic segmentation},
  author  = {Kim, Jongmok and Jang, Jooyoung and Park, Hyunwoo and Jeong, SeongAh},
  journal = {arXiv preprint arXiv:2001.04647},
  year    = {2020}
}"""
TEMPLATE_PATH = Path(__file__).with_name("model_card_template.md")

_METHOD_FIELDS = ("consistency_weight", "consistency_reduction", "consistency_confidence_threshold",
                  "structured_consistency_weight", "pseudo_label_weight", "pseudo_label_threshold",
                  "supervised_warmup_steps", "consistency_rampup_steps", "cutmix_boxes", "structured_boxes",
                  "max_pairs", "student_jitter", "student_grayscale_prob", "mask_padding", "joint_student_forward",
                  "ema_decay", "ema_warmup", "eval_with_teacher",
                  "relaxation_window", "class_weight_bound", "strict_classes", "relaxation_off_fraction",
                  "unlabeled_batch_size",
                  "learning_rate", "weight_decay", "optim", "optim_args", "lr_scheduler_type",
                  "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "num_train_epochs",
                  "seed")
_DATA_FIELDS = ("labeled_fraction", "crop_size", "scale_range", "blur_prob", "class_uniform_pct", "class_uniform_tile",
                "unlabeled_source", "unlabeled_pair_mode", "use_coarse")
_TAGS = ["sclseg", "semantic-segmentation", "semi-supervised", "structured-consistency-loss", "cityscapes"]
_RESULTS = re.compile(r"<!-- sclseg:results -->\n(.*?)\n?<!-- /sclseg:results -->", re.S)
_IOU_BLOCK = re.compile(r"<!-- sclseg:iou (.*?) -->\n.*?<!-- /sclseg:iou -->", re.S)


@dataclass
class Evaluation:
    """One evaluation: the scores of one model on one dataset split with one inference mode."""

    dataset_name: str
    dataset_type: str
    split: str
    inference_mode: str
    mean_iou: float
    pixel_accuracy: float | None
    per_class_iou: dict[str, float | None]

    @property
    def key(self) -> str:
        return f"{self.dataset_type} | {self.split} | {self.inference_mode}"


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _scores(metrics: dict) -> tuple[float | None, float | None, dict[str, float | None]]:
    """(mIoU, pixel accuracy, per-class IoU) from Trainer metrics (`eval_mean_iou`, `eval_iou_<class>`) or an
    evaluation record (`mean_iou`, `per_class_iou: {class: iou}`), as `sclseg evaluate --json` writes it."""
    plain = {k.removeprefix("eval_"): v for k, v in metrics.items()}
    per_class = plain.get("per_class_iou")
    if not isinstance(per_class, dict):
        per_class = {k.removeprefix("iou_").replace("_", " "): v for k, v in plain.items() if k.startswith("iou_")}
    return (_number(plain.get("mean_iou")), _number(plain.get("pixel_accuracy")),
            {name: _number(value) for name, value in per_class.items()})


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "dataset"


def _eval_results(evaluation: Evaluation) -> list[EvalResult]:
    common = dict(task_type="image-segmentation", task_name="Semantic segmentation",
                  dataset_type=evaluation.dataset_type, dataset_name=evaluation.dataset_name,
                  dataset_split=evaluation.split, metric_args={"inference_mode": evaluation.inference_mode})
    results = [EvalResult(metric_type="mean_iou", metric_value=round(evaluation.mean_iou, 4),
                          metric_name=f"mIoU ({evaluation.inference_mode})", **common)]
    if evaluation.pixel_accuracy is not None:
        results.append(EvalResult(metric_type="accuracy", metric_value=round(evaluation.pixel_accuracy, 4),
                                  metric_name=f"pixel accuracy ({evaluation.inference_mode})", **common))
    return results


def _same_evaluation(result: EvalResult, evaluation: Evaluation) -> bool:
    mode = (result.metric_args or {}).get("inference_mode")
    return (result.dataset_type, result.dataset_split, mode) == (
        evaluation.dataset_type, evaluation.split, evaluation.inference_mode)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _summary_table(results: list[EvalResult]) -> str:
    lines = ["| dataset | split | inference | metric | value (%) |", "|---|---|---|---|---|"]
    lines += [f"| {r.dataset_name} | {r.dataset_split} | {(r.metric_args or {}).get('inference_mode', '')} | "
              f"{r.metric_type} | {_percent(r.metric_value)} |" for r in results]
    return "\n".join(lines) if results else "No evaluation recorded yet (`sclseg evaluate MODEL --update-card`)."


def _iou_block(evaluation: Evaluation) -> str:
    rows = [f"| {name} | {_percent(value)} |" for name, value in evaluation.per_class_iou.items()]
    return "\n".join([f"<!-- sclseg:iou {evaluation.key} -->",
                      f"Per-class IoU on {evaluation.dataset_name} {evaluation.split} ({evaluation.inference_mode}):",
                      "", "| class | IoU (%) |", "|---|---|", *rows, "<!-- /sclseg:iou -->"])


def _results_text(results: list[EvalResult], iou_blocks: list[str]) -> str:
    return "\n\n".join([_summary_table(results), *iou_blocks])


def _hardware(args: SCLTrainingArguments | None) -> str:
    processes = args.world_size if args is not None else 1
    if torch.cuda.is_available():
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        device = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    return f"{device}, {processes} process(es)"


def _planned_steps(args: SCLTrainingArguments) -> str:
    return str(args.max_steps) if args.max_steps > 0 else f"{args.num_train_epochs:g} epochs"


def _recipe(args: SCLTrainingArguments, data_args: object | None = None) -> str:
    values = {name: getattr(args, name) for name in _METHOD_FIELDS if hasattr(args, name)}
    if data_args is not None:  # the recipe's DataArguments: crops, sampling, unlabeled stream
        values.update({name: getattr(data_args, name) for name in _DATA_FIELDS if hasattr(data_args, name)})
    # Enum-valued arguments (optim, lr_scheduler_type) print as what one passes on the command line.
    return "\n".join(f"- `{name}`: {(v.value if isinstance(v, Enum) else v)!r}" for name, v in values.items())


def _render(data: ModelCardData, **fields: object) -> ModelCard:
    """The card from the template; every template field gets a value (missing ones render empty)."""
    defaults = dict(model_name=data.model_name, repo_id=data.model_name, weights_note="", results="", recipe="",
                    data_description="", num_labeled="", num_unlabeled="", hardware="", steps="",
                    citation=CITATION)
    card = ModelCard.from_template(data, template_path=str(TEMPLATE_PATH), **{**defaults, **fields})
    return ModelCard(mask_tokens(str(card)))


def _card_data(model_name: str, results: list[EvalResult], datasets: list[str]) -> ModelCardData:
    return ModelCardData(model_name=model_name, library_name="transformers", pipeline_tag="image-segmentation",
                         license="apache-2.0", tags=list(_TAGS), eval_results=results or None,
                         datasets=datasets or None)


def write_model_card(output_dir: Path, metrics: dict[str, float], *, args: SCLTrainingArguments,
                     num_labeled: int | None, data_root: str | None = None, synthetic: bool = False,
                     num_unlabeled: int | None = None, steps: int | None = None, repo_id: str | None = None,
                     split: str = "validation", inference_mode: str = "whole image",
                     data_args: object | None = None, dataset_name: str | None = None,
                     dataset_id: str | None = None) -> Path:
    """Write `output_dir/README.md` with the validation mIoU in `model-index`; returns its path.

    `repo_id` names the model in the loading examples (default: `args.hub_model_id`, else the folder name);
    `steps` is the number of optimisation steps done (default: `args.max_steps`, or the epochs); `data_args`
    (the recipe's `DataArguments`) adds the data settings to the recipe section. `metrics` may be empty (a card
    without results). `dataset_name` and `dataset_id` (a Hub dataset id, listed under `datasets:`) describe
    data that is neither Cityscapes nor the synthetic set (default: Cityscapes, or the synthetic set)."""
    output_dir = Path(output_dir)
    name = repo_id or getattr(args, "hub_model_id", None) or output_dir.name
    default_name, default_id = ("sclseg synthetic Cityscapes", "synthetic-cityscapes") if synthetic else (
        "Cityscapes", "cityscapes")
    dataset, dataset_type = dataset_name or default_name, dataset_id or default_id
    mean_iou, pixel_accuracy, per_class = _scores(metrics)
    evaluation = None if mean_iou is None else Evaluation(
        dataset, dataset_type, split, inference_mode, mean_iou, pixel_accuracy, per_class)
    results = _eval_results(evaluation) if evaluation else []
    hub_datasets = [dataset_id] if dataset_id else ([] if synthetic or dataset_name else ["cityscapes"])
    unlabeled = "not counted (streamed)" if num_unlabeled is None else str(num_unlabeled)
    if getattr(data_args, "unlabeled_source", None):
        unlabeled += f", from `{data_args.unlabeled_source}`"
    card = _render(
        _card_data(name, results, hub_datasets), repo_id=name,
        weights_note="These weights are the EMA teacher." if getattr(args, "eval_with_teacher", True) else "",
        results=_results_text(results, [_iou_block(evaluation)] if evaluation else []),
        recipe=_recipe(args, data_args), data_description=dataset + (f" (`{data_root}`)" if data_root else ""),
        num_labeled="not counted" if num_labeled is None else num_labeled, num_unlabeled=unlabeled,
        hardware=_hardware(args), steps=steps if steps is not None else _planned_steps(args))
    path = output_dir / "README.md"
    output_dir.mkdir(parents=True, exist_ok=True)
    card.save(path)
    return path


def update_model_card_results(model_dir: str | Path, metrics: dict, *, dataset_name: str, split: str,
                              inference_mode: str) -> Path:
    """Add (or replace) one evaluation in `model_dir/README.md`: `model-index` and the results section.

    `metrics` is a Trainer metrics dict or an evaluation record (`mean_iou`, `pixel_accuracy`, `per_class_iou`).
    Results of other datasets, splits or inference modes stay; the text outside the sclseg markers is kept.
    A folder without a card gets a new one (no training recipe). Returns the card's path."""
    model_dir = Path(model_dir)
    mean_iou, pixel_accuracy, per_class = _scores(metrics)
    if mean_iou is None:
        raise ValueError("metrics hold no mean IoU (`mean_iou` or `eval_mean_iou`)")
    evaluation = Evaluation(dataset_name, _slug(dataset_name), split, inference_mode, mean_iou, pixel_accuracy,
                            per_class)
    path = model_dir / "README.md"
    card = ModelCard.load(path) if path.exists() else _render(_card_data(model_dir.name, [], []))
    kept = [r for r in (card.data.eval_results or []) if not _same_evaluation(r, evaluation)]
    results = _eval_results(evaluation) + kept  # newest first: eval_results[0] is this mIoU
    blocks = {match[1]: match[0] for match in _IOU_BLOCK.finditer(card.text)}
    blocks.pop(evaluation.key, None)
    section = _results_text(results, [_iou_block(evaluation), *blocks.values()])
    if _RESULTS.search(card.text):
        text = _RESULTS.sub(lambda _: f"<!-- sclseg:results -->\n{section}\n<!-- /sclseg:results -->", card.text)
    else:  # a hand-written card: append the section
        text = f"{card.text.rstrip()}\n\n## Results\n\n<!-- sclseg:results -->\n{section}\n<!-- /sclseg:results -->\n"
    card.data.model_name = card.data.model_name or model_dir.name
    card.data.eval_results = results
    card = ModelCard(mask_tokens(f"---\n{card.data.to_yaml()}\n---\n{text}"))
    card.save(path)
    return path

"""Per-step diagnostics of the unlabeled path, and the oracle probe, for the ablation (`ablation.py`).

The synthetic data has labels for every image the ablation treats as unlabeled (gtFine for the unlabeled part of
train, gtCoarse for train_extra). `LabeledPairs` streams those images *with* their labels; `DiagnosticTrainer`
reads them only to measure, unless `oracle` is set:

- `diag/teacher_accuracy`: pixel accuracy of the guessed label p_mt on the mixed image (labeled pixels only);
- `diag/student_accuracy`: the student's on the same pixels of u_m;
- `diag/teacher_relation_error`, `diag/student_relation_error`: L_sc of p_mt, and of the student, against the
  one-hot truth: how far the pairwise similarities the structured term aims at are from the true relations
  (same class 1, other class 0), on the same boxes and pair budget as L_sc;
- with `oracle`: the guessed label is the one-hot truth of the mixed image, and pixels without a label (255)
  leave the unlabeled losses. Then (b) vs (c) asks whether λ_sc·L_sc hurts even when its targets are right.

Gradient norms per term come from the trainer itself (`--term_gradient_norm_steps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sclseg import SCLTrainer
from sclseg.data.cityscapes import CityscapesItem, read_image, read_label
from sclseg.losses import structured_consistency_loss

IGNORE = 255


class LabeledPairs(torch.utils.data.IterableDataset):
    """Endless pairs `{pixel_values_a/b, valid_a/b, labels_a/b}` of augmented unlabeled images and their labels.

    `pair_mode` "same" augments one image twice, "different" takes two consecutive images of a shuffled epoch
    (as `UnlabeledPairStream`); `valid_*` is False on crop padding only, `labels_*` is 255 there and wherever
    the image has no label. Seeded by `seed` alone (not resumable: a diagnostic run is never resumed)."""

    def __init__(self, items: list[CityscapesItem], transform, *, pair_mode: str, seed: int) -> None:
        self.items, self.transform, self.pair_mode, self.seed = items, transform, pair_mode, seed

    def _view(self, item: CityscapesItem, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        image, label = read_image(item.image_path), read_label(item.label_path)
        state = generator.get_state()
        pixels, labels = self.transform(image, label, generator=generator)
        # The padding map: the same draws on an all-zero label (the transform draws nothing for labels).
        replay = torch.Generator().manual_seed(0)
        replay.set_state(state)
        _, padded = self.transform(image, torch.zeros_like(torch.from_numpy(label)).numpy(), generator=replay)
        return pixels, padded != IGNORE, labels.long()

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        step = 2 if self.pair_mode == "different" else 1
        while True:
            order = torch.randperm(len(self.items), generator=generator).tolist()
            for k in range(0, len(order) - step + 1, step):
                a, b = self.items[order[k]], self.items[order[k + step - 1]]
                pixels_a, valid_a, labels_a = self._view(a, generator)
                pixels_b, valid_b, labels_b = self._view(b, generator)
                yield {"pixel_values_a": pixels_a, "pixel_values_b": pixels_b, "valid_a": valid_a,
                       "valid_b": valid_b, "labels_a": labels_a, "labels_b": labels_b}


def one_hot_truth(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B, H, W) train ids with 255 -> (B, C, H, W) float one-hots, all zeros where 255."""
    known = labels != IGNORE
    return F.one_hot(labels.masked_fill(~known, 0), num_classes).permute(0, 3, 1, 2).float() * known[:, None]


def accuracy(probs: torch.Tensor, truth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Share of pixels with a label (and valid) where argmax probs (B, C, H, W) equals truth (B, H, W)."""
    counted = valid & (truth != IGNORE)
    hits = (probs.argmax(dim=1) == truth) & counted
    return hits.sum() / counted.sum().clamp_min(1)


class DiagnosticTrainer(SCLTrainer):
    """`SCLTrainer` on a `LabeledPairs` stream: logs the `diag/*` values each step; `oracle=True` trains on the
    truth instead of the teacher's guess."""

    def __init__(self, *args, oracle: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.oracle = oracle
        self._views: tuple[torch.Tensor, torch.Tensor] | None = None
        self._truth: torch.Tensor | None = None
        # Its own generator: measuring must not move the training's pair sampling.
        self._diag_generator = torch.Generator(device=self.args.device).manual_seed(self.args.seed + 104729)

    def guess_labels(self, batch):
        self._views = (batch["labels_a"], batch["labels_b"])
        return super().guess_labels(batch)

    @torch.no_grad()
    def mixed_batch(self):
        mixed = super().mixed_batch()
        labels_a, labels_b = self._views
        truth = torch.where(mixed["owner"] >= 0, labels_b, labels_a)
        self._truth = truth
        known = mixed["valid"] & (truth != IGNORE)
        self._record("diag/teacher_accuracy", accuracy(mixed["p_mt"], truth, mixed["valid"]))
        self._record("diag/teacher_relation_error", self._relation_error(mixed["p_mt"], truth, mixed))
        if self.oracle:
            mixed = {**mixed, "p_mt": one_hot_truth(truth, mixed["p_mt"].shape[1]), "valid": known}
        return mixed

    def unlabeled_loss(self, student_logits, mixed):
        with torch.no_grad():
            probs = student_logits.softmax(dim=1)
            self._record("diag/student_accuracy", accuracy(probs, self._truth, mixed["valid"]))
            self._record("diag/student_relation_error", self._relation_error(probs, self._truth, mixed))
        return super().unlabeled_loss(student_logits, mixed)

    def _relation_error(self, probs: torch.Tensor, truth: torch.Tensor, mixed: dict) -> torch.Tensor:
        """L_sc of `probs` against the one-hot truth, over labeled valid pixels of the scored boxes."""
        owner = mixed["owner"].masked_fill(~(mixed["valid"] & (truth != IGNORE)), -1)
        return structured_consistency_loss(
            probs, one_hot_truth(truth, probs.shape[1]), owner, num_boxes=self.args.cutmix_boxes,
            last_boxes=self.args.structured_boxes, max_pairs=self.args.max_pairs, generator=self._diag_generator,
        )

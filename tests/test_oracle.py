"""The whole unlabeled path, end to end, with an oracle teacher.

`SCLTrainer.guess_labels` returns the ground-truth one-hots of the two unlabeled views. The labeled set carries no
label at all (every pixel 255), so whatever the student learns comes through the unlabeled path: the views, the
CutMix of images and of guessed labels with one mask, the padding map, L_c + L_sc and their gradients. Done right,
this is supervised training on the unlabeled images and must reach the accuracy of training on them with their
labels; with the views or the mask swapped the targets no longer belong to the pixels and nothing is learned.
"""

import pytest
import torch
import torch.nn.functional as F

import sclseg.trainer
from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, SCLTrainer, WideResNetConfig
from tests.conftest import tiny_wide_resnet_kwargs
from tests.test_trainer import make_args

SIZE, CELL, CLASSES, STEPS = 32, 8, 4, 80


def scene(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, 32, 32) image of 8×8 cells of constant colour and its (32, 32) labels: class = 2·[red > 0] +
    [green > 0], a rule a tiny network learns from a few dozen images, which ties every label to its pixel."""
    generator = torch.Generator().manual_seed(index)
    cells = torch.randn(3, SIZE // CELL, SIZE // CELL, generator=generator)
    pixels = cells.repeat_interleave(CELL, 1).repeat_interleave(CELL, 2)
    labels = (pixels[0] > 0).long() * 2 + (pixels[1] > 0).long()
    return pixels, labels


class Unlabeled(torch.utils.data.IterableDataset):
    """Pairs of two different scenes, with their labels (for the oracle only; SCLTrainer never reads them)."""

    def __iter__(self):
        index = 0
        while True:
            (a, la), (b, lb) = scene(2 * index), scene(2 * index + 1)
            index += 1
            yield {"pixel_values_a": a, "pixel_values_b": b, "labels_a": la, "labels_b": lb}


class Scenes(torch.utils.data.Dataset):
    def __init__(self, offset: int, n: int, hide_labels: bool) -> None:
        self.offset, self.n, self.hide_labels = offset, n, hide_labels

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        pixels, labels = scene(self.offset + i)
        return {"pixel_values": pixels, "labels": torch.full_like(labels, 255) if self.hide_labels else labels}


class OracleTrainer(SCLTrainer):
    swap_views = False

    def guess_labels(self, batch):
        one_hot = [F.one_hot(batch[key], CLASSES).permute(0, 3, 1, 2).float() for key in ("labels_a", "labels_b")]
        return tuple(reversed(one_hot)) if self.swap_views else tuple(one_hot)


def tiny_classes_model():
    kwargs = {**tiny_wide_resnet_kwargs(), "stage_dropout": [0.0] * 6}
    labels = {i: f"class{i}" for i in range(CLASSES)}
    config = DeepLabV3PlusConfig(backbone_config=WideResNetConfig(**kwargs), aspp_channels=8, aspp_rates=[1, 2, 3],
                                 low_level_channels=4, decoder_channels=8, id2label=labels,
                                 label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    return DeepLabV3PlusForSemanticSegmentation(config)


def accuracy(model) -> float:
    held_out = [scene(10_000 + i) for i in range(16)]
    pixels = torch.stack([p for p, _ in held_out])
    labels = torch.stack([lab for _, lab in held_out])
    model.eval()
    with torch.no_grad():
        return float((model(pixel_values=pixels).logits.argmax(1) == labels).float().mean())


def train(tmp_path, *, labeled, unlabeled=None, swap_views=False, **kwargs) -> float:
    model = tiny_classes_model()
    args = make_args(tmp_path, max_steps=STEPS, per_device_train_batch_size=4, learning_rate=0.1,
                     unlabeled_batch_size=4, logging_steps=STEPS, **kwargs)
    trainer = OracleTrainer(model=model, args=args, train_dataset=labeled, unlabeled_dataset=unlabeled)
    trainer.swap_views = swap_views
    trainer.train()
    return accuracy(trainer.model)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Accuracy on held-out scenes after the same number of steps for each way of training."""
    tmp = tmp_path_factory.mktemp("oracle")
    hidden = Scenes(0, 16, hide_labels=True)
    unlabeled_only = dict(labeled=hidden, unlabeled=Unlabeled())
    out = {
        "no signal": train(tmp, labeled=hidden, consistency_weight=0, structured_consistency_weight=0),
        # The unlabeled scenes as labeled data: what the oracle path must match.
        "labeled": train(tmp, labeled=Scenes(0, 160, hide_labels=False), consistency_weight=0,
                         structured_consistency_weight=0),
        "oracle": train(tmp, **unlabeled_only),
        "oracle, views swapped": train(tmp, swap_views=True, **unlabeled_only),
    }
    real_cutmix = sclseg.trainer.cutmix

    def mask_inverted_for_targets(a, b, mask):  # the guessed labels (4 channels) mixed with 1 − M, images with M
        return real_cutmix(a, b, 1 - mask if a.shape[1] == CLASSES else mask)

    sclseg.trainer.cutmix = mask_inverted_for_targets
    try:
        out["oracle, mask inverted"] = train(tmp, **unlabeled_only)
    finally:
        sclseg.trainer.cutmix = real_cutmix
    return out


def test_oracle_consistency_learns_like_labeled_data(results):
    # Measured (80 steps): no signal 0.22, labeled 0.77, oracle 0.82, views swapped / mask inverted 0.43.
    assert results["no signal"] < 0.35, results  # 4 balanced classes: an untrained student is near chance
    assert results["labeled"] > 0.65, results
    assert results["oracle"] > 0.65 and results["oracle"] > results["labeled"] - 0.08, results


@pytest.mark.parametrize("broken", ["oracle, views swapped", "oracle, mask inverted"])
def test_misaligned_targets_teach_nothing(results, broken):
    assert results[broken] < 0.55 and results[broken] < results["oracle"] - 0.25, results

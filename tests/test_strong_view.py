"""The student's strong view (FixMatch / UniMatch weak-to-strong): hand-computed values and the trainer wiring."""

import pytest
import torch

from sclseg import SCLTrainer
from sclseg.data.strong_view import strong_view
from sclseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from tests.test_trainer import Labeled, Unlabeled, make_args, tiny_model

MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def normalised(rgb: tuple[float, float, float], batch: int = 1, size: int = 4) -> torch.Tensor:
    """(batch, 3, size, size) images of one colour `rgb` in [0, 1], ImageNet-normalised."""
    pixels = torch.tensor(rgb).view(1, 3, 1, 1).expand(batch, 3, size, size)
    return (pixels - MEAN) / STD


def test_off_returns_the_input():
    pixels = normalised((0.2, 0.4, 0.6))
    assert strong_view(pixels, jitter=0.0, grayscale_prob=0.0) is pixels


def test_grayscale_is_the_luma_on_every_channel():
    # 0.299·0.2 + 0.587·0.4 + 0.114·0.6 = 0.363 (ITU-R 601, as PIL's convert("L")).
    out = strong_view(normalised((0.2, 0.4, 0.6), batch=3), jitter=0.0, grayscale_prob=1.0,
                      generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, normalised((0.363, 0.363, 0.363), batch=3), atol=1e-5, rtol=0)


def test_jitter_on_a_grey_image_is_a_brightness_factor_within_its_range():
    # On a grey image contrast, saturation and hue change nothing, so each output is 0.5·b with b in [0.5, 1.5].
    out = strong_view(normalised((0.5, 0.5, 0.5), batch=64), jitter=0.5, grayscale_prob=0.0, jitter_prob=1.0,
                      generator=torch.Generator().manual_seed(0))
    values = out * STD + MEAN
    per_image = values.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1], atol=1e-5)  # still one grey level per image
    levels = per_image[:, 0]
    assert float(levels.min()) >= 0.25 - 1e-5 and float(levels.max()) <= 0.75 + 1e-5
    assert float(levels.max() - levels.min()) > 0.3  # the factors are drawn per image


def test_jitter_probability_leaves_the_other_images_unchanged():
    pixels = normalised((0.5, 0.5, 0.5), batch=400)
    out = strong_view(pixels, jitter=0.5, grayscale_prob=0.0, generator=torch.Generator().manual_seed(1))
    unchanged = torch.isclose(out, pixels, atol=1e-5).flatten(1).all(1).float().mean()
    assert float(unchanged) == pytest.approx(0.2, abs=0.06)  # UniMatch jitters 80% of the images


def test_the_generator_decides_everything():
    pixels = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))

    def view(seed):
        return strong_view(pixels, jitter=0.5, grayscale_prob=0.2, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(view(3), view(3)) and not torch.equal(view(3), view(4))


def test_trainer_jitters_the_student_view_only(tmp_path):
    """With a strong view the guessed label p_mt and the CutMix mask are those of the plain run (the teacher sees
    the views without it); only the student's u_m changes."""
    plain = SCLTrainer(model=tiny_model(), args=make_args(tmp_path), train_dataset=Labeled(),
                       unlabeled_dataset=Unlabeled())
    strong = SCLTrainer(model=tiny_model(), args=make_args(tmp_path, student_jitter=0.5, student_grayscale_prob=0.2),
                        train_dataset=Labeled(), unlabeled_dataset=Unlabeled())
    strong.teacher.model.load_state_dict(plain.teacher.model.state_dict())
    a, b = plain.mixed_batch(), strong.mixed_batch()
    assert torch.equal(a["owner"], b["owner"]) and torch.equal(a["valid"], b["valid"])
    torch.testing.assert_close(a["p_mt"], b["p_mt"])
    assert a["u_m"].shape == b["u_m"].shape and not torch.allclose(a["u_m"], b["u_m"], atol=1e-3)
    assert "student view: jitter 0.5, grey 0.2" in strong.method_summary()


def test_out_of_range_values_are_refused(tmp_path):
    with pytest.raises(ValueError, match="student_jitter"):
        make_args(tmp_path, student_jitter=1.5)
    with pytest.raises(ValueError, match="student_grayscale_prob"):
        make_args(tmp_path, student_grayscale_prob=-0.1)

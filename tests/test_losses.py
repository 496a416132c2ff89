"""Numbers for L_x (eq. 2), L_c (eq. 4) and L_sc (eqs. 7–10): hand-computed values, references, invariances."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from sclseg.cutmix import sample_cutmix_boxes
from sclseg.losses import (
    _relaxed_loss,
    _sample_pair_ranks,
    pixel_consistency_loss,
    pseudo_label_loss,
    relaxed_boundary_loss,
    structured_consistency_loss,
    structured_consistency_loss_dense,
)

LN2 = math.log(2.0)
LN_075 = math.log(0.75)


def _logits_from(probs: list[float], height: int, width: int) -> torch.Tensor:
    """(1, C, H, W) float64 logits whose softmax is ``probs`` at every pixel."""
    return torch.tensor(probs, dtype=torch.float64).log().view(1, -1, 1, 1).expand(1, -1, height, width).clone()


# The 2×3 map used for the hand-computed values; probabilities (0.5, 0.25, 0.125, 0.125) at every pixel.
LABELS_2X3 = torch.tensor([[[0, 0, 1], [0, 0, 255]]])
LOGITS_2X3 = _logits_from([0.5, 0.25, 0.125, 0.125], 2, 3)


# ---------------------------------------------------------------------------------------------- L_x


def test_relaxed_window3_hand_computed():
    # 3×3 windows: (0,0) and (1,0) see only class 0 → −log 0.5; the other four pixels (the ignore pixel
    # included: its window holds labeled neighbours) see {0, 1} → −log 0.75.
    loss = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=3)
    assert loss.item() == pytest.approx((2 * LN2 - 4 * LN_075) / 6, abs=1e-12)


def test_relaxed_window1_hand_computed_ignores_255():
    # Four class-0 pixels pay log 2, the class-1 pixel log 4; the 255 pixel is ignored: 6·ln2 / 5.
    loss = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=1)
    assert loss.item() == pytest.approx(6 * LN2 / 5, abs=1e-12)


def test_relaxed_class_weights_hand_computed():
    # Every pixel of a 2×3 map has out-of-image neighbours, so the ignore channel is set at all 6 pixels;
    # class 0 at 6, class 1 at 4 → f = (6/16, 4/16); w_c = 1 + (1 − f_c) = 1.625, 1.75.
    loss = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=3, class_weight_bound=1.0)
    expected = (2 * 1.625 * LN2 - 4 * (1.625 + 1.75) / 2 * LN_075) / 6
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_relaxed_strict_class_changes_only_its_pixels():
    # Class 1 strict: pixel (0,2) keeps its one-hot target → −log 0.25; the other five pixels are unchanged.
    loss = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=3, strict_classes=(1,))
    assert loss.item() == pytest.approx((2 * LN2 - 3 * LN_075 + 2 * LN2) / 6, abs=1e-12)
    # A strict class absent from the labels changes nothing.
    unchanged = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=3, strict_classes=(2, 3))
    assert unchanged.item() == pytest.approx((2 * LN2 - 4 * LN_075) / 6, abs=1e-12)


def test_relaxation_off_phase_boundary_weight_hand_computed():
    # Window 1, boundary pixels weighted 2: (0,1), (1,1), (0,2) touch another label (or 255); sum of
    # weighted losses = ln2·(1 + 1 + 2 + 2) + 2·ln2·2 = 10 ln2 over 5 valid pixels.
    loss = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=1, boundary_weight=2.0)
    assert loss.item() == pytest.approx(2 * LN2, abs=1e-12)
    # With class weights the boundary pixels count twice in f: class 0 → 6, class 1 → 2, ignore → 2 of 10;
    # w = (1.4, 1.8): (1.4·ln2·6 + 1.8·2ln2·2) / 5 = 3.12 ln2.
    weighted = relaxed_boundary_loss(LOGITS_2X3, LABELS_2X3, window=1, boundary_weight=2.0, class_weight_bound=1.0)
    assert weighted.item() == pytest.approx(3.12 * LN2, abs=1e-12)


def test_window1_without_weights_is_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 5, 7, 9, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (1, 7, 9), generator=generator)
    labels[0, 0, :4] = 255
    ours = relaxed_boundary_loss(logits, labels, window=1)
    reference = F.cross_entropy(logits, labels, ignore_index=255)
    assert ours.item() == pytest.approx(reference.item(), abs=1e-12)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    (grad_ref,) = torch.autograd.grad(reference, logits)
    torch.testing.assert_close(grad_ours, grad_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("boundary_weight", [1.0, 2.0])
def test_window1_fast_path_equals_the_window_machinery(boundary_weight):
    # window 1 without class weights takes F.cross_entropy; the general multi-hot path must give the same loss
    # and gradient, with ignored pixels, an image with none valid and the relaxation-off boundary weight.
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 6, 9, 11, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 6, (3, 9, 11), generator=generator)
    labels[0, :4] = 255
    labels[2] = 255
    fast = relaxed_boundary_loss(logits, labels, window=1, boundary_weight=boundary_weight, strict_classes=(2,))
    general = _relaxed_loss(logits, labels, 1, 0.0, (2,), 255, boundary_weight)
    assert fast.item() == pytest.approx(general.item(), abs=1e-12)
    (grad_fast,) = torch.autograd.grad(fast, logits)
    (grad_general,) = torch.autograd.grad(general, logits)
    torch.testing.assert_close(grad_fast, grad_general, rtol=0, atol=1e-12)


def test_batch_is_mean_of_per_image_means():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 4, 5, 6, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 4, (3, 5, 6), generator=generator)
    labels[0, :3] = 255  # unequal valid counts: a per-batch pixel mean would differ
    labels[2] = 255  # an image without valid pixels does not count
    per_image = [F.cross_entropy(logits[i : i + 1], labels[i : i + 1], ignore_index=255) for i in range(2)]
    loss = relaxed_boundary_loss(logits, labels, window=1)
    assert loss.item() == pytest.approx(sum(per_image).item() / 2, abs=1e-12)


def test_two_class_window_pays_only_log_of_their_sum():
    logits = torch.tensor([[[[2.0, -1.0]], [[0.5, 3.0]], [[-0.3, 0.2]]]], dtype=torch.float64)  # (1, 3, 1, 2)
    labels = torch.tensor([[[0, 1]]])
    probs = logits.softmax(dim=1)[0, :, 0]  # (3, 2)
    expected = -(torch.log(probs[0] + probs[1])).mean()
    loss = relaxed_boundary_loss(logits, labels, window=3)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)


def test_all_ignored_returns_attached_zero():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    loss = relaxed_boundary_loss(logits, torch.full((2, 4, 4), 255), window=3)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_relaxed_gradcheck():
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 2, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 3, (2, 2, 4), generator=generator)
    labels[0, 0, 0] = 255

    def loss(x):
        options = {"class_weight_bound": 1.0, "strict_classes": (2,), "boundary_weight": 2.0}
        return relaxed_boundary_loss(x, labels, window=3, **options)

    assert torch.autograd.gradcheck(loss, (logits,))


@pytest.mark.parametrize(
    "kwargs, labels, match",
    [
        ({}, torch.zeros(1, 2, 4, dtype=torch.long), "labels"),
        ({}, torch.full((1, 2, 3), 7), "labels"),
        ({}, torch.zeros(1, 2, 3), "labels"),
        ({"window": 2}, torch.zeros(1, 2, 3, dtype=torch.long), "window"),
        ({"strict_classes": (4,)}, torch.zeros(1, 2, 3, dtype=torch.long), "strict_classes"),
        ({"ignore_index": 1}, torch.zeros(1, 2, 3, dtype=torch.long), "ignore_index"),
    ],
)
def test_relaxed_bad_input(kwargs, labels, match):
    with pytest.raises(ValueError, match=match):
        relaxed_boundary_loss(LOGITS_2X3, labels, **kwargs)


# ---------------------------------------------------------------------------------------------- L_c


def test_pixel_consistency_hand_computed_mean_and_sum():
    student = torch.tensor([0.7, 0.3]).view(1, 2, 1, 1).expand(1, 2, 2, 3)
    teacher = torch.full((1, 2, 2, 3), 0.5)
    # Per pixel 0.2² + 0.2² = 0.08 summed over the 2 classes (the literal eq. 4), 0.04 as their mean.
    assert pixel_consistency_loss(student, teacher).item() == pytest.approx(0.04, abs=1e-7)
    assert pixel_consistency_loss(student, teacher, reduction="sum").item() == pytest.approx(0.08, abs=1e-7)
    assert pixel_consistency_loss(student, teacher, reduction="mean").item() == pytest.approx(
        torch.nn.MSELoss()(student, teacher).item(), abs=1e-7)


def test_pixel_consistency_three_classes_by_hand():
    # Two pixels: (0.5, 0.3, 0.2) vs (0.2, 0.3, 0.5) → 0.09 + 0 + 0.09 = 0.18; equal vectors → 0.
    student = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.2, 0.2]]).T.reshape(1, 3, 1, 2)
    teacher = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]]).T.reshape(1, 3, 1, 2)
    assert pixel_consistency_loss(student, teacher, reduction="sum").item() == pytest.approx(0.09, abs=1e-7)
    assert pixel_consistency_loss(student, teacher, reduction="mean").item() == pytest.approx(0.03, abs=1e-7)
    # Only the first pixel valid: its own value, not halved by the masked one.
    valid = torch.tensor([[[True, False]]])
    assert (pixel_consistency_loss(student, teacher, reduction="sum", valid=valid).item()
            == pytest.approx(0.18, abs=1e-7))
    assert pixel_consistency_loss(student, teacher, valid=valid).item() == pytest.approx(0.06, abs=1e-7)
    # Only the second: 0; none: 0 with a zero gradient, never NaN.
    assert pixel_consistency_loss(student, teacher, valid=~valid).item() == 0.0
    grad_student = student.clone().requires_grad_()
    loss = pixel_consistency_loss(grad_student, teacher, valid=torch.zeros(1, 1, 2, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(grad_student.grad, torch.zeros_like(student))


def test_pixel_consistency_rejects_unknown_reduction_and_bad_valid_map():
    student, teacher = torch.rand(1, 2, 2, 3), torch.rand(1, 2, 2, 3)
    with pytest.raises(ValueError, match="reduction"):
        pixel_consistency_loss(student, teacher, reduction="none")
    with pytest.raises(ValueError, match="valid"):
        pixel_consistency_loss(student, teacher, valid=torch.ones(1, 3, 2, dtype=torch.bool))


def test_pseudo_label_loss_by_hand():
    # Pixel 0: teacher 0.96 on class 1 (confident at 0.95) → CE of logits (0, ln 3) towards class 1 = ln(4/3).
    # Pixel 1: teacher 0.6 (not confident) → 0, but it counts in the denominator (UniMatch's convention).
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 0.0]]).T.reshape(1, 2, 1, 2)
    teacher = torch.tensor([[0.04, 0.96], [0.6, 0.4]]).T.reshape(1, 2, 1, 2)
    expected = math.log(4.0 / 3.0) / 2
    assert pseudo_label_loss(logits, teacher, threshold=0.95).item() == pytest.approx(expected, abs=1e-6)
    # Threshold 0.5: pixel 1 also gets its label (class 0): CE of (2, 0) towards 0 = ln(1 + e^-2).
    both = (math.log(4.0 / 3.0) + math.log(1.0 + math.exp(-2.0))) / 2
    assert pseudo_label_loss(logits, teacher, threshold=0.5).item() == pytest.approx(both, abs=1e-6)
    # Pixel 1 as padding: the mean runs over pixel 0 alone.
    valid = torch.tensor([[[True, False]]])
    assert pseudo_label_loss(logits, teacher, threshold=0.95, valid=valid).item() == pytest.approx(
        math.log(4.0 / 3.0), abs=1e-6)


def test_pixel_consistency_gradcheck():
    generator = torch.Generator().manual_seed(4)
    student = torch.rand(1, 3, 2, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    teacher = torch.rand(1, 3, 2, 3, generator=generator, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: pixel_consistency_loss(s, teacher), (student,))


@pytest.mark.parametrize("which", ["shape", "nan_student", "nan_teacher"])
def test_pixel_consistency_bad_input(which):
    student, teacher = torch.rand(1, 2, 2, 3), torch.rand(1, 2, 2, 3)
    if which == "shape":
        teacher, match = torch.rand(1, 2, 3, 2), "teacher_probs"
    elif which == "nan_student":
        student[0, 0, 0, 0], match = float("nan"), "student_probs"
    else:
        teacher[0, 1, 1, 2], match = float("nan"), "teacher_probs"
    with pytest.raises(ValueError, match=match):
        pixel_consistency_loss(student, teacher)


# ---------------------------------------------------------------------------------------------- L_sc

# Box 0 owns the left-top L, box 1 the rest of the 2×3 map.
OWNER_2X3 = torch.tensor([[[0, 0, 1], [0, 1, 1]]])


def _student_2x3() -> torch.Tensor:
    # Box 0: [1,0], [1,0], [0,1] → 4 of its 9 ordered pairs have cosine 0.
    # Box 1: [.5,.5], [.5,.5], [1,0] → 4 of its 9 ordered pairs have cosine 1/√2.
    rows = [[[1.0, 0.0], [1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]]
    return torch.tensor(rows, dtype=torch.float64).permute(2, 0, 1).unsqueeze(0)


TEACHER_2X3 = torch.tensor([0.3, 0.7], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 2, 3)  # all a^t = 1
BOX1_2X3 = 4 * (1 - 1 / math.sqrt(2)) ** 2 / 9


@pytest.mark.parametrize("max_pairs", [None, 9, 9000])
def test_structured_hand_computed(max_pairs):
    kwargs = {"num_boxes": 2, "last_boxes": 2, "max_pairs": max_pairs}
    loss = structured_consistency_loss(_student_2x3(), TEACHER_2X3, OWNER_2X3, **kwargs)
    assert loss.item() == pytest.approx(4 / 9 + BOX1_2X3, abs=1e-12)
    dense = structured_consistency_loss_dense(_student_2x3(), TEACHER_2X3, OWNER_2X3, num_boxes=2, last_boxes=2)
    assert dense.item() == pytest.approx(4 / 9 + BOX1_2X3, abs=1e-12)


def test_structured_only_last_boxes_count():
    loss = structured_consistency_loss(_student_2x3(), TEACHER_2X3, OWNER_2X3, num_boxes=2, last_boxes=1)
    assert loss.item() == pytest.approx(BOX1_2X3, abs=1e-12)
    # Owner 1 of 3 boxes with last_boxes=1 scores box 2 only: nothing owned → 0.
    empty = structured_consistency_loss(_student_2x3(), TEACHER_2X3, OWNER_2X3, num_boxes=3, last_boxes=1)
    assert empty.item() == 0.0


def _random_case(seed: int, batch: int = 2, classes: int = 4, height: int = 24, width: int = 20, boxes: int = 6):
    generator = torch.Generator().manual_seed(seed)
    cut = sample_cutmix_boxes(batch, height, width, num_boxes=boxes, generator=generator)
    student = torch.randn(batch, classes, height, width, generator=generator, dtype=torch.float64).softmax(1)
    teacher = torch.randn(batch, classes, height, width, generator=generator, dtype=torch.float64).softmax(1)
    return student, teacher, cut.owner


def test_structured_zero_iff_student_equals_teacher():
    student, teacher, owner = _random_case(5)
    assert structured_consistency_loss(teacher, teacher, owner, num_boxes=6, last_boxes=4).item() == 0.0
    assert structured_consistency_loss(student, teacher, owner, num_boxes=6, last_boxes=4).item() > 1e-3


def test_structured_all_pairs_equals_dense_reference():
    student, teacher, owner = _random_case(6)
    dense = structured_consistency_loss_dense(student, teacher, owner, num_boxes=6, last_boxes=4)
    largest = max(int((owner == n).sum(dim=(1, 2)).max()) for n in range(2, 6)) ** 2
    for max_pairs in (None, largest):
        loss = structured_consistency_loss(student, teacher, owner, num_boxes=6, last_boxes=4, max_pairs=max_pairs)
        assert abs(loss.item() - dense.item()) < 1e-10
    assert dense.item() > 0


@pytest.mark.parametrize("max_pairs", [40, 3])  # 40: mostly subsets without replacement; 3: drawn with replacement
def test_structured_sampling_is_unbiased(max_pairs):
    student, teacher, owner = _random_case(7)
    dense = structured_consistency_loss_dense(student, teacher, owner, num_boxes=6, last_boxes=4).item()
    # Every sample of a batch draws its own pairs: 25 copies per call average 25 independent estimates.
    copies = [t.repeat(25, *[1] * (t.dim() - 1)) for t in (student, teacher, owner)]
    values = torch.tensor(
        [
            structured_consistency_loss(
                *copies, num_boxes=6, last_boxes=4, max_pairs=max_pairs, generator=torch.Generator().manual_seed(seed)
            ).item()
            for seed in range(40)
        ],
        dtype=torch.float64,
    )
    standard_error = values.std().item() / math.sqrt(values.numel())
    assert abs(values.mean().item() - dense) < 4 * standard_error
    assert values.std().item() > 0  # it did sample


def test_pair_sampling_regimes():
    counts = torch.tensor([0, 3, 5, 30])  # |T|² = 0, 9, 25, 900 with max_pairs = 10: none, all, subset, drawn
    first, second, chosen = _sample_pair_ranks(counts, 10, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (4, 10)
    assert chosen.tolist() == [0, 9, 10, 10]
    for g in range(1, 4):
        pairs = list(zip(first[g, : chosen[g]].tolist(), second[g, : chosen[g]].tolist()))
        assert all(0 <= i < counts[g] and 0 <= j < counts[g] for i, j in pairs)
        if g == 1:
            assert sorted(pairs) == [(i, j) for i in range(3) for j in range(3)]
        if g == 2:  # a 10-subset of the 25 pairs, without replacement
            assert len(set(pairs)) == 10
    everything, _, every_count = _sample_pair_ranks(counts, None, None)
    assert everything.shape == (4, 900) and every_count.tolist() == [0, 9, 25, 900]


def test_structured_invariant_to_positive_pixel_scaling():
    student, teacher, owner = _random_case(8)
    generator = torch.Generator().manual_seed(9)
    scale_s = torch.rand(2, 1, 24, 20, generator=generator, dtype=torch.float64) * 10 + 0.1
    scale_t = torch.rand(2, 1, 24, 20, generator=generator, dtype=torch.float64) * 10 + 0.1
    kwargs = {"num_boxes": 6, "last_boxes": 4, "max_pairs": 30}
    base = structured_consistency_loss(student, teacher, owner, generator=torch.Generator().manual_seed(1), **kwargs)
    scaled = structured_consistency_loss(
        student * scale_s, teacher * scale_t, owner, generator=torch.Generator().manual_seed(1), **kwargs
    )
    assert abs(base.item() - scaled.item()) < 1e-12


def test_structured_ignores_pixels_no_scored_box_owns():
    student, teacher, owner = _random_case(10)
    unscored = owner < 2  # uncovered (−1) and boxes 0, 1 when the last 4 of 6 are scored
    assert unscored.any() and (owner == -1).any()
    noise = torch.rand_like(student)
    changed_s = torch.where(unscored.unsqueeze(1), noise, student)
    changed_t = torch.where(unscored.unsqueeze(1), noise.flip(1), teacher)
    kwargs = {"num_boxes": 6, "last_boxes": 4, "max_pairs": 50}
    base = structured_consistency_loss(student, teacher, owner, generator=torch.Generator().manual_seed(2), **kwargs)
    generator = torch.Generator().manual_seed(2)
    other = structured_consistency_loss(changed_s, changed_t, owner, generator=generator, **kwargs)
    assert base.item() == other.item()


def test_structured_gradients_student_only_through_cosine_normalisation():
    student, teacher, owner = _random_case(11)
    student.requires_grad_()
    teacher.requires_grad_()
    structured_consistency_loss(student, teacher, owner, num_boxes=6, last_boxes=4, max_pairs=None).backward()
    assert teacher.grad is None
    # Cosines are scale-invariant, so with the norm differentiated each pixel's gradient is orthogonal to
    # its vector; detaching the norm (as SKD does) would break this.
    radial = (student.grad * student).sum(dim=1)
    assert radial.abs().max().item() < 1e-12
    assert student.grad.abs().max().item() > 1e-6


def test_structured_zero_vector_gives_finite_gradients():
    student, teacher, owner = _random_case(13)
    student[:, :, owner[0] >= 2] = 0.0  # every scored pixel of sample 0 has an all-zero vector
    student.requires_grad_()
    loss = structured_consistency_loss(student, teacher, owner, num_boxes=6, last_boxes=4, max_pairs=None)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()
    dense = structured_consistency_loss_dense(student, teacher, owner, num_boxes=6, last_boxes=4)
    assert abs(loss.item() - dense.item()) < 1e-10


@pytest.mark.parametrize("max_pairs", [None, 7, 3])  # every pair; subsets; draws with replacement
def test_structured_float32_pairs_of_zero_vectors_stay_finite(max_pairs):
    """A one-hot target with ignored pixels (all-zero vectors) in float32: a pair of two ~0 vectors has cosine 0
    (F.normalize's clamp). The product of their clamped squared norms, 1e-24 · 1e-24, underflows to 0 in
    float32, and 0 · rsqrt(0) was NaN: every L_sc against such a target was NaN in about 1 step of 25."""
    student, teacher, owner = _random_case(21)
    labels = teacher.argmax(dim=1)
    target = F.one_hot(labels, 4).permute(0, 3, 1, 2).double()
    ignored = torch.zeros_like(labels, dtype=torch.bool)
    ignored[:, ::3] = True  # every third row, inside and outside the scored boxes
    target[:, :, ignored[0] | ignored[1]] = 0.0
    student = student.clone()
    student[:, :, ignored[0] | ignored[1]] = 0.0
    student32 = student.float().requires_grad_()
    loss = structured_consistency_loss(student32, target.float(), owner, num_boxes=6, last_boxes=4,
                                       max_pairs=max_pairs, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student32.grad).all()
    if max_pairs is None:
        dense = structured_consistency_loss_dense(student, target, owner, num_boxes=6, last_boxes=4)
        assert loss.item() == pytest.approx(dense.item(), rel=1e-5) and dense.item() > 0


@pytest.mark.parametrize("max_pairs", [None, 5])
def test_structured_gradcheck(max_pairs):
    student, teacher, owner = _random_case(12, batch=1, classes=3, height=4, width=5, boxes=3)
    student.requires_grad_()

    def loss(s):
        generator = torch.Generator().manual_seed(0)
        kwargs = {"num_boxes": 3, "last_boxes": 2, "max_pairs": max_pairs}
        return structured_consistency_loss(s, teacher, owner, generator=generator, **kwargs)

    assert torch.autograd.gradcheck(loss, (student,))


@settings(max_examples=25, deadline=None)
@given(
    height=st.integers(2, 7),
    width=st.integers(2, 7),
    num_boxes=st.integers(1, 4),
    data=st.data(),
)
def test_structured_matches_dense_on_random_owner_maps(height, width, num_boxes, data):
    last_boxes = data.draw(st.integers(1, num_boxes))
    seed = data.draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    owner = torch.randint(-1, num_boxes, (2, height, width), generator=generator)
    student = torch.rand(2, 3, height, width, generator=generator, dtype=torch.float64)
    teacher = torch.rand(2, 3, height, width, generator=generator, dtype=torch.float64)
    dense = structured_consistency_loss_dense(student, teacher, owner, num_boxes=num_boxes, last_boxes=last_boxes)
    loss = structured_consistency_loss(
        student, teacher, owner, num_boxes=num_boxes, last_boxes=last_boxes, max_pairs=(height * width) ** 2
    )
    assert abs(loss.item() - dense.item()) < 1e-10


def _bad_structured_case(which: str):
    student, teacher, owner = torch.rand(1, 2, 3, 4), torch.rand(1, 2, 3, 4), torch.zeros(1, 3, 4, dtype=torch.long)
    kwargs = {"num_boxes": 2, "last_boxes": 2}
    if which == "teacher_shape":
        teacher, match = torch.rand(1, 2, 4, 3), "teacher_probs"
    elif which == "owner_shape":
        owner, match = torch.zeros(1, 4, 3, dtype=torch.long), "owner"
    elif which == "owner_float":
        owner, match = owner.float(), "owner"
    elif which == "owner_high":
        owner[0, 0, 0], match = 2, "owner"
    elif which == "owner_low":
        owner[0, 0, 0], match = -2, "owner"
    elif which == "nan":
        student[0, 1, 2, 3], match = float("nan"), "student_probs"
    elif which == "last_boxes":
        kwargs["last_boxes"], match = 3, "last_boxes"
    else:
        kwargs["max_pairs"], match = 0, "max_pairs"
    return (student, teacher, owner), kwargs, match


@pytest.mark.parametrize(
    "which",
    ["teacher_shape", "owner_shape", "owner_float", "owner_high", "owner_low", "nan", "last_boxes", "max_pairs"],
)
def test_structured_bad_input(which):
    args, kwargs, match = _bad_structured_case(which)
    with pytest.raises(ValueError, match=match):
        structured_consistency_loss(*args, **kwargs)


def test_low_precision_inputs_are_computed_in_float32():
    student, teacher, owner = _random_case(14)
    low = student.to(torch.bfloat16).requires_grad_()
    kwargs = {"num_boxes": 6, "last_boxes": 4, "max_pairs": None}
    loss = structured_consistency_loss(low, teacher.to(torch.bfloat16), owner, **kwargs)
    loss.backward()
    dense = structured_consistency_loss_dense(student, teacher, owner, num_boxes=6, last_boxes=4)
    assert loss.dtype == torch.float32 and low.grad.dtype == torch.bfloat16
    assert loss.item() == pytest.approx(dense.item(), rel=2e-2)
    assert pixel_consistency_loss(low, teacher.to(torch.bfloat16)).dtype == torch.float32

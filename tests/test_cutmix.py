"""CutMix boxes: geometry, owner map = last covering box, coverage statistics, mixing, bad input."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sclseg.cutmix import (
    MIN_BOX_SIDE,
    CutMixBoxes,
    cutmix,
    mean_box_area_fraction,
    owner_from_boxes,
    sample_cutmix_boxes,
)


def _painted_owner(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Reference: paint the boxes in order; the last one to cover a pixel owns it."""
    owner = torch.full((boxes.shape[0], height, width), -1, dtype=torch.int64)
    for b in range(boxes.shape[0]):
        for n, (y0, x0, y1, x1) in enumerate(boxes[b].tolist()):
            owner[b, y0:y1, x0:x1] = n
    return owner


# Sides above 2N + 1 = 65 take the row/column band path of owner_from_boxes, the others one band per index.
@pytest.mark.parametrize("height, width", [(37, 53), (64, 16), (2, 2), (5, 300), (80, 90)])
def test_sample_shapes_dtypes_and_geometry(height, width):
    cut = sample_cutmix_boxes(3, height, width, num_boxes=32, generator=torch.Generator().manual_seed(0))
    assert isinstance(cut, CutMixBoxes)
    assert cut.boxes.shape == (3, 32, 4) and cut.boxes.dtype == torch.int64
    assert cut.mask.shape == (3, 1, height, width) and cut.mask.dtype == torch.float32
    assert cut.owner.shape == (3, height, width) and cut.owner.dtype == torch.int64
    y0, x0, y1, x1 = cut.boxes.unbind(-1)
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y1 <= height).all() and (x1 <= width).all()
    assert ((y1 - y0) >= MIN_BOX_SIDE).all() and ((x1 - x0) >= MIN_BOX_SIDE).all()
    assert torch.equal(cut.owner, _painted_owner(cut.boxes, height, width))
    assert torch.equal(cut.mask[:, 0], (cut.owner >= 0).float())
    assert set(cut.mask.unique().tolist()) <= {0.0, 1.0}


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    num_boxes=st.integers(1, 70),  # above 64 too: no fixed-width bit tricks
    seed=st.integers(0, 2**16),
)
def test_owner_is_last_covering_box_for_arbitrary_boxes(height, width, num_boxes, seed):
    generator = torch.Generator().manual_seed(seed)
    y = torch.sort(torch.randint(0, height + 1, (2, num_boxes, 2), generator=generator), dim=-1).values
    x = torch.sort(torch.randint(0, width + 1, (2, num_boxes, 2), generator=generator), dim=-1).values
    boxes = torch.stack([y[..., 0], x[..., 0], y[..., 1], x[..., 1]], dim=-1)  # empty boxes included
    assert torch.equal(owner_from_boxes(boxes, height, width), _painted_owner(boxes, height, width))


def test_owner_hand_example():
    boxes = torch.tensor([[[0, 0, 2, 2], [1, 1, 3, 3], [0, 2, 1, 3]]])
    expected = torch.tensor([[[0, 0, 2], [0, 1, 1], [-1, 1, 1]]])
    assert torch.equal(owner_from_boxes(boxes, 3, 3), expected)


def test_owner_with_more_boxes_than_uint8_holds():
    generator = torch.Generator().manual_seed(7)
    cut = sample_cutmix_boxes(2, 9, 13, num_boxes=300, generator=generator)
    assert torch.equal(cut.owner, _painted_owner(cut.boxes, 9, 13))
    assert cut.owner.max().item() > 255


@pytest.mark.parametrize("height, width", [(64, 128), (128, 64), (96, 96), (40, 200)])
def test_mean_union_coverage_is_about_half_for_any_aspect(height, width):
    cut = sample_cutmix_boxes(400, height, width, generator=torch.Generator().manual_seed(1))
    coverage = cut.mask.mean(dim=(1, 2, 3))
    # Standard error ≈ 0.033 / sqrt(400) ≈ 0.0017: the measured means (0.50–0.51) sit well inside 0.45–0.55.
    assert 0.48 <= coverage.mean().item() <= 0.53
    assert 0.02 <= coverage.std().item() <= 0.05


def test_box_sizes_follow_the_area_rule():
    height, width = 60, 180
    cut = sample_cutmix_boxes(200, height, width, generator=torch.Generator().manual_seed(2))
    y0, x0, y1, x1 = cut.boxes.double().unbind(-1)
    area = ((y1 - y0) * (x1 - x0) / (height * width)).flatten()
    # Mean area s̄ = 1.10·(1 − 2^(−1/32)) = 0.02357; E[h·w] ≈ E[h]·E[w] under stochastic rounding.
    assert area.mean().item() == pytest.approx(mean_box_area_fraction(32), rel=0.03)
    assert mean_box_area_fraction(32) == pytest.approx(0.0235707, abs=1e-7)
    relative_aspect = ((y1 - y0) / height) / ((x1 - x0) / width)
    assert relative_aspect.min().item() >= 0.5 * 0.8 and relative_aspect.max().item() <= 2.0 * 1.25


def test_positions_cover_the_whole_image():
    cut = sample_cutmix_boxes(200, 50, 70, generator=torch.Generator().manual_seed(3))
    y0, x0, y1, x1 = cut.boxes.unbind(-1)
    assert y0.min() == 0 and x0.min() == 0 and y1.max() == 50 and x1.max() == 70


def test_seeded_generator_is_reproducible():
    first = sample_cutmix_boxes(2, 40, 60, generator=torch.Generator().manual_seed(4))
    again = sample_cutmix_boxes(2, 40, 60, generator=torch.Generator().manual_seed(4))
    other = sample_cutmix_boxes(2, 40, 60, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first.boxes, again.boxes) and torch.equal(first.owner, again.owner)
    assert not torch.equal(first.boxes, other.boxes)
    assert not torch.equal(first.boxes[0], first.boxes[1])  # each sample draws its own boxes


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((1, 1, 10), {}, "height"),
        ((1, 10, 0), {}, "width"),
        ((0, 10, 10), {}, "batch_size"),
        ((1, 10, 10), {"num_boxes": 0}, "num_boxes"),
    ],
)
def test_sample_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_cutmix_boxes(*args, **kwargs)


def test_cutmix_takes_a_outside_and_b_inside_the_mask_exactly():
    generator = torch.Generator().manual_seed(6)
    a = torch.randn(2, 3, 9, 11, generator=generator)
    b = torch.randn(2, 3, 9, 11, generator=generator)
    cut = sample_cutmix_boxes(2, 9, 11, num_boxes=4, generator=generator)
    mixed = cutmix(a, b, cut.mask)
    inside = cut.mask.bool().expand_as(a)
    assert torch.equal(mixed[inside], b[inside]) and torch.equal(mixed[~inside], a[~inside])
    soft = cutmix(a, b, torch.full((2, 1, 9, 11), 0.25))
    torch.testing.assert_close(soft, 0.75 * a + 0.25 * b)


@pytest.mark.parametrize(
    "shape_b, shape_mask, match",
    [
        ((2, 3, 9, 10), (2, 1, 9, 11), "same shape"),
        ((2, 3, 9, 11), (2, 1, 9, 10), "mask"),
        ((2, 3, 9, 11), (2, 2, 9, 11), "channels"),
    ],
)
def test_cutmix_bad_input(shape_b, shape_mask, match):
    with pytest.raises(ValueError, match=match):
        cutmix(torch.zeros(2, 3, 9, 11), torch.zeros(shape_b), torch.zeros(shape_mask))

"""Losses of the Structured Consistency Loss method (Kim, Jang, Park 2020).

- ``relaxed_boundary_loss``: the labeled loss ``L_x`` (paper eq. 2), boundary label relaxation of
  Zhu et al. 2019 with the options of NVIDIA's Cityscapes recipe (``loss.py``, ``ImgWtLossSoftNLL``).
- ``pixel_consistency_loss``: ``L_c`` (eq. 4), mean or sum over classes, optionally over valid pixels only.
- ``pseudo_label_loss``: confident hard-label cross-entropy (FixMatch), a reference method's unlabeled term.
- ``structured_consistency_loss``: ``L_sc`` (eqs. 7–10), pair-sampled, O(last_boxes·max_pairs·C).
- ``structured_consistency_loss_dense``: every pair, float64; the reference the tests compare against.

All functions are pure: tensors in, a scalar tensor out, no state, any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "relaxed_boundary_loss",
    "pixel_consistency_loss",
    "pseudo_label_loss",
    "structured_consistency_loss",
    "structured_consistency_loss_dense",
]

# Cosine similarity divides by max(‖p‖, eps) (torch.nn.functional.normalize's default eps) so that an
# all-zero vector gives similarity 0 instead of NaN. Probability vectors have ‖p‖ ≥ 1/sqrt(C).
_COSINE_EPS = 1e-12
# Boxes with max_pairs < |T_n|² ≤ 16·max_pairs get a uniform subset *without* replacement (all |T_n|² pairs
# are enumerated, so this costs at most 16·max_pairs per box); above it, pairs are drawn *with* replacement:
# the expected share of repeated draws, ≈ max_pairs / (2·|T_n|²), is then below 1/32 ≈ 3%.
_SUBSET_FACTOR = 16


# --------------------------------------------------------------------------------------------------------
# L_x: relaxed boundary cross-entropy (eq. 2)
# --------------------------------------------------------------------------------------------------------


def relaxed_boundary_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    window: int = 3,
    class_weight_bound: float = 0.0,
    strict_classes: Sequence[int] = (),
    ignore_index: int = 255,
    boundary_weight: float = 1.0,
) -> torch.Tensor:
    """Cross-entropy with boundary label relaxation (paper eq. 2; Zhu et al. 2019).

    For pixel ``p`` let ``B(p)`` be the classes present in the ``window × window`` neighbourhood of ``p``
    (neighbours outside the image and ``ignore_index`` labels contribute no class). The pixel's loss is
    ``−(mean_{c∈B(p)} w_c) · log Σ_{k∈B(p)} softmax(logits)_k``, so a pixel whose window holds classes a and b
    pays only ``−log(p_a + p_b)``. ``window=1`` with no weights is ``F.cross_entropy`` per image.

    Args:
        logits: (B, C, H, W) float, at the label size.
        labels: (B, H, W) int64 train ids in [0, C) or ``ignore_index``.
        window: odd window side ``w`` (3 in the paper).
        class_weight_bound: per-image class weights ``w_c = 1 + bound·(1 − f_c)`` for classes with
            ``f_c > 0`` (else 1), where ``f_c`` is class c's share of the image's multi-hot window target
            including one "ignore" channel (set by ignore labels and out-of-image neighbours). 0 gives
            ``w_c = 1``; NVIDIA's Cityscapes recipe uses 1.0.
        strict_classes: train ids whose own pixels keep a one-hot target (no relaxation); NVIDIA's
            Cityscapes recipe uses (5, 6, 7, 11, 12, 17, 18).
        ignore_index: label value of unlabeled pixels.
        boundary_weight: loss weight of pixels on a label boundary (a 4-neighbour inside the image has a
            different label, ignore included: skimage ``find_boundaries(mode="thick")``, as NVIDIA uses).
            Boundary pixels also count this many times in ``f_c``. The "relaxation off" phase of NVIDIA's
            recipe (after epoch 100 of 175) is ``window=1, boundary_weight=2.0``.

    Returns:
        Scalar in the promoted float dtype of ``logits`` (at least float32). Each image's loss is the
        mean over its pixels with non-empty ``B(p)``; the batch loss is the mean over images that have
        such pixels (0, still attached to the graph, if none has).

    Raises:
        ValueError: bad shapes or dtypes, an even ``window``, label or strict class values out of range.
    """
    _check_labeled_inputs(logits, labels, window, strict_classes, ignore_index)
    if window == 1 and class_weight_bound == 0:
        # B(p) is the pixel's own class and every class weight is 1: plain cross-entropy, 13x faster forward and
        # backward than the window machinery (4 x 19 x 128 x 128, one thread: 5.5 ms against 70 ms).
        return _cross_entropy_per_image(logits, labels, ignore_index, boundary_weight)
    return _relaxed_loss(logits, labels, window, class_weight_bound, strict_classes, ignore_index, boundary_weight)


def _cross_entropy_per_image(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int,
                             boundary_weight: float) -> torch.Tensor:
    """`relaxed_boundary_loss` at window 1 without class weights (strict classes change nothing there)."""
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    pixel_loss = F.cross_entropy(logits.to(compute_dtype), labels, ignore_index=ignore_index, reduction="none")
    pixel_weight = _boundary_pixel_weight(labels, boundary_weight, compute_dtype)
    if pixel_weight is not None:
        pixel_loss = pixel_loss * pixel_weight
    return _mean_over_images(pixel_loss, labels != ignore_index)


def _relaxed_loss(logits: torch.Tensor, labels: torch.Tensor, window: int, class_weight_bound: float,
                  strict_classes: Sequence[int], ignore_index: int, boundary_weight: float) -> torch.Tensor:
    """`relaxed_boundary_loss` for any window and weights, from the multi-hot window targets."""
    num_classes = logits.shape[1]
    compute_dtype = torch.promote_types(logits.dtype, torch.float32)
    own, target = _window_targets(labels, num_classes, window, ignore_index, compute_dtype)
    if strict_classes:
        strict = torch.isin(labels, torch.tensor(list(strict_classes), device=labels.device))
        target = torch.where(strict.unsqueeze(1), own, target)
    pixel_weight = _boundary_pixel_weight(labels, boundary_weight, compute_dtype)
    in_window = target[:, :num_classes] > 0  # (B, C, H, W): the set B(p)
    valid = in_window.any(dim=1)  # (B, H, W)
    class_factor = _mean_class_weight(target, in_window, pixel_weight, class_weight_bound)
    log_mass = _log_window_mass(logits.to(compute_dtype), in_window, valid)
    pixel_loss = -(class_factor * log_mass)
    if pixel_weight is not None:
        pixel_loss = pixel_loss * pixel_weight
    pixel_loss = torch.where(valid, pixel_loss, torch.zeros_like(pixel_loss))
    return _mean_over_images(pixel_loss, valid)


def _check_labeled_inputs(
    logits: torch.Tensor, labels: torch.Tensor, window: int, strict_classes: Sequence[int], ignore_index: int
) -> None:
    if logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float (B, C, H, W) tensor, got {logits.dtype} {tuple(logits.shape)}")
    if labels.dim() != 3 or labels.shape != logits.shape[:1] + logits.shape[2:]:
        expected = tuple(logits.shape[:1] + logits.shape[2:])
        raise ValueError(f"labels must be (B, H, W) = {expected}, got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be an integer tensor, got {labels.dtype}")
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be a positive odd integer, got {window}")
    num_classes = logits.shape[1]
    if 0 <= ignore_index < num_classes:
        raise ValueError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(f"labels must be in [0, {num_classes}) or {ignore_index}, got {labels[bad][0].item()}")
    if any(not 0 <= c < num_classes for c in strict_classes):
        raise ValueError(f"strict_classes must be in [0, {num_classes}), got {tuple(strict_classes)}")


def _window_targets(
    labels: torch.Tensor, num_classes: int, window: int, ignore_index: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot and window multi-hot targets, (B, C + 1, H, W) each, channel C = "ignore".

    Out-of-image neighbours set the ignore channel (a border pixel has no neighbour there to relax to). NVIDIA's
    ``RelaxedBoundaryLossToTensor`` shifts with ``np.roll`` instead, which wraps the opposite image border into the
    window.
    """
    radius = window // 2
    index = torch.where(labels == ignore_index, num_classes, labels).long()
    padded = F.pad(index, (radius, radius, radius, radius), value=num_classes)
    batch, height, width = labels.shape
    one_hot = torch.zeros(batch, num_classes + 1, *padded.shape[1:], dtype=dtype, device=labels.device)
    one_hot.scatter_(1, padded.unsqueeze(1), 1.0)
    own = one_hot[:, :, radius : radius + height, radius : radius + width]
    if window == 1:
        return own, own
    return own, F.max_pool2d(one_hot, kernel_size=window, stride=1)


def _boundary_pixel_weight(labels: torch.Tensor, boundary_weight: float, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, H, W) weights: ``boundary_weight`` on label boundaries, 1 elsewhere; None when the weight is 1."""
    if boundary_weight == 1.0:
        return None
    boundary = torch.zeros_like(labels, dtype=torch.bool)
    vertical = labels[:, 1:, :] != labels[:, :-1, :]
    horizontal = labels[:, :, 1:] != labels[:, :, :-1]
    boundary[:, 1:, :] |= vertical
    boundary[:, :-1, :] |= vertical
    boundary[:, :, 1:] |= horizontal
    boundary[:, :, :-1] |= horizontal
    return torch.where(boundary, boundary_weight, 1.0).to(dtype)


def _mean_class_weight(
    target: torch.Tensor, in_window: torch.Tensor, pixel_weight: torch.Tensor | None, bound: float
) -> torch.Tensor:
    """(B, H, W) factor ``mean_{c∈B(p)} w_c`` with per-image weights ``w_c = 1 + bound·(1 − f_c)``.

    Frequencies are per image, as NVIDIA's ``ImgWtLossSoftNLL`` without ``BATCH_WEIGHTING``; boundary
    pixels count ``boundary_weight`` times there because NVIDIA doubles their target in that phase.
    """
    if bound == 0.0:
        return torch.ones_like(in_window[:, 0], dtype=target.dtype)
    weighted = target if pixel_weight is None else target * pixel_weight.unsqueeze(1)
    counts = weighted.sum(dim=(2, 3))  # (B, C + 1)
    share = counts / counts.sum(dim=1, keepdim=True).clamp_min(1.0)
    share = share[:, :-1]
    class_weight = torch.where(share > 0, 1.0 + bound * (1.0 - share), torch.ones_like(share))
    member = in_window.to(target.dtype)
    summed = (member * class_weight[:, :, None, None]).sum(dim=1)
    return summed / member.sum(dim=1).clamp_min(1.0)


def _log_window_mass(logits: torch.Tensor, in_window: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, H, W) ``log Σ_{k∈B(p)} softmax(logits)_k``, computed stably as a difference of logsumexps.

    Pixels with empty ``B(p)`` use all classes (giving 0, finite gradients) and are masked by the caller.
    """
    members = in_window | ~valid.unsqueeze(1)
    masked = logits.masked_fill(~members, float("-inf"))
    return torch.logsumexp(masked, dim=1) - torch.logsumexp(logits, dim=1)


def _mean_over_images(pixel_loss: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean over each image's valid pixels, then over images that have any.

    NVIDIA's ``custom_nll`` divides each image's sum by (valid pixels + 1) and sums over images, and
    passes the border weights of the *whole batch* for every image, so with batch size > 1 each image's
    loss is divided by the other images' border weights too. That is a bug; we do not reproduce it.
    """
    per_image_count = valid.sum(dim=(1, 2))
    per_image = pixel_loss.sum(dim=(1, 2)) / per_image_count.clamp_min(1)
    has_pixels = per_image_count > 0
    return per_image.sum() / has_pixels.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------------------
# L_c: pixel consistency (eq. 4)
# --------------------------------------------------------------------------------------------------------


def pixel_consistency_loss(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    *,
    reduction: str = "mean",
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pixel consistency ``L_c`` (paper eq. 4): squared distance of probability vectors.

    - ``reduction="mean"`` (default): ``(p_s − p_t)²`` averaged over classes, pixels and batch, the
      ``nn.MSELoss`` semantics. With λ_c = 20 and C = 19 classes the effective weight on the class-sum is
      20/19 ≈ 1: French et al.'s CutMix-Seg setting (class-sum, weight 1 on Cityscapes and VOC); Mean Teacher's
      softmax-MSE also divides by the class count.
    - ``reduction="sum"``: summed over classes, averaged over pixels and batch: the literal eq. 4.

    Args:
        student_probs: (B, C, H, W) float probabilities ``p_s(u_m)``; gradients flow into it.
        teacher_probs: (B, C, H, W) float guessed labels ``p_mt``; detached (no gradient, ever).
        reduction: "mean" or "sum" over the class dimension (see above).
        valid: optional (B, H, W) bool; only these pixels count (e.g. not the zero padding of a scaled-down
            crop, on which a student would learn to copy the teacher's guess about nothing). The mean runs
            over the valid pixels of the whole batch; no valid pixel gives 0 (with a gradient of 0).

    Returns:
        Scalar, promoted float dtype (at least float32).

    Raises:
        ValueError: shapes differ, not 4-D, NaN/inf values, unknown ``reduction``, ``valid`` of another shape.
    """
    _check_probability_pair(student_probs, teacher_probs)
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    classes = student_probs.shape[1] if reduction == "mean" else 1
    dtype = torch.promote_types(torch.promote_types(student_probs.dtype, teacher_probs.dtype), torch.float32)
    student, teacher = student_probs.to(dtype), teacher_probs.detach().to(dtype)
    if valid is None:
        # F.mse_loss's fused kernel keeps no (B, C, H, W) temporaries: peak 58 MB instead of 236 MB at 896².
        total = F.mse_loss(student, teacher, reduction="sum")
        return total / (student.numel() // student.shape[1]) / classes
    valid = _check_valid_map(valid, student_probs)
    per_pixel = (student - teacher).square().sum(dim=1)  # (B, H, W)
    return (per_pixel * valid).sum() / valid.sum().clamp_min(1) / classes


def pseudo_label_loss(
    student_logits: torch.Tensor,
    teacher_probs: torch.Tensor,
    *,
    threshold: float = 0.95,
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy towards the teacher's hard labels where it is confident (FixMatch, Sohn et al. 2020;
    UniMatch's core, Yang et al. 2023, threshold 0.95).

    ``Σ_p [max_c p_t(p) ≥ threshold] · CE(student(p), argmax_c p_t(p)) / #valid pixels``: unconfident pixels
    count in the denominator with loss 0, as UniMatch does, so the term grows with the teacher's confidence.

    Args:
        student_logits: (B, C, H, W) float logits of the student on ``u_m``.
        teacher_probs: (B, C, H, W) float guessed labels ``p_mt``; detached.
        threshold: confidence in [0, 1] a pixel's largest teacher probability must reach.
        valid: optional (B, H, W) bool map of the pixels that count (not padding).

    Returns:
        Scalar float (at least float32); 0 when no pixel is valid.
    """
    _check_probability_pair(student_logits, teacher_probs)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    confidence, target = teacher_probs.detach().max(dim=1)
    weight = (confidence >= threshold).to(torch.promote_types(student_logits.dtype, torch.float32))
    valid = torch.ones_like(target, dtype=torch.bool) if valid is None else _check_valid_map(valid, student_logits)
    per_pixel = F.cross_entropy(student_logits.to(weight.dtype), target, reduction="none")
    return (per_pixel * weight * valid).sum() / valid.sum().clamp_min(1)


def _check_valid_map(valid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    expected = like.shape[:1] + like.shape[2:]
    if valid.shape != expected:
        raise ValueError(f"valid must have shape (B, H, W) = {tuple(expected)}, got {tuple(valid.shape)}")
    return valid.to(torch.bool)


def _check_probability_pair(student_probs: torch.Tensor, teacher_probs: torch.Tensor) -> None:
    if student_probs.dim() != 4 or not student_probs.is_floating_point() or student_probs.numel() == 0:
        raise ValueError(
            f"student_probs must be a non-empty float (B, C, H, W) tensor, "
            f"got {student_probs.dtype} {tuple(student_probs.shape)}"
        )
    if teacher_probs.shape != student_probs.shape or not teacher_probs.is_floating_point():
        raise ValueError(
            f"teacher_probs must be float with the student's shape {tuple(student_probs.shape)}, "
            f"got {teacher_probs.dtype} {tuple(teacher_probs.shape)}"
        )
    for name, probs in (("student_probs", student_probs), ("teacher_probs", teacher_probs)):
        # One reduction instead of an elementwise isfinite (3 passes and a bool map over B·C·H·W): NaN and
        # inf propagate into the sum; a float32 sum of probabilities cannot overflow.
        if not torch.isfinite(probs.detach().sum(dtype=torch.float32)):
            raise ValueError(f"{name} contains NaN or inf values")


# --------------------------------------------------------------------------------------------------------
# L_sc: structured consistency (eqs. 7–10)
# --------------------------------------------------------------------------------------------------------


def structured_consistency_loss(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    owner: torch.Tensor,
    *,
    num_boxes: int,
    last_boxes: int = 16,
    max_pairs: int | None = 9000,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Structured consistency ``L_sc`` (paper eq. 10), sampled in O(last_boxes · max_pairs · C).

    For each of the last ``last_boxes`` boxes ``n`` of each sample, ``T_n = {p : owner(p) = n}`` are the
    pixels of box n that no later box covers. Over ordered pairs ``(i, j) ∈ T_n × T_n`` (diagonal
    included) the loss averages ``(a^s_ij − a^t_ij)²`` with ``a_ij = p_iᵀp_j / (‖p_i‖‖p_j‖)``, sums over
    boxes (an empty ``T_n`` adds 0) and averages over the batch. Which pairs (eq. 9):

    - ``max_pairs is None`` or ``|T_n|² ≤ max_pairs``: every pair -- equal to the dense eq. 8;
    - ``max_pairs < |T_n|² ≤ 16·max_pairs``: ``max_pairs`` pairs uniformly without replacement;
    - ``|T_n|² > 16·max_pairs``: ``max_pairs`` pairs uniformly with replacement (< 3% repeats expected).

    Every sampled estimate is unbiased for the box's dense mean. No ``|T_n| × |T_n|`` matrix is formed:
    each box gets ``max_pairs`` pair slots (fewer when no box has that many pairs; unused slots are
    masked), so time is O(B·last_boxes·max_pairs·C) and working memory O(B·max_pairs·C) (boxes are
    processed one at a time), plus an O(B·H·W) bool map and O(visible pixels) int64 to group the pixels by
    box, and the (B, C, H, W) gradient every loss on these probabilities produces. ``max_pairs=None`` gives
    every box as many slots as the largest box has pairs: O(B·last_boxes·max|T_n|²·C), like the dense loss.

    Args:
        student_probs: (B, C, H, W) float ``p_s(u_m)``; gradients flow through it, including through the
            cosine normalisation (SKD detaches the norm; we do not).
        teacher_probs: (B, C, H, W) float ``p_mt``; detached.
        owner: (B, H, W) integer, values in [−1, num_boxes − 1]: the last box covering each pixel
            (``CutMixBoxes.owner``), −1 where none.
        num_boxes: N, the number of boxes drawn.
        last_boxes: N_box; only boxes ``num_boxes − last_boxes .. num_boxes − 1`` are scored.
        max_pairs: N_pair per box, or None for every pair.
        generator: random source for the pair sampling (on the probabilities' device).

    Returns:
        Scalar, promoted float dtype of ``student_probs`` (at least float32).

    Raises:
        ValueError: mismatched shapes, NaN/inf probabilities, owner values out of range, ``last_boxes``
            not in [1, num_boxes], ``max_pairs`` < 1.
    """
    _check_structured_inputs(student_probs, teacher_probs, owner, num_boxes, last_boxes, max_pairs)
    batch = student_probs.shape[0]
    dtype = torch.promote_types(student_probs.dtype, torch.float32)
    positions, counts, offsets = _group_scored_pixels(owner, num_boxes - last_boxes, last_boxes)
    if positions.numel() == 0:  # no scored box owns a pixel
        return (student_probs.sum() * 0.0).to(dtype)
    rank_i, rank_j, chosen = _sample_pair_ranks(counts, max_pairs, generator)  # (B·N_box, S) slots
    slots = rank_i.shape[1]
    valid = torch.arange(slots, device=owner.device) < chosen.unsqueeze(1)
    # Unused slots point anywhere inside ``positions`` and are masked out below.
    index = (offsets.unsqueeze(1) + torch.cat([rank_i, rank_j], dim=1)).clamp_max(positions.numel() - 1)
    at = positions[index].view(batch, -1)  # (B, N_box·2S) pixel positions inside each image plane
    with torch.no_grad():
        teacher = _SlotCosines.apply(teacher_probs.detach(), at, last_boxes)
    student = _SlotCosines.apply(student_probs, at, last_boxes)
    # where, not a product: an unused slot's value never reaches the sum, whatever it holds.
    squared = torch.where(valid.view(batch, last_boxes, slots), (student - teacher).square(), 0.0)
    per_box = squared.sum(dim=2) / chosen.view(batch, last_boxes).clamp_min(1).to(dtype)
    return per_box.sum(dim=1).mean()


def _check_structured_inputs(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    owner: torch.Tensor,
    num_boxes: int,
    last_boxes: int,
    max_pairs: int | None,
) -> None:
    _check_probability_pair(student_probs, teacher_probs)
    expected = student_probs.shape[:1] + student_probs.shape[2:]
    if owner.shape != expected:
        raise ValueError(f"owner must have shape (B, H, W) = {tuple(expected)}, got {tuple(owner.shape)}")
    if owner.is_floating_point() or owner.dtype == torch.bool:
        raise ValueError(f"owner must be an integer tensor, got {owner.dtype}")
    if num_boxes < 1:
        raise ValueError(f"num_boxes must be >= 1, got {num_boxes}")
    if not 1 <= last_boxes <= num_boxes:
        raise ValueError(f"last_boxes must be in [1, num_boxes={num_boxes}], got {last_boxes}")
    if max_pairs is not None and max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1 or None, got {max_pairs}")
    if owner.numel():
        low, high = torch.aminmax(owner)
        if low < -1 or high >= num_boxes:
            raise ValueError(f"owner values must be in [-1, {num_boxes - 1}], got [{low.item()}, {high.item()}]")


def _group_scored_pixels(
    owner: torch.Tensor, first_box: int, last_boxes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group the pixels of the scored boxes by (sample, box).

    Returns ``positions`` (V,) int64, each pixel's index inside its image plane, ordered by group
    ``g = b·last_boxes + (n − first_box)``, and per group its pixel count and offset into ``positions``,
    (B·last_boxes,) int64 each.
    """
    batch = owner.shape[0]
    flat_owner = owner.reshape(-1)
    plane = flat_owner.numel() // batch
    # Only a bool map is O(B·H·W); everything after it is O(visible pixels).
    pixels = torch.nonzero(flat_owner >= first_box).squeeze(1)  # flat b·H·W + p, ascending
    pixel_group = (pixels // plane) * last_boxes + flat_owner[pixels].long() - first_box
    # A stable sort keeps pixels in raster order inside each group, so a seeded generator picks the same pairs.
    pixel_group, order = torch.sort(pixel_group, stable=True)
    counts = torch.bincount(pixel_group, minlength=batch * last_boxes)
    offsets = torch.cumsum(counts, dim=0) - counts
    return pixels[order] % plane, counts, offsets


def _sample_pair_ranks(
    counts: torch.Tensor, max_pairs: int | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Choose ordered pairs for groups of ``counts[g]`` pixels (regimes: ``structured_consistency_loss``).

    Every group gets S slots, S = the most pairs any group uses (``max_pairs`` on full-size images).
    Returns the ranks ``i``, ``j`` inside the group of the pair in each slot, (G, S) int64 each, and the
    number of slots used per group, (G,) int64; slots beyond that hold arbitrary ranks. Enumerated pair t
    has ranks (t // |T|, t % |T|).
    """
    all_pairs = counts * counts
    chosen = all_pairs if max_pairs is None else all_pairs.clamp_max(max_pairs)
    slots = max(int(chosen.max()), 1)  # = max_pairs unless every box has fewer pairs (small images)
    size = counts.clamp_min(1).unsqueeze(1)
    pair = torch.arange(slots, device=counts.device).expand(counts.numel(), slots)
    if max_pairs is not None:
        subset = (all_pairs > max_pairs) & (all_pairs <= _SUBSET_FACTOR * max_pairs)
        if subset.any():
            pair = torch.where(subset.unsqueeze(1), _subset_of_pairs(all_pairs, subset, slots, generator), pair)
    rank_i, rank_j = pair // size, pair % size
    if max_pairs is not None:
        drawn = (all_pairs > _SUBSET_FACTOR * max_pairs).unsqueeze(1)
        if drawn.any():
            shape = (counts.numel(), slots, 2)
            uniform = torch.rand(shape, generator=generator, device=counts.device, dtype=torch.float64)
            ranks = torch.minimum((uniform * size.unsqueeze(2)).long(), size.unsqueeze(2) - 1)
            rank_i = torch.where(drawn, ranks[..., 0], rank_i)
            rank_j = torch.where(drawn, ranks[..., 1], rank_j)
    return rank_i, rank_j, chosen


def _subset_of_pairs(
    all_pairs: torch.Tensor, subset: torch.Tensor, slots: int, generator: torch.Generator | None
) -> torch.Tensor:
    """For each ``subset`` group, ``slots`` distinct pair indices t ∈ [0, |T|²) chosen uniformly: (G, slots).

    Lists all |T|² indices of those groups (at most 16·slots each), gives each a random key and keeps the
    ``slots`` smallest keys per group. Rows of other groups are 0.
    """
    sizes = torch.where(subset, all_pairs, torch.zeros_like(all_pairs))
    group = torch.repeat_interleave(torch.arange(sizes.numel(), device=sizes.device), sizes)
    starts = torch.cumsum(sizes, dim=0) - sizes
    pair = torch.arange(group.numel(), device=sizes.device) - starts[group]
    keys = torch.rand(group.numel(), generator=generator, device=sizes.device, dtype=torch.float64)
    order = torch.argsort(group.to(torch.float64) + keys)  # group-major, random inside each group
    group, pair = group[order], pair[order]
    position = torch.arange(group.numel(), device=sizes.device) - starts[group]
    keep = position < slots
    table = torch.zeros(sizes.numel(), slots, dtype=torch.int64, device=sizes.device)
    table[group[keep], position[keep]] = pair[keep]
    return table


class _SlotCosines(torch.autograd.Function):
    """Cosine similarity of each slot's pixel pair, (B, N_box, S), computed one box at a time.

    ``at`` (B, N_box·2S) holds, per box, the S first pixels then the S second pixels. Only ``at`` is saved;
    the backward gathers each box's vectors again. Working memory is therefore O(B·S·C) -- one box's
    vectors -- instead of O(B·N_box·S·C) several times over (autograd's saved gathers, products and
    gradients: ~110 MB at N_box = 16, S = 9000, C = 19). The loop runs over at most N_box boxes.
    """

    @staticmethod
    def forward(ctx, probs: torch.Tensor, at: torch.Tensor, last_boxes: int) -> torch.Tensor:
        flat = probs.reshape(probs.shape[0], probs.shape[1], -1)
        at = at.view(probs.shape[0], last_boxes, -1)
        cosines = torch.stack([_box_cosines(flat, at[:, box])[2] for box in range(last_boxes)], dim=1)
        ctx.save_for_backward(probs, at)
        return cosines

    @staticmethod
    def backward(ctx, grad_cosines: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        probs, at = ctx.saved_tensors
        batch, num_classes = probs.shape[:2]
        flat = probs.reshape(batch, num_classes, -1)
        grad = torch.zeros(flat.shape, dtype=grad_cosines.dtype, device=flat.device)
        for box in range(at.shape[1]):
            vectors, squared_norms, cosine = _box_cosines(flat, at[:, box])
            first, second = vectors.unbind(dim=2)  # (B, C, S)
            weight = grad_cosines[:, box]  # (B, S)
            inverse = _inverse_norm_product(squared_norms)
            # ∂a/∂p_i = p_j/(‖p_i‖‖p_j‖) − a·p_i/‖p_i‖² (0 where the norm is clamped at eps).
            radial = torch.where(squared_norms > _COSINE_EPS**2, cosine.unsqueeze(1) / squared_norms, 0.0)
            along = (weight * inverse).unsqueeze(1)
            grad_first = second * along - first * (weight * radial[:, 0]).unsqueeze(1)
            grad_second = first * along - second * (weight * radial[:, 1]).unsqueeze(1)
            index = at[:, box].unsqueeze(1).expand(batch, num_classes, at.shape[2])
            grad.scatter_add_(2, index, torch.cat([grad_first, grad_second], dim=2))
        return grad.view(probs.shape).to(probs.dtype), None, None


def _box_cosines(flat: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One box: ``flat`` (B, C, H·W), ``at`` (B, 2S) → vectors (B, C, 2, S), squared norms (B, 2, S) and
    cosines (B, S), in at least float32. ``gather`` reads one class plane at a time (4× faster on CPU than
    indexing pixel by pixel across planes); norms are clamped at eps as ``F.normalize`` does."""
    batch, num_classes = flat.shape[:2]
    dtype = torch.promote_types(flat.dtype, torch.float32)
    vectors = flat.gather(2, at.unsqueeze(1).expand(batch, num_classes, at.shape[1])).to(dtype)
    vectors = vectors.view(batch, num_classes, 2, -1)
    squared_norms = (vectors * vectors).sum(dim=1)
    first, second = vectors.unbind(dim=2)
    cosine = (first * second).sum(dim=1) * _inverse_norm_product(squared_norms)
    return vectors, squared_norms, cosine


def _inverse_norm_product(squared_norms: torch.Tensor) -> torch.Tensor:
    """1 / (max(‖p_i‖, eps)·max(‖p_j‖, eps)) from squared norms (B, 2, S) → (B, S). Each factor is at most 1e12,
    so the product stays finite; the product of the clamped squares (1e-24 each) underflowed to 0 in float32
    when both vectors were ~0 (e.g. a one-hot target's ignored pixel), and 0·inf gave NaN."""
    return torch.rsqrt(squared_norms.clamp_min(_COSINE_EPS**2)).prod(dim=1)


def structured_consistency_loss_dense(
    student_probs: torch.Tensor,
    teacher_probs: torch.Tensor,
    owner: torch.Tensor,
    *,
    num_boxes: int,
    last_boxes: int = 16,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Reference ``L_sc`` over every pair (paper eq. 8 restricted to the last boxes), one box at a time.

    Forms each box's ``|T_n| × |T_n|`` cosine matrices: O(Σ|T_n|²) memory, for tests and benchmarks only.
    Arguments as ``structured_consistency_loss``; ``dtype`` is the compute dtype (float64 for the tests,
    the inputs' dtype to time what a dense implementation would cost). Returns a scalar in ``dtype``.
    """
    _check_structured_inputs(student_probs, teacher_probs, owner, num_boxes, last_boxes, None)
    total = student_probs.new_zeros((), dtype=dtype)
    for b in range(student_probs.shape[0]):
        for box in range(num_boxes - last_boxes, num_boxes):
            visible = owner[b] == box
            if not visible.any():
                continue
            student = F.normalize(student_probs[b][:, visible].to(dtype), dim=0, eps=_COSINE_EPS)
            teacher = F.normalize(teacher_probs[b][:, visible].detach().to(dtype), dim=0, eps=_COSINE_EPS)
            total = total + (student.T @ student - teacher.T @ teacher).square().mean()
    return total / student_probs.shape[0]

"""Exponential-moving-average ("mean") teacher (Tarvainen & Valpola 2017).

The paper updates the teacher after every optimizer step with ``θ_t ← d·θ_t + (1 − d)·θ_s``, d = 0.999, and
uses it for the guessed labels, validation and the exported model (Table 3: EMA in teacher and validation is
best). ``decay=0`` makes the teacher a copy of the student: the paper's "no EMA" ablation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["EMATeacher"]


class EMATeacher:
    """EMA copy of a model, updated from the student after each optimizer step.

    The teacher is a deep copy of ``model`` in ``eval()`` mode with ``requires_grad=False`` everywhere; it is
    not a submodule of anything, so ``Trainer``'s ``model.train()`` never reaches it (a
    teacher in train mode would update its BatchNorm statistics and apply dropout).
    ``update`` lerps parameters and floating-point buffers (BatchNorm running statistics) towards the
    student's and copies integer buffers (``num_batches_tracked``).

    Args:
        model: the student at the start of training; copied, not kept.
        decay: ``d`` in [0, 1]; 0.999 in the paper.
        warmup: use ``d_t = min(1 − 1/(t + 1), d)`` for the t-th update (t = 1, 2, ...), as Mean Teacher
            does; after t warm-up updates the teacher is the plain average of the student's initial
            weights and its t updated weights. Off by default (the paper does not mention it).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = False) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.base_decay = float(decay)
        self.warmup = warmup
        self.step = 0

    @property
    def decay(self) -> float:
        """The decay the next ``update`` applies (``base_decay``, or the warm-up value for step + 1)."""
        if not self.warmup:
            return self.base_decay
        return min(1.0 - 1.0 / (self.step + 2), self.base_decay)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """``θ_t ← d·θ_t + (1 − d)·θ_s`` for parameters and floating buffers; integer buffers copied."""
        teacher_float, student_float, teacher_int, student_int = self._paired_tensors(student)
        weight = 1.0 - self.decay
        if teacher_float:
            # lerp(t, s, w) = t + w·(s − t); PyTorch's lerp is exact at w = 0 and w = 1, so decay 1 keeps the
            # teacher and decay 0 copies the student bit for bit.
            torch._foreach_lerp_(teacher_float, student_float, weight)
        for target, source in zip(teacher_int, student_int):
            target.copy_(source)
        self.step += 1

    def _paired_tensors(
        self, student: nn.Module
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Teacher and student tensors matched by name, split into floating and integer tensors."""
        teacher_named = _named_tensors(self.model)
        student_named = _named_tensors(student)
        if teacher_named.keys() != student_named.keys():
            missing = sorted(teacher_named.keys() ^ student_named.keys())[:5]
            raise ValueError(f"student does not match the teacher's architecture (differing names: {missing})")
        lists: tuple[list[torch.Tensor], ...] = ([], [], [], [])
        for name, target in teacher_named.items():
            source = student_named[name].detach()
            if source.shape != target.shape:
                shapes = f"{tuple(source.shape)} vs the teacher's {tuple(target.shape)}"
                raise ValueError(f"student tensor {name!r} has shape {shapes}")
            offset = 0 if target.is_floating_point() else 2
            lists[offset].append(target)
            lists[offset + 1].append(source.to(device=target.device, dtype=target.dtype))
        return lists  # type: ignore[return-value]

    def state_dict(self) -> dict[str, Any]:
        """``{"model": teacher weights, "step": updates done}``; configuration comes from the constructor."""
        return {"model": self.model.state_dict(), "step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (strict on the model's keys)."""
        self.model.load_state_dict(state["model"])
        self.step = int(state["step"])


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers by name (buffers registered as non-persistent included)."""
    named = dict(model.named_parameters())
    named.update(model.named_buffers())
    return named

"""Rebuild NVIDIA-format DeepWV3Plus weights from the tensor manifest, by the documented rule that produced
`fixtures/nvidia_deepwv3plus_logits_seed1.npz`: each tensor from its own generator seeded with
`crc32(name) ^ seed`; BN weight and running_var `0.8 + 0.4·U[0,1)`, running_mean and biases `0.05·N(0,1)`,
conv weights `N(0,1)·sqrt(2/fan_in)·0.7`, `num_batches_tracked` = 7."""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = FIXTURES / "deepwv3plus_state_dict.tsv"
REFERENCE_LOGITS = FIXTURES / "nvidia_deepwv3plus_logits_seed1.npz"


def read_manifest(path: Path = MANIFEST) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines():
        name, shape, dtype = line.split("\t")
        rows.append((name, tuple(int(s) for s in shape.strip("[]").split(",") if s.strip()), dtype))
    return rows


def _tensor(name: str, shape: tuple[int, ...], dtype: str, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) ^ seed)
    if dtype == "int64":
        return torch.tensor(7, dtype=torch.int64)
    if name.endswith("running_var") or (len(shape) == 1 and name.endswith(".weight")):
        return 0.8 + 0.4 * torch.rand(shape, generator=g)
    if name.endswith("running_mean") or name.endswith(".bias"):
        return 0.05 * torch.randn(shape, generator=g)
    return torch.randn(shape, generator=g) * math.sqrt(2.0 / math.prod(shape[1:])) * 0.7


def nvidia_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    return {name: _tensor(name, shape, dtype, seed) for name, shape, dtype in read_manifest()}


def save_nvidia_checkpoint(path: Path, state: dict[str, torch.Tensor], *, wrap: bool = True) -> Path:
    """Write as NVIDIA does: `{'state_dict': {'module.' + name: tensor}, 'epoch', 'mean_iu'}` (or bare)."""
    if wrap:
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 0, "mean_iu": 0.0}, path)
    else:
        torch.save(dict(state), path)
    return path

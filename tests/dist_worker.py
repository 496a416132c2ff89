"""Worker process for the 2-process all-reduce test in test_metrics.py.

It loads `sclseg/evaluation/metrics.py` (which needs only torch) from the file the parent test imported, rather
than importing the `sclseg` package: the package's __init__ imports transformers, ~12 s per process on the
shared 2-core CPU, which would make the test 3× slower without testing anything more.
"""

from __future__ import annotations

import importlib.util
from datetime import timedelta

import torch
import torch.distributed as dist


def _load_metrics(path: str):
    spec = importlib.util.spec_from_file_location("_sclseg_metrics_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reduce_worker(rank: int, port: int, metrics_path: str, pred: torch.Tensor, target: torch.Tensor,
                  num_classes: int, out: str) -> None:
    """One of two gloo processes: counts its half of the batch (split on dim 0), all-reduces, rank 0 saves."""
    metrics = _load_metrics(metrics_path)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))
    try:
        cm = metrics.ConfusionMatrix(num_classes)
        half = pred.shape[0] // 2
        rows = slice(0, half) if rank == 0 else slice(half, None)
        cm.update(pred[rows], target[rows])
        cm.all_reduce()
        if rank == 0:
            torch.save(cm.matrix, out)
    finally:
        dist.destroy_process_group()

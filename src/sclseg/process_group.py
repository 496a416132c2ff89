"""Leaving the process group of a multi-process run (`accelerate launch --num_processes N`)."""

from __future__ import annotations

from accelerate import PartialState


def leave_process_group_together(state: PartialState) -> None:
    """Wait for every process, then destroy the process group; a no-op for one process.

    A rank that exits while the group is alive and rank 0 still writes (the model, pictures, a card) aborted
    with "terminate called without an active exception" in about 1 of 4 two-process CPU runs; the launcher
    then kills rank 0 and the whole run fails. Call it on every rank, on the success path only: a rank that
    raised never reaches the barrier, and the others would wait for it.
    """
    if state.num_processes > 1:
        state.wait_for_everyone()
        state.destroy_process_group()

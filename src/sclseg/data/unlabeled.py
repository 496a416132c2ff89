"""The unlabeled stream: pairs of augmented unlabeled images from a `datasets` streaming `IterableDataset`.

Sources (`load_unlabeled`): a local image folder (the `imagefolder` builder; e.g. Cityscapes
`leftImg8bit/train_extra`, whose coarse labels are ignored, paper §4.2), local Parquet shards (see
`packing.py`), local WebDataset `.tar` shards, or a Hub dataset repo id. Images are read as raw bytes
(`Image(decode=False)`) and decoded here, so a corrupt, truncated or non-image file is skipped, counted in
`skipped` and warned about once, instead of raising inside `datasets`.

`UnlabeledPairStream` yields `{"pixel_values_a", "pixel_values_b"}`, each (3, h, w) float32, and
`{"valid_a", "valid_b"}`, (h, w) bool maps that are False on crop padding (the unlabeled losses skip it):
- `pair_mode="same"` (default): two independent augmentations of one image — the paper: "we generate u_a and
  u_b by applying random augmentation" to one unlabeled image per GPU;
- `pair_mode="different"`: two consecutive (shuffled) images, each augmented once, as French et al. (2019).

Distributed: `split_dataset_by_node(rank, world_size)` gives each process its own shards (or every
world_size-th example when the shard count is not a multiple of world_size — an image folder is one shard,
hence `sclseg pack-unlabeled`).

Shuffling and exact resume: `datasets`' own shuffle buffer is lost on `load_state_dict` (documented in
datasets 5.2 `IterableDataset.state_dict`, and its `BufferShuffledExamplesIterable` warns so), so resuming
would not continue with the same images. Instead this stream shuffles shard order per epoch (`set_epoch`) and
permutes consecutive blocks of `shuffle_buffer` examples with a permutation seeded by (seed, rank, epoch,
block). The state is the `datasets` state at the start of the current block plus the position inside it;
on resume the block (at most `shuffle_buffer` undecoded examples) is re-read and the consumed part skipped,
so the continuation is identical, augmentations included (they are seeded by (seed, rank, pair number)).

Prefetch: decoding and augmenting a full-size pair takes ~0.5 s on one core (benchmarks/README.md), so
`prefetch=k` prepares up to k pairs in a background thread while the training step runs (PIL decoding and
torch ops release the GIL). The resume state is the one of the last pair handed out, not of the prefetched
ones, so prefetching never loses or repeats a pair.
"""

from __future__ import annotations

import io
import queue
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import datasets
import numpy as np
import torch
from datasets.distributed import split_dataset_by_node
from PIL import Image

from .cityscapes import read_image


def load_unlabeled(source: str | Path | Sequence[str | Path], *, split: str = "train") -> datasets.IterableDataset:
    """A streaming `datasets.IterableDataset` of unlabeled images.

    `source` is a folder (its `*.parquet` files, else its `*.tar` WebDataset shards, else every image file in
    it, recursively), a list of `.parquet` or `.tar` files, or a Hub dataset repo id (`split` selects the split).
    """
    if isinstance(source, (str, Path)) and not Path(source).exists():
        if isinstance(source, str) and source.count("/") <= 1 and not source.startswith((".", "/")):
            return datasets.load_dataset(source, split=split, streaming=True)
        raise FileNotFoundError(f"unlabeled source {source} is neither an existing path nor a Hub repo id")
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        parquet, tars = sorted(folder.rglob("*.parquet")), sorted(folder.rglob("*.tar"))
        if not parquet and not tars:
            return datasets.load_dataset("imagefolder", data_dir=str(folder), split="train", streaming=True,
                                         drop_labels=True)
        paths = parquet or tars
    kinds = {p.suffix for p in paths}
    if kinds == {".parquet"}:
        return datasets.load_dataset("parquet", data_files=[str(p) for p in paths], split="train", streaming=True)
    if kinds == {".tar"}:
        return datasets.load_dataset("webdataset", data_files=[str(p) for p in paths], split="train",
                                     streaming=True)
    raise ValueError(f"unlabeled files must be all .parquet or all .tar, got suffixes {sorted(kinds)}")


def image_column(dataset: datasets.IterableDataset) -> str:
    """The first column whose feature is `datasets.Image` (`image` for folders/Parquet, `png`/`jpg` for tars)."""
    features = dataset.features or {}
    for name, feature in features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise ValueError(f"no image column in the unlabeled dataset; columns: {list(features)}")


def decode_image(value: dict[str, Any]) -> np.ndarray:
    """An undecoded `datasets.Image` value `{"bytes", "path"}` -> (H, W, 3) uint8 RGB.

    Greyscale, RGBA, palette and 16-bit images are converted as `cityscapes.read_image` does. Raises
    `ValueError` (or `OSError` for a missing file) when the image cannot be read.
    """
    if not isinstance(value, dict):
        raise ValueError(f"example holds no image (got {type(value).__name__})")
    data = value.get("bytes")
    if data is None:
        if not value.get("path"):
            raise ValueError("example holds neither image bytes nor a path")
        return read_image(value["path"])
    return read_image(io.BytesIO(data))


def _pair_generators(seed: int, rank: int, pair: int) -> tuple[torch.Generator, torch.Generator]:
    state = np.random.SeedSequence([seed, rank, pair]).generate_state(4, dtype=np.uint32)
    return (torch.Generator().manual_seed((int(state[0]) << 32) | int(state[1])),
            torch.Generator().manual_seed((int(state[2]) << 32) | int(state[3])))


def _block_permutation(seed: int, rank: int, epoch: int, block: int, size: int) -> list[int]:
    return np.random.default_rng([seed, rank, epoch, block]).permutation(size).tolist()


class UnlabeledPairStream(torch.utils.data.IterableDataset):
    """An endless (or `max_epochs`-long) stream of augmented pairs, sharded per process, exactly resumable.

    Args:
        dataset: a streaming `datasets.IterableDataset` with one image column (see `load_unlabeled`).
        transform: the protocol of `transforms.py` (typically the labeled path's `TrainTransform`), called with
            `label=None`.
        pair_mode: "same" (two augmentations of one image, the paper) or "different" (two images).
        shuffle_buffer: examples per shuffled block (kept undecoded in memory; Cityscapes PNGs are ~2 MB).
        seed: seeds block permutations and augmentations (shard order per epoch comes from `set_epoch`).
        rank, world_size: this process and the number of processes (`split_dataset_by_node`).
        max_epochs: stop after this many passes over this rank's share; None = endless.
        prefetch: pairs prepared ahead in a background thread (0 = none, everything on `next()`).

    `skipped` counts unreadable examples up to the last pair handed out. `state_dict()` / `load_state_dict()`
    hold plain ints and the `datasets` state (JSON-serialisable). Iterate in the process that owns the state
    (DataLoader `num_workers=0`): a worker's progress would not reach it.
    """

    def __init__(self, dataset: datasets.IterableDataset, transform: Callable, *,
                 pair_mode: Literal["same", "different"] = "same", shuffle_buffer: int = 64, seed: int = 0,
                 rank: int = 0, world_size: int = 1, max_epochs: int | None = None, prefetch: int = 0) -> None:
        if pair_mode not in ("same", "different"):
            raise ValueError(f"pair_mode must be 'same' or 'different', got {pair_mode!r}")
        if shuffle_buffer < 1 or prefetch < 0:
            raise ValueError(f"need shuffle_buffer >= 1 and prefetch >= 0, got {shuffle_buffer}, {prefetch}")
        self.column = image_column(dataset)
        self.dataset = dataset.cast_column(self.column, datasets.Image(decode=False))
        self.transform, self.pair_mode, self.shuffle_buffer = transform, pair_mode, shuffle_buffer
        self.seed, self.rank, self.world_size, self.max_epochs = seed, rank, world_size, max_epochs
        self.prefetch = prefetch
        self.skipped = 0
        self._warned: set[str] = set()
        self._state = {"epoch": 0, "block": 0, "block_start": None, "offset": 0, "pairs": 0}

    @classmethod
    def from_source(cls, source: str | Path | Sequence[str | Path], transform: Callable, *, split: str = "train",
                    **kwargs: Any) -> UnlabeledPairStream:
        """`UnlabeledPairStream(load_unlabeled(source, split=split), transform, **kwargs)`."""
        return cls(load_unlabeled(source, split=split), transform, **kwargs)

    def state_dict(self) -> dict[str, Any]:
        """Where the stream stands after the last pair handed out (plus the `skipped` count)."""
        return {**self._state, "skipped": self.skipped, "seed": self.seed, "rank": self.rank,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue exactly after the pair at which `state` was taken (same rank and world size required).

        Applies to iterators created afterwards (`iter(stream)`); a running one keeps its own position."""
        if (state["rank"], state["world_size"]) != (self.rank, self.world_size):
            raise ValueError(f"stream state of rank {state['rank']}/{state['world_size']} cannot resume "
                             f"rank {self.rank}/{self.world_size}: the shards differ")
        self._state = {k: state[k] for k in ("epoch", "block", "block_start", "offset", "pairs")}
        self.skipped, self.seed = int(state["skipped"]), int(state["seed"])

    def _node_dataset(self, epoch: int, block_start: dict | None) -> datasets.IterableDataset:
        # A fresh split per epoch (also for one process): `load_state_dict` and `set_epoch` stick to the object.
        dataset = split_dataset_by_node(self.dataset, rank=self.rank, world_size=self.world_size)
        dataset.set_epoch(epoch)  # datasets shuffles the shard order for epoch > 0, identically on every rank
        if block_start is not None:
            dataset.load_state_dict(block_start)
        return dataset

    def _examples(self, state: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """The epoch's examples in shuffled order from position `state`, each with the position after it."""
        epoch, block, offset, block_start = state["epoch"], state["block"], state["offset"], state["block_start"]
        dataset = self._node_dataset(epoch, block_start)
        iterator = iter(dataset)
        while True:
            examples = list(islice(iterator, self.shuffle_buffer))
            if not examples:
                return
            order = _block_permutation(self.seed, self.rank, epoch, block, len(examples))
            for position in range(offset, len(examples)):
                after = {"epoch": epoch, "block": block, "block_start": block_start, "offset": position + 1}
                yield examples[order[position]], after
            # The datasets state after this block's last example = where the next block starts.
            block, offset, block_start = block + 1, 0, dataset.state_dict()

    def _decode(self, example: dict[str, Any]) -> np.ndarray | None:
        """The decoded image, or None (with a warning, once per file) when it cannot be read."""
        value = example.get(self.column)
        try:
            return decode_image(value)
        except (ValueError, OSError, Image.DecompressionBombError) as error:
            path = value.get("path") if isinstance(value, dict) else None
            name = str(path or example.get("__key__") or example.get("image_id") or "<no name>")
            if name not in self._warned:
                self._warned.add(name)
                warnings.warn(f"skipping unreadable unlabeled image {name}: {error}", stacklevel=2)
            return None

    def _epoch_pairs(self, state: dict[str, Any], skipped: list[int]) -> Iterator[tuple[dict, dict[str, Any]]]:
        """Pairs of one epoch from `state`, each with the state after it; `skipped[0]` counts unreadable ones."""
        waiting: np.ndarray | None = None
        pairs = state["pairs"]
        for example, after in self._examples(state):
            image = self._decode(example)
            if image is None:
                skipped[0] += 1
                continue
            if self.pair_mode == "different" and waiting is None:
                waiting = image  # an odd image left at the end of an epoch is dropped
                continue
            first, waiting = (image if waiting is None else waiting), None
            gen_a, gen_b = _pair_generators(self.seed, self.rank, pairs)
            pixels_a, valid_a = self._augment(first, gen_a)
            pixels_b, valid_b = self._augment(image, gen_b)
            pairs += 1
            yield ({"pixel_values_a": pixels_a, "pixel_values_b": pixels_b, "valid_a": valid_a, "valid_b": valid_b},
                   {**after, "pairs": pairs})

    def _augment(self, image: np.ndarray, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """One augmented view (3, h, w) and its (h, w) bool map of image pixels (False = crop padding).

        The map is the transform's label output for an all-zero label: a geometric transform pads labels with
        its ignore value where it pads the image, and draws no random number for the label, so the view's pixels
        are the same as without it."""
        ignore = getattr(self.transform, "ignore_index", 255)
        pixels, label = self.transform(image, np.zeros(image.shape[:2], dtype=np.uint8), generator=generator)
        if label is None:
            return pixels, torch.ones(pixels.shape[-2:], dtype=torch.bool)
        return pixels, label != ignore

    def _produce(self, state: dict[str, Any], skipped: int) -> Iterator[tuple[dict, dict[str, Any], int]]:
        """Every pair from `state` on, with the stream state and the skip count after it."""
        counter = [skipped]
        while self.max_epochs is None or state["epoch"] < self.max_epochs:
            start, produced = state, 0
            for pair, state in self._epoch_pairs(start, counter):
                produced += 1
                yield pair, state, counter[0]
            if produced == 0 and start["block"] == 0 and start["offset"] == 0:
                raise RuntimeError(f"rank {self.rank}/{self.world_size}: the unlabeled stream has no readable "
                                   f"image in a whole epoch ({counter[0]} skipped)")
            state = {"epoch": start["epoch"] + 1, "block": 0, "block_start": None, "offset": 0,
                     "pairs": state["pairs"]}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError("UnlabeledPairStream keeps its resume state in the iterating process; iterate it "
                               "in the main process (DataLoader num_workers=0) and use `prefetch` instead")
        produced = self._produce(dict(self._state), self.skipped)
        if self.prefetch:
            produced = _in_background(produced, self.prefetch)
        for pair, state, skipped in produced:
            self._state, self.skipped = state, skipped  # committed only when the pair is handed out
            yield pair


_END = object()


def _in_background(items: Iterator, depth: int) -> Iterator:
    """Run `items` in a thread, at most `depth` ahead; exceptions re-raise here; closing stops it.

    The thread is not a daemon: one killed at interpreter exit inside a torch op aborts the process
    ("terminate called without an active exception", exit code 134). It stops instead when the consumer
    closes the iterator or the main thread has ended, after finishing the pair in hand.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    main = threading.main_thread()

    def put(item: object) -> bool:
        while not stop.is_set() and main.is_alive():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(error)

    threading.Thread(target=work, name="unlabeled-prefetch", daemon=False).start()
    try:
        while (item := buffer.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()

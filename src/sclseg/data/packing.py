"""Pack an image folder into N Parquet shards for the unlabeled stream.

Why: a `datasets` image folder streams as ONE shard, so with several processes `split_dataset_by_node` makes
every rank list and read-skip the whole folder; N shards (N a multiple of the world size) give each rank its
own files, and shard order can be shuffled per epoch. Images are stored as their original encoded bytes
(no re-encoding, no quality loss) in the `datasets.Image` column layout, so `load_dataset("parquet", ...)`
recognises the column as images.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Parquet row groups are the unit `datasets` reads; 16 Cityscapes PNGs (~2 MB each) keep one read ~32 MB.
ROWS_PER_GROUP = 16
_FEATURES = datasets.Features({"image": datasets.Image(), "image_id": datasets.Value("string")})


@dataclass
class PackResult:
    """The shards written, how many images they hold, and the files skipped as unreadable."""

    shards: list[Path]
    images: int
    skipped: list[Path] = field(default_factory=list)


def list_images(image_dir: str | Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """Every file under `image_dir` (recursively) whose suffix is an image suffix, sorted."""
    folder = Path(image_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def _readable(data: bytes) -> bool:
    """Cheap check (header + PIL `verify`); a truncated file may still pass — the stream skips it later."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception:  # noqa: BLE001 - PIL raises many types for broken files
        return False
    return True


def _write_shard(path: Path, files: list[Path], root: Path, rows_per_group: int, skipped: list[Path]) -> int:
    """Write one shard atomically (temp file + os.replace); returns the number of images written."""
    schema = _FEATURES.arrow_schema
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    written = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, len(files), rows_per_group):
                rows = []
                for file in files[start:start + rows_per_group]:
                    data = file.read_bytes()
                    if not _readable(data):
                        warnings.warn(f"pack-unlabeled: skipping unreadable image {file}", stacklevel=2)
                        skipped.append(file)
                        continue
                    relative = file.relative_to(root).as_posix()
                    rows.append({"image": {"bytes": data, "path": relative}, "image_id": relative})
                if rows:
                    writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                    written += len(rows)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; shards are data for every user and process
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return written


def pack_image_folder(image_dir: str | Path, output_dir: str | Path, num_shards: int, *,
                      rows_per_group: int = ROWS_PER_GROUP) -> PackResult:
    """Write the images under `image_dir` into `num_shards` Parquet files `train-0000i-of-0000N.parquet`.

    Images are dealt round-robin over the shards (sorted paths; neighbouring frames of one city end up in
    different shards). Columns: `image` (`{"bytes", "path"}` with the path relative to `image_dir`) and
    `image_id`. Unreadable files are skipped with a warning and listed in the result. Refuses to write into a
    folder that already holds other Parquet files (the stream would read them too).
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    files = list_images(image_dir)
    if len(files) < num_shards:
        raise ValueError(f"{image_dir} holds {len(files)} images, fewer than the {num_shards} shards asked for")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = [f"train-{i:05d}-of-{num_shards:05d}.parquet" for i in range(num_shards)]
    others = sorted(p.name for p in out.glob("*.parquet") if p.name not in names)
    if others:
        raise FileExistsError(f"{out} already holds other Parquet files ({', '.join(others[:3])}...); "
                              "use an empty output folder")
    skipped: list[Path] = []
    total = 0
    for index, name in enumerate(names):
        total += _write_shard(out / name, files[index::num_shards], Path(image_dir), rows_per_group, skipped)
    return PackResult([out / name for name in names], total, skipped)

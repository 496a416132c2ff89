"""`sclseg pack-unlabeled IMAGE_DIR OUTPUT_DIR --num-shards N [--push-to-hub REPO_ID]`: an image folder -> N
Parquet shards, optionally uploaded to `data/` of a Hub dataset repo (streamed with `--unlabeled_source REPO_ID`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pack-unlabeled",
        help="pack an image folder into N Parquet shards for the streamed unlabeled data",
        description="Write every image under IMAGE_DIR (recursively; original bytes, no re-encoding) into N "
        "Parquet shards that `datasets` streams as images. An image folder streams as one shard, which every "
        "process would read whole; use a shard count that is a multiple of the number of processes.",
    )
    parser.add_argument("image_dir", type=Path, help="folder of images, e.g. leftImg8bit/train_extra")
    parser.add_argument("output_dir", type=Path, help="folder to write the shards into (created)")
    parser.add_argument("--num-shards", type=int, required=True, help="number of Parquet files to write")
    parser.add_argument("--rows-per-group", type=int, default=None,
                        help="images per Parquet row group (default 16)")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary as JSON to this file")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None,
                        help="upload the shards to data/ of this Hub dataset repo (created if needed; older shards "
                        "there are replaced); train from it with --unlabeled_source REPO_ID")
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create the repo as private")
    parser.add_argument("--revision", default=None, help="with --push-to-hub: branch to push to (default main)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sclseg.data.packing import ROWS_PER_GROUP, pack_image_folder

    try:
        result = pack_image_folder(args.image_dir, args.output_dir, args.num_shards,
                                   rows_per_group=args.rows_per_group or ROWS_PER_GROUP)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        raise SystemExit(f"pack-unlabeled: {error}") from error
    summary = {"shards": [str(p) for p in result.shards], "images": result.images,
               "skipped": [str(p) for p in result.skipped]}
    print(f"wrote {result.images} images into {len(result.shards)} shards in {args.output_dir}"
          f" ({len(result.skipped)} unreadable files skipped)")
    if args.push_to_hub is not None:
        summary["hub"] = _push(result, args)
    if args.json is not None:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


def _push(result, args: argparse.Namespace) -> dict:
    from sclseg.hub import UPLOAD_ERRORS, push_unlabeled_shards

    try:
        pushed = push_unlabeled_shards(result.shards, result.images, args.push_to_hub, private=args.private,
                                       revision=args.revision)
    except UPLOAD_ERRORS as error:
        raise SystemExit(f"pack-unlabeled: the shards are in {args.output_dir}, but the upload failed: "
                         f"{error}") from None
    print(f"pushed {len(result.shards)} shards to {pushed.repo_url} (commit {pushed.commit[:12]}); "
          f"train from them with --unlabeled_source {args.push_to_hub}")
    return pushed.as_dict()

"""`sclseg push MODEL_DIR REPO_ID [--revision BRANCH] [--private] [--commit-message MSG] [--tag TAG]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a saved model folder to a Hub model repo",
        description="Check that MODEL_DIR is a loadable model (config.json + safetensors weights), create the "
        "repo REPO_ID if needed (and the branch --revision), upload the folder in one commit and print its URL. "
        "Pickled files (*.bin, *.pt, ...: e.g. training_args.bin) and checkpoint-* folders are left out. The "
        "token comes from HF_TOKEN or `hf auth login`; it is never printed. HF_ENDPOINT selects another Hub.",
    )
    parser.add_argument("model_dir", type=Path, help="folder written by save_pretrained (e.g. a training output)")
    parser.add_argument("repo_id", help="model repo, e.g. user/scl-cityscapes-1-8")
    parser.add_argument("--revision", default=None, help="branch to push to (created from main if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo as private (if it is new)")
    parser.add_argument("--commit-message", default=None, help="commit message")
    parser.add_argument("--tag", default=None, help="tag the new commit (e.g. v1.0), to load it with revision=TAG")
    parser.add_argument("--json", type=Path, default=None, help="also write the result (URL, commit) as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sclseg.hub import UPLOAD_ERRORS, push_model_folder, summary_json

    try:
        result = push_model_folder(args.model_dir, args.repo_id, revision=args.revision, private=args.private,
                                   commit_message=args.commit_message, tag=args.tag)
    except UPLOAD_ERRORS as error:
        raise SystemExit(f"push: {type(error).__name__}: {error}") from None  # one line, never the token
    if result.skipped:
        print(f"left out (pickles / training state): {', '.join(result.skipped)}")
    where = result.repo_url if result.revision == "main" else f"{result.repo_url}/tree/{result.revision}"
    print(f"pushed {args.model_dir} to {where} (commit {result.commit[:12]}"
          + (f", tag {result.tag})" if result.tag else ")"))
    if args.json is not None:
        args.json.write_text(summary_json(result))
    return 0

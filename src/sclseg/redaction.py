"""What may be shown or written without leaking a Hugging Face token: masked text, one-line error messages and
token-free training arguments. Cards are public, logs are shared, and server messages quote URLs that can carry
a token, so every text sclseg writes about the Hub passes through `mask_tokens`."""

from __future__ import annotations

import copy
import os
import re
from typing import TypeVar

from huggingface_hub import get_token

MASK = "<TOKEN>"
# Hugging Face user tokens are "hf_" plus 34 letters and digits today; 8 or more catches shorter old ones too.
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9_]{8,}")
_Args = TypeVar("_Args")


def mask_tokens(text: str, secrets: tuple[str | None, ...] = ()) -> str:
    """`text` with `secrets`, the current token (login or `HF_TOKEN`/`HUGGING_FACE_HUB_TOKEN`) and anything
    shaped like a token replaced by `<TOKEN>`."""
    known = {*secrets, get_token(), os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")}
    for secret in sorted(known - {None, ""}, key=len, reverse=True):  # longest first: one may contain another
        text = text.replace(secret, MASK)
    return _TOKEN_LIKE.sub(MASK, text)


def one_line(error: BaseException, secrets: tuple[str | None, ...] = ()) -> str:
    """`Type: first line of the message`, tokens masked."""
    lines = str(error).strip().splitlines()
    return mask_tokens(f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": "), secrets)


def without_tokens(args: _Args) -> _Args:
    """A shallow copy of `args` with every `*_token` field set to None, for the pickled `training_args.bin`
    (Trainer pickles the arguments whole; `to_dict`/`to_json_string` mask tokens, pickling does not)."""
    clean = copy.copy(args)  # copy.copy does not rerun __post_init__ (no device set-up, no validation)
    for name in vars(clean):
        if name.endswith("_token"):
            setattr(clean, name, None)
    return clean


__all__ = ["MASK", "mask_tokens", "one_line", "without_tokens"]

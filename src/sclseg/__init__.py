"""sclseg: semi-supervised semantic segmentation with the Structured Consistency Loss (Kim, Jang, Park 2020).

Importing the package registers its model classes with the transformers Auto* factories (so
`AutoModelForSemanticSegmentation.from_pretrained` loads sclseg folders). `SCLTrainer`, `SCLTrainingArguments`
and `EMATeacher` are imported on first use: they pull in transformers' `Trainer` (and accelerate), which loading
a model for inference never needs.

The `sclseg` command skips the registration: its commands import what they use, so `sclseg --help` answers
without loading torch (~4 s of the ~4.5 s a registration costs on a 2-core machine).
"""

import os
import sys
from typing import Any

__version__ = "0.1.0"

_LAZY = {"SCLTrainer": ".trainer", "SCLTrainingArguments": ".training_args", "EMATeacher": ".teacher"}
_MODELS = ("DeepLabV3PlusConfig", "DeepLabV3PlusForSemanticSegmentation", "SCLImageProcessor", "WideResNetBackbone",
           "WideResNetConfig")


def _started_as_the_cli() -> bool:
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in ("sclseg", "sclseg.exe")


if not _started_as_the_cli():
    from .models import (  # noqa: F401 - importing registers the classes
        DeepLabV3PlusConfig,
        DeepLabV3PlusForSemanticSegmentation,
        SCLImageProcessor,
        WideResNetBackbone,
        WideResNetConfig,
    )


def __getattr__(name: str) -> Any:
    """The lazily imported names (PEP 562), and the model classes when the CLI skipped them."""
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    if name in _MODELS:
        return getattr(importlib.import_module(".models", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ["__version__", *_MODELS, *_LAZY]

"""sclseg: semi-supervised semantic segmentation with the Structured Consistency Loss (Kim, Jang, Park 2020).

Importing the package registers its classes with the transformers Auto* factories.
The public API is listed explicitly below (no lazy imports).
"""

__version__ = "0.1.0"

from .models import (
    DeepLabV3PlusConfig,
    DeepLabV3PlusForSemanticSegmentation,
    SCLImageProcessor,
    WideResNetBackbone,
    WideResNetConfig,
)
from .teacher import EMATeacher
from .trainer import SCLTrainer
from .training_args import SCLTrainingArguments

__all__ = [
    "__version__",
    "DeepLabV3PlusConfig",
    "DeepLabV3PlusForSemanticSegmentation",
    "EMATeacher",
    "SCLImageProcessor",
    "SCLTrainer",
    "SCLTrainingArguments",
    "WideResNetBackbone",
    "WideResNetConfig",
]

"""The SCL network (WideResNet38 + DeepLabV3+) as transformers models, registered with the Auto* factories.

`register_for_auto_class` makes `save_pretrained` copy these files next to the weights with an `auto_map`,
so a saved folder or Hub repo also loads with `trust_remote_code=True` where sclseg is not installed.
"""

from transformers import (
    AutoBackbone,
    AutoConfig,
    AutoImageProcessor,
    AutoModelForSemanticSegmentation,
)

from .configuration_deeplabv3plus import CITYSCAPES_CLASSES, DeepLabV3PlusConfig
from .configuration_wide_resnet import WideResNetConfig
from .image_processing_scl import SCLImageProcessor
from .modeling_deeplabv3plus import DeepLabV3PlusForSemanticSegmentation, DeepLabV3PlusPreTrainedModel
from .modeling_wide_resnet import WideResNetBackbone, WideResNetPreTrainedModel

AutoConfig.register(WideResNetConfig.model_type, WideResNetConfig, exist_ok=True)
AutoConfig.register(DeepLabV3PlusConfig.model_type, DeepLabV3PlusConfig, exist_ok=True)
AutoBackbone.register(WideResNetConfig, WideResNetBackbone, exist_ok=True)
AutoModelForSemanticSegmentation.register(DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, exist_ok=True)
AutoImageProcessor.register(DeepLabV3PlusConfig, slow_image_processor_class=SCLImageProcessor, exist_ok=True)

WideResNetConfig.register_for_auto_class()
DeepLabV3PlusConfig.register_for_auto_class()
WideResNetBackbone.register_for_auto_class("AutoBackbone")
DeepLabV3PlusForSemanticSegmentation.register_for_auto_class("AutoModelForSemanticSegmentation")
SCLImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "CITYSCAPES_CLASSES",
    "DeepLabV3PlusConfig",
    "DeepLabV3PlusForSemanticSegmentation",
    "DeepLabV3PlusPreTrainedModel",
    "SCLImageProcessor",
    "WideResNetBackbone",
    "WideResNetConfig",
    "WideResNetPreTrainedModel",
]

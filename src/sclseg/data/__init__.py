"""Data: the Cityscapes label table, loaders, transforms, sampling, unlabeled streams, the synthetic default."""

from .cityscapes import (
    CityscapesDataset, CityscapesItem, CityscapesLayout, find_cityscapes_root, list_split, read_image, read_label,
)
from .labels import CLASS_NAMES, ID2LABEL, IGNORE_INDEX, LABEL2ID, NUM_CLASSES, PALETTE
from .packing import PackResult, pack_image_folder
from .sampling import (
    COARSE_BOOST_CLASSES, ClassUniformDataset, EpochShuffleSampler, SampleKey, image_centroids, load_centroids,
)
from .splits import (
    SemiSupervisedSplit, labeled_count, make_semi_supervised_split, read_id_list, select_items, write_id_list,
)
from .synthetic import ensure_synthetic_cityscapes, make_synthetic_cityscapes
from .transforms import IMAGENET_MEAN, IMAGENET_STD, EvalTransform, TrainTransform
from .unlabeled import UnlabeledPairStream, load_unlabeled

__all__ = ["CLASS_NAMES", "ID2LABEL", "IGNORE_INDEX", "LABEL2ID", "NUM_CLASSES", "PALETTE"]
__all__ += ["PackResult", "pack_image_folder", "COARSE_BOOST_CLASSES", "ClassUniformDataset", "EpochShuffleSampler",
            "SampleKey", "image_centroids",
            "load_centroids", "IMAGENET_MEAN", "IMAGENET_STD", "EvalTransform", "TrainTransform",
            "UnlabeledPairStream", "load_unlabeled"]
__all__ += ["CityscapesDataset", "CityscapesItem", "CityscapesLayout", "find_cityscapes_root", "list_split",
            "read_image", "read_label", "SemiSupervisedSplit", "labeled_count", "make_semi_supervised_split",
            "read_id_list", "select_items", "write_id_list", "ensure_synthetic_cityscapes",
            "make_synthetic_cityscapes"]

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor, pipeline
from transformers.modeling_outputs import SemanticSegmenterOutput

from sclseg import DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _image(h=45, w=61, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_normalises_at_full_resolution():
    image = _image()
    out = SCLImageProcessor()(Image.fromarray(image), return_tensors="pt")
    assert out["pixel_values"].shape == (1, 3, 45, 61) and out["pixel_values"].dtype == torch.float32
    expected = (image / 255.0 - MEAN) / STD
    np.testing.assert_allclose(out["pixel_values"][0].permute(1, 2, 0).numpy(), expected, atol=1e-5)


def test_greyscale_and_rgba_become_rgb():
    grey = Image.fromarray(_image()[..., 0])
    rgba = Image.fromarray(np.dstack([_image(), np.full((45, 61), 255, np.uint8)]))
    for image in (grey, rgba):
        assert SCLImageProcessor()(image, return_tensors="pt")["pixel_values"].shape == (1, 3, 45, 61)


def test_segmentation_maps_to_int64_and_label_id_conversion():
    label_ids = np.array([[7, 26, 0, 33], [1, 24, 23, 11]], dtype=np.uint8)
    image = _image(2, 4)
    processor = SCLImageProcessor()
    raw = processor(image, segmentation_maps=label_ids, return_tensors="pt")["labels"]
    assert raw.dtype == torch.int64 and raw.tolist() == [label_ids.tolist()]
    train = processor(image, segmentation_maps=label_ids, return_tensors="pt", do_convert_label_ids=True)["labels"]
    assert train.tolist() == [[[0, 13, 255, 18], [255, 11, 10, 2]]]


def test_segmentation_map_size_mismatch_is_an_error():
    with pytest.raises(ValueError, match=r"segmentation map 0 has size \(44, 61\)"):
        SCLImageProcessor()(_image(), segmentation_maps=np.zeros((44, 61), np.uint8))


def test_post_process_resizes_and_argmaxes():
    logits = torch.zeros(2, 3, 4, 6)
    logits[0, 2] = 1.0
    logits[1, 1, :, :3] = 1.0
    maps = SCLImageProcessor().post_process_semantic_segmentation(
        SemanticSegmenterOutput(logits=logits), target_sizes=[(8, 12), (4, 6)]
    )
    assert maps[0].shape == (8, 12) and torch.all(maps[0] == 2)
    assert maps[1].tolist() == [[1, 1, 1, 0, 0, 0]] * 4
    with pytest.raises(ValueError, match="target sizes"):
        SCLImageProcessor().post_process_semantic_segmentation(SemanticSegmenterOutput(logits=logits), [(8, 12)])


def test_round_trip_and_auto_loading(tmp_path, tiny_config):
    DeepLabV3PlusForSemanticSegmentation(tiny_config).save_pretrained(tmp_path)
    SCLImageProcessor(do_convert_label_ids=True).save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is SCLImageProcessor and loaded.do_convert_label_ids is True


def test_pipeline_from_saved_folder(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = DeepLabV3PlusForSemanticSegmentation(tiny_config).eval()
    model.save_pretrained(tmp_path)
    SCLImageProcessor().save_pretrained(tmp_path)
    segmenter = pipeline("image-segmentation", model=str(tmp_path))
    image = Image.fromarray(_image())
    results = segmenter(image)
    # The pipeline's masks are exactly the model's argmax, one per class present.
    pixel_values = SCLImageProcessor()(image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        argmax = model(pixel_values).logits[0].argmax(0).numpy()
    assert {r["label"] for r in results} == {tiny_config.id2label[int(c)] for c in np.unique(argmax)}
    for r in results:
        class_id = tiny_config.label2id[r["label"]]
        np.testing.assert_array_equal(np.array(r["mask"]) > 0, argmax == class_id)

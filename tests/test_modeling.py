import collections

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoBackbone, AutoConfig, AutoModelForSemanticSegmentation, ResNetConfig

from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, WideResNetBackbone, WideResNetConfig
from tests.nvidia_reference import read_manifest


def _model(config, seed=0):
    torch.manual_seed(seed)
    return DeepLabV3PlusForSemanticSegmentation(config).eval()


def test_full_size_matches_nvidia_manifest():
    # The full model on the meta device: shapes and counts without allocating 550 MB.
    with torch.device("meta"):
        model = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig())
        backbone = WideResNetBackbone(WideResNetConfig())
    manifest = read_manifest()
    assert sum(p.numel() for p in model.parameters()) == 137_103_936
    assert sum(p.numel() for p in backbone.parameters()) == 105_062_720
    ours = collections.Counter((tuple(t.shape), str(t.dtype).removeprefix("torch."))
                               for t in model.state_dict().values())
    ref = collections.Counter((shape, dtype) for _, shape, dtype in manifest)
    assert ours == ref
    assert len(model.state_dict()) == len(manifest) == 268


def test_default_config_is_cityscapes():
    config = DeepLabV3PlusConfig()
    assert config.num_labels == 19 and config.id2label[0] == "road" and config.label2id["bicycle"] == 18
    assert config.backbone_config.out_features == ["stage1", "stage6"]
    assert config.aspp_rates == [12, 24, 36] and config.semantic_loss_ignore_index == 255


@pytest.mark.parametrize("size", [(45, 61), (32, 32), (17, 90)])
def test_logits_at_input_size(tiny_config, size):
    model = _model(tiny_config)
    out = model(torch.randn(2, 3, *size))
    assert out.logits.shape == (2, 19, *size)
    assert out.loss is None


def test_output_strides_of_backbone(tiny_config):
    backbone = WideResNetBackbone(tiny_config.backbone_config).eval()
    out = backbone(torch.randn(1, 3, 64, 96), output_hidden_states=True)
    sizes = [tuple(h.shape[-2:]) for h in out.hidden_states]
    # stem s1, stage1 s2 (pool2), stage2 s4 (pool3), stage3 s8 (strided block), stages 4-6 dilated s8
    assert sizes == [(64, 96), (32, 48), (16, 24), (8, 12), (8, 12), (8, 12), (8, 12)]
    assert [f.shape[1] for f in out.feature_maps] == [4, 32]


def test_loss_is_cross_entropy_ignoring_255(tiny_config):
    model = _model(tiny_config)
    pixels = torch.randn(2, 3, 45, 61)
    labels = torch.randint(0, 19, (2, 45, 61))
    labels[0, :10] = 255
    out = model(pixels, labels=labels)
    valid = labels != 255
    manual = F.cross_entropy(out.logits.permute(0, 2, 3, 1)[valid], labels[valid])
    torch.testing.assert_close(out.loss, manual)
    # Changing the logits' targets only where labels are 255 leaves the loss unchanged.
    labels2 = labels.clone()
    labels2[0, :10] = 255
    assert model(pixels, labels=labels2).loss == out.loss


def test_tuple_output_and_hidden_states(tiny_config):
    model = _model(tiny_config)
    pixels, labels = torch.randn(1, 3, 33, 47), torch.randint(0, 19, (1, 33, 47))
    loss, logits, hidden = model(pixels, labels=labels, output_hidden_states=True, return_dict=False)
    assert loss.ndim == 0 and logits.shape == (1, 19, 33, 47) and len(hidden) == 7


def test_save_load_round_trip_is_bit_exact(tiny_config, tmp_path):
    model = _model(tiny_config)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSemanticSegmentation.from_pretrained(tmp_path).eval()
    assert type(loaded) is DeepLabV3PlusForSemanticSegmentation
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b), k
    x = torch.randn(1, 3, 45, 61)
    assert torch.equal(model(x).logits, loaded(x).logits)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, DeepLabV3PlusConfig) and isinstance(config.backbone_config, WideResNetConfig)


def test_auto_backbone(tiny_config, tmp_path):
    backbone = AutoBackbone.from_config(tiny_config.backbone_config)
    assert isinstance(backbone, WideResNetBackbone)
    assert backbone.channels == [4, 32]


def test_bf16_autocast_and_channels_last(tiny_config):
    model = _model(tiny_config)
    x = torch.randn(2, 3, 45, 61)
    reference = model(x).logits
    cl_model = _model(tiny_config).to(memory_format=torch.channels_last)
    cl = cl_model(x.contiguous(memory_format=torch.channels_last)).logits
    torch.testing.assert_close(cl, reference, rtol=1e-4, atol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = model(x).logits
    assert bf.shape == reference.shape and torch.isfinite(bf).all()
    # bf16 keeps ~3 significant digits: the prediction agrees almost everywhere.
    assert (bf.float().argmax(1) == reference.argmax(1)).float().mean() > 0.9
    assert (bf.float() - reference).abs().max() < 0.1 * reference.abs().max()


def test_other_backbone_resnet():
    backbone_config = ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1], layer_type="basic",
        out_features=["stage1", "stage4"],
    )
    config = DeepLabV3PlusConfig(
        backbone_config=backbone_config, aspp_channels=8, aspp_rates=[1, 2, 3], low_level_channels=4,
        decoder_channels=8, num_labels=5,
    )
    model = _model(config)
    out = model(torch.randn(2, 3, 45, 61), labels=torch.randint(0, 5, (2, 45, 61)))
    assert out.logits.shape == (2, 5, 45, 61) and torch.isfinite(out.loss)
    round_trip = DeepLabV3PlusConfig.from_dict(config.to_dict())
    assert isinstance(round_trip.backbone_config, ResNetConfig)


def test_backbone_needs_two_feature_maps():
    with pytest.raises(ValueError, match="exactly two backbone feature maps"):
        DeepLabV3PlusConfig(backbone_config=WideResNetConfig(out_features=["stage6"]))


def test_decoder_init_is_kaiming_fan_in(tiny_config):
    model = _model(tiny_config)
    w = model.decoder.fuse1.conv.weight
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    # Kaiming normal with ReLU gain: std = sqrt(2 / fan_in); 288 × 108 draws pin it to a few percent.
    assert abs(w.std().item() / (2 / fan_in) ** 0.5 - 1) < 0.1
    assert torch.all(model.decoder.fuse1.norm.weight == 1) and torch.all(model.decoder.fuse1.norm.bias == 0)


@pytest.mark.parametrize(
    "shape, match",
    [((3, 45, 61), r"\(batch, 3, height, width\)"), ((1, 4, 45, 61), r"\(batch, 3, height, width\)")],
)
def test_bad_pixel_values(tiny_config, shape, match):
    with pytest.raises(ValueError, match=match):
        _model(tiny_config)(torch.randn(*shape))


def test_bad_labels(tiny_config):
    model = _model(tiny_config)
    with pytest.raises(ValueError, match="labels.*must be"):
        model(torch.randn(1, 3, 45, 61), labels=torch.zeros(1, 44, 61, dtype=torch.long))
    with pytest.raises(ValueError, match="int64"):
        model(torch.randn(1, 3, 45, 61), labels=torch.zeros(1, 45, 61, dtype=torch.int32))


def test_wide_resnet_config_validation():
    with pytest.raises(ValueError, match="stage_strides"):
        WideResNetConfig(depths=[1, 1], stage_channels=[[4, 4], [4, 4]])
    with pytest.raises(ValueError, match=r"stage_channels\[0\]"):
        WideResNetConfig(stage_channels=[[4], [4, 4], [4, 4], [4, 4], [4, 4, 4], [4, 4, 4]])

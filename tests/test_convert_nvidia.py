import numpy as np
import pytest
import torch

from sclseg import DeepLabV3PlusConfig, DeepLabV3PlusForSemanticSegmentation, WideResNetBackbone
from sclseg.cli import main as cli_main
from sclseg.models.convert_nvidia import (
    CheckpointError,
    convert_deepwv3plus,
    convert_wider_resnet38,
    nvidia_backbone_key,
    nvidia_key,
)
from tests.nvidia_reference import REFERENCE_LOGITS, nvidia_state_dict, read_manifest, save_nvidia_checkpoint


@pytest.fixture(scope="module")
def seed1_state():
    return nvidia_state_dict(seed=1)


@pytest.fixture(scope="module")
def seed1_checkpoint(tmp_path_factory, seed1_state):
    return save_nvidia_checkpoint(tmp_path_factory.mktemp("nv") / "deepwv3plus_seed1.pth", seed1_state)


@pytest.fixture(scope="module")
def converted(seed1_checkpoint):
    return convert_deepwv3plus(seed1_checkpoint)


def test_every_manifest_tensor_maps_to_exactly_one_of_ours():
    names = [name for name, _, _ in read_manifest()]
    mapped = [nvidia_key(n) for n in names]
    assert len(set(mapped)) == len(names) == 268
    with torch.device("meta"):
        ours = DeepLabV3PlusForSemanticSegmentation(DeepLabV3PlusConfig()).state_dict()
    assert set(mapped) == set(ours)
    shapes = {name: shape for name, shape, _ in read_manifest()}
    for name, target in zip(names, mapped):
        assert tuple(ours[target].shape) == shapes[name], name


def test_spot_renames():
    assert nvidia_key("mod1.conv1.weight") == "backbone.stem.weight"
    assert nvidia_key("mod7.block1.convs.bn3.0.running_var") == "backbone.stages.5.blocks.0.norm3.0.running_var"
    assert nvidia_key("mod2.block1.proj_conv.weight") == "backbone.stages.0.blocks.0.shortcut.weight"
    assert nvidia_key("aspp.img_conv.1.bias") == "aspp.image_pooling.norm.bias"
    assert nvidia_key("aspp.features.3.0.weight") == "aspp.branches.3.conv.weight"
    assert nvidia_key("final.6.weight") == "decoder.classifier.weight"
    assert nvidia_key("bot_fine.weight") == "decoder.low_level_project.weight"
    for bad in ("mod1.block1.bn1.0.weight", "aspp.features.4.2.weight", "final.2.weight", "classifier.fc.weight"):
        with pytest.raises(KeyError):
            nvidia_key(bad)


def test_every_value_is_found_in_the_converted_model(converted, seed1_state):
    source = seed1_state
    ours = converted.state_dict()
    for name, value in source.items():
        assert torch.equal(ours[nvidia_key(name)], value), name


def test_converted_model_reproduces_nvidia_logits(converted):
    reference = np.load(REFERENCE_LOGITS)
    with torch.no_grad():
        for k in (7, 8):
            logits = converted(torch.from_numpy(reference[f"input_{k}"])).logits.numpy()
            # NVIDIA's own code, same weights: agreement to float32 round-off (measured 5e-6; a wrong concat
            # order, align_corners or padding gives errors of 0.1-1).
            np.testing.assert_allclose(logits, reference[f"logits_{k}"], atol=5e-5, rtol=0)


def test_bare_state_dict_without_module_prefix(tmp_path, seed1_state):
    path = save_nvidia_checkpoint(tmp_path / "bare.pth", seed1_state, wrap=False)
    model = convert_deepwv3plus(path)
    assert torch.equal(model.decoder.classifier.weight, seed1_state["final.6.weight"])
    assert not any(p.is_meta for p in model.parameters()) and all(p.requires_grad for p in model.parameters())


def _backbone_state(full_state):
    state = {k: v for k, v in full_state.items() if k.startswith("mod")}
    state["bn_out.weight"] = torch.ones(4096)
    state["classifier.fc.weight"] = torch.zeros(1000, 4096)
    return state


def test_backbone_only_drops_imagenet_head(tmp_path, seed1_state):
    state = _backbone_state(seed1_state)
    path = save_nvidia_checkpoint(tmp_path / "wider_resnet38.pth.tar", state)
    backbone = convert_wider_resnet38(path)
    assert isinstance(backbone, WideResNetBackbone)
    ours = backbone.state_dict()
    assert len(ours) == len([k for k in state if k.startswith("mod")])
    for name, value in state.items():
        if name.startswith("mod"):
            assert torch.equal(ours[nvidia_backbone_key(name)], value)


def test_wrong_number_of_classes_suggests_num_labels(tmp_path, seed1_state):
    state = dict(seed1_state)
    state["final.6.weight"] = state["final.6.weight"][:11]
    path = save_nvidia_checkpoint(tmp_path / "c11.pth", state)
    with pytest.raises(CheckpointError, match="11 classes.*--num-labels 11"):
        convert_deepwv3plus(path)
    model = convert_deepwv3plus(path, DeepLabV3PlusConfig(num_labels=11))
    assert model.config.num_labels == 11


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda s: s.pop("mod4.block3.convs.conv2.weight"),
         r"missing tensors \['backbone.stages.2.blocks.2.conv2.weight'\]"),
        (lambda s: s.__setitem__("final.9.weight", torch.zeros(1)), "unexpected tensor 'final.9.weight'"),
        (lambda s: s.__setitem__("bot_fine.weight", torch.zeros(48, 64, 1, 1)),
         r"'decoder.low_level_project.weight' has shape \(48, 64, 1, 1\) and dtype"),
    ],
)
def test_bad_keys_are_named(tmp_path, seed1_state, edit, match):
    state = dict(seed1_state)
    edit(state)
    path = save_nvidia_checkpoint(tmp_path / "bad.pth", state)
    with pytest.raises(CheckpointError, match=match):
        convert_deepwv3plus(path)


def test_non_checkpoint_file_is_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth is not a PyTorch checkpoint"):
        convert_deepwv3plus(text)
    empty = tmp_path / "empty.pth"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(CheckpointError, match="no state dict"):
        convert_deepwv3plus(empty)


class _Payload:
    """A pickled object: loading it would need code execution."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_needing_code_execution_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"mod1.conv1.weight": torch.zeros(1)}, "payload": _Payload()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        convert_deepwv3plus(path)
    assert "this must never run" not in capsys.readouterr().out


def test_cli_convert_writes_a_loadable_folder(seed1_checkpoint, tmp_path, capsys):
    out = tmp_path / "converted"
    assert cli_main(["convert-nvidia", str(seed1_checkpoint), str(out)]) == 0
    assert "137,103,936 parameters" in capsys.readouterr().out
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in out.iterdir()}
    from transformers import AutoModelForSemanticSegmentation

    model = AutoModelForSemanticSegmentation.from_pretrained(out).eval()
    reference = np.load(REFERENCE_LOGITS)
    with torch.no_grad():
        logits = model(torch.from_numpy(reference["input_7"])).logits.numpy()
    np.testing.assert_allclose(logits, reference["logits_7"], atol=5e-5, rtol=0)


def test_cli_errors(tmp_path, seed1_checkpoint):
    with pytest.raises(SystemExit, match="pass --num-labels 19"):
        cli_main(["convert-nvidia", str(seed1_checkpoint), str(tmp_path / "o"), "--num-labels", "20"])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        cli_main(["convert-nvidia", str(tmp_path / "missing.pth"), str(tmp_path / "o")])

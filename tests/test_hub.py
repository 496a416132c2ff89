"""Sharing on the Hub through the local Hub server (tests/hub_server.py): `sclseg push`, loading at a branch, a tag
and main with and without the package, `pipeline()` from a repo id, the card's `model-index`, unlabeled shards
pushed by `sclseg pack-unlabeled --push-to-hub` and streamed back with Range requests. The real huggingface_hub,
transformers and datasets clients run in subprocesses (see hub_server.run_hub_client); tokens never leak."""

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from hub_server import FAKE_TOKEN, python_client, run_hub_client
from sclseg import DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor
from sclseg.cli import main as cli_main
from sclseg.model_card import update_model_card_results

# Pushes, then loads in the same client process (one interpreter start-up less: they take most of the time).
_PUSH_AND_LOAD = """
import json, sys, torch
from PIL import Image
from huggingface_hub import ModelCard, hf_hub_download
from transformers import AutoModelForSemanticSegmentation, pipeline
from sclseg.cli import main  # importing sclseg registers the model classes
a, b, summary, x, image = sys.argv[1:6]
main(["push", a, "user/tiny", "--revision", "dev", "--tag", "v1", "--private", "--json", summary])
main(["push", b, "user/tiny", "--commit-message", "second model"])
try:
    main(["push", b, "user/broken"])
except SystemExit as error:
    print("failed cleanly:", error)
x = torch.load(x, weights_only=True)
out = {}
for revision in ("dev", "v1", "main"):
    model = AutoModelForSemanticSegmentation.from_pretrained("user/tiny", revision=revision).eval()
    with torch.no_grad():
        out[revision] = model(x).logits.flatten()[:40].tolist()
segments = pipeline("image-segmentation", model="user/tiny", revision="v1")(Image.open(image))
out["labels"] = sorted(s["label"] for s in segments)
card = ModelCard.load(hf_hub_download("user/tiny", "README.md", revision="v1"))
out["miou"] = card.data.eval_results[0].metric_value
print(json.dumps(out))
"""

_LOAD_WITHOUT_PACKAGE = """
import sys
sys.modules["sclseg"] = None  # importing sclseg now raises ImportError: the package is "not installed"
import json, torch
from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation
x = torch.load(sys.argv[1], weights_only=True)
model = AutoModelForSemanticSegmentation.from_pretrained("user/tiny", revision="v1", trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained("user/tiny", revision="v1", trust_remote_code=True)
with torch.no_grad():
    logits = model(x).logits.flatten()[:40].tolist()
print(json.dumps({"module": type(model).__module__, "processor": type(processor).__name__, "logits": logits}))
"""


def _save_model(folder, config, seed):
    torch.manual_seed(seed)
    model = DeepLabV3PlusForSemanticSegmentation(config).eval()
    model.save_pretrained(folder)
    SCLImageProcessor().save_pretrained(folder)
    return model


def _last_json(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_no_token(local_hub, *results):
    assert f"Bearer {FAKE_TOKEN}" in local_hub.authorization  # the clients did authenticate...
    for result in results:  # ...but never printed the token
        assert FAKE_TOKEN not in result.stdout + result.stderr
    for blob in local_hub.store.blob_dir.iterdir():  # nor uploaded it
        assert FAKE_TOKEN.encode() not in blob.read_bytes()


def test_push_then_load_at_branch_tag_and_main(local_hub, tmp_path, tiny_config):
    first, second = tmp_path / "first", tmp_path / "second"
    model_a, model_b = _save_model(first, tiny_config, 0), _save_model(second, tiny_config, 1)
    update_model_card_results(first, {"mean_iou": 0.4321, "per_class_iou": {"road": 0.9}}, dataset_name="Cityscapes",
                              split="val", inference_mode="whole image")
    (first / "training_args.bin").write_bytes(pickle.dumps({"pickled": True}))  # never pushed
    (first / "checkpoint-2").mkdir()
    (first / "checkpoint-2" / "model.safetensors").write_bytes(b"training state")  # never pushed
    x = torch.rand(1, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)).save(tmp_path / "i.png")
    local_hub.fail_next(1, status=403, match="user/broken/commit")  # the third push is refused
    push = run_hub_client(python_client(_PUSH_AND_LOAD, first, second, tmp_path / "push.json", tmp_path / "x.pt",
                                        tmp_path / "i.png"), endpoint=local_hub.url, hf_home=tmp_path / "home")
    assert push.returncode == 0, push.stderr[-3000:]
    assert "left out (pickles / training state): checkpoint-2/model.safetensors, training_args.bin" in push.stdout
    assert "/user/tiny/tree/dev (commit" in push.stdout and "failed cleanly: push:" in push.stdout
    summary = json.loads((tmp_path / "push.json").read_text())
    repo = local_hub.repo("user/tiny")
    assert repo.private and repo.tags == {"v1": summary["commit"]} and repo.branches["dev"] == summary["commit"]
    assert set(repo.head("dev").files) == {".gitattributes", "README.md", "config.json", "model.safetensors",
                                           "preprocessor_config.json"} | {p.name for p in first.glob("*.py")}
    assert repo.head("main").files["model.safetensors"].lfs

    without = run_hub_client(python_client(_LOAD_WITHOUT_PACKAGE, tmp_path / "x.pt"), endpoint=local_hub.url,
                             hf_home=tmp_path / "fresh-home", cwd=tmp_path)
    loaded, remote = _last_json(push), _last_json(without)
    with torch.no_grad():
        expected_a, expected_b = (m(x).logits.flatten()[:40].numpy() for m in (model_a, model_b))
    for revision, expected in (("dev", expected_a), ("v1", expected_a), ("main", expected_b)):
        np.testing.assert_allclose(loaded[revision], expected, atol=1e-6, err_msg=revision)
    assert loaded["labels"] and set(loaded["labels"]) <= set(tiny_config.id2label.values())
    assert loaded["miou"] == pytest.approx(0.4321)
    assert remote["module"].startswith("transformers_modules.") and remote["processor"] == "SCLImageProcessor"
    np.testing.assert_allclose(remote["logits"], expected_a, atol=1e-6)
    _assert_no_token(local_hub, push, without)


def test_push_refuses_a_folder_without_safetensors(tmp_path, tiny_config):
    folder = tmp_path / "pickled"
    _save_model(folder, tiny_config, 0)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(SystemExit, match="no \\*.safetensors weights.*pytorch_model.bin.*never pushed"):
        cli_main(["push", str(folder), "user/x"])
    with pytest.raises(SystemExit, match="no config.json"):
        cli_main(["push", str(tmp_path), "user/x"])


_PACK_AND_STREAM = """
import json, sys, torch
from sclseg.cli import main
from sclseg.data.unlabeled import UnlabeledPairStream, load_unlabeled

images, out = sys.argv[1:3]
main(["pack-unlabeled", images, out + "/first", "--num-shards", "2", "--push-to-hub", "user/extra"])
main(["pack-unlabeled", images, out + "/second", "--num-shards", "3", "--push-to-hub", "user/extra"])  # replaces

def keep_pixels(image, label, *, generator=None, center=None):
    return torch.from_numpy(image).permute(2, 0, 1).float(), None

stream = UnlabeledPairStream(load_unlabeled("user/extra"), keep_pixels, max_epochs=1, shuffle_buffer=4)
print(json.dumps(sorted(int(pair["pixel_values_a"][0, 0, 0]) for pair in stream)))
"""


def test_unlabeled_shards_pushed_then_streamed(local_hub, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(7):
        Image.fromarray(np.full((12, 16, 3), 30 * i, np.uint8)).save(images / f"frame_{i}.png")
    result = run_hub_client(python_client(_PACK_AND_STREAM, images, tmp_path), endpoint=local_hub.url,
                            hf_home=tmp_path / "home")
    assert _last_json(result) == [30 * i for i in range(7)]  # every image once, from the 3 shards of the re-pack
    assert "train from them with --unlabeled_source user/extra" in result.stdout
    files = set(local_hub.repo("user/extra", "dataset").head().files)
    assert files == {".gitattributes", "README.md"} | {f"data/train-0000{i}-of-00003.parquet" for i in range(3)}
    ranged = [s for m, p, s in local_hub.requests if m == "GET" and p.endswith(".parquet")]
    assert ranged and set(ranged) == {206}  # datasets streams the shards with Range requests
    _assert_no_token(local_hub, result)

"""A saved folder loads with `trust_remote_code=True` where sclseg cannot be imported."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch

from sclseg import DeepLabV3PlusForSemanticSegmentation, SCLImageProcessor

_CHILD = textwrap.dedent(
    """
    import sys
    sys.modules["sclseg"] = None  # importing sclseg now raises ImportError: the package is "not installed"
    import json, numpy as np, torch
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForSemanticSegmentation, pipeline
    folder, image_path = sys.argv[1], sys.argv[2]
    model = AutoModelForSemanticSegmentation.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    image = Image.open(image_path)
    with torch.no_grad():
        logits = model(**processor(image, return_tensors="pt")).logits
    segments = pipeline("image-segmentation", model=folder, trust_remote_code=True)(image)
    print(json.dumps({"model_module": type(model).__module__, "logits": logits.flatten()[:50].tolist(),
                      "labels": sorted(s["label"] for s in segments)}))
    """
)


def test_trust_remote_code_without_the_package(tmp_path, tiny_config):
    torch.manual_seed(0)
    model = DeepLabV3PlusForSemanticSegmentation(tiny_config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    SCLImageProcessor().save_pretrained(folder)
    image = np.random.default_rng(0).integers(0, 256, (45, 61, 3), dtype=np.uint8)
    from PIL import Image

    Image.fromarray(image).save(tmp_path / "image.png")
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(tmp_path / "image.png")],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=300, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["model_module"].startswith("transformers_modules.")
    with torch.no_grad():
        pixel_values = SCLImageProcessor()(image, return_tensors="pt")["pixel_values"]
        expected = model(pixel_values).logits
    np.testing.assert_allclose(out["logits"], expected.flatten()[:50].numpy(), atol=1e-6)
    present = expected[0].argmax(0).unique().tolist()
    assert out["labels"] == sorted(tiny_config.id2label[c] for c in present)

"""Shared test settings: deterministic, offline, small."""

import os

import torch

# Tests never reach a hub; the Hub tests start their own local server and set HF_ENDPOINT themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

# One intra-op thread per test process: the tests use small tensors, for which OpenMP start-up per op costs more
# than the work (2x slower on a shared 2-core machine); pytest-xdist runs one process per core instead.
torch.set_num_threads(1)

import pytest  # noqa: E402
from hub_server import hub_url, local_hub  # noqa: E402, F401 - fixtures for every test module


def tiny_wide_resnet_kwargs() -> dict:
    """A WideResNet with the real topology (6 stages, basic + bottleneck blocks, pooling, dilation) but 4–32
    channels: ~20k parameters, milliseconds per forward."""
    return dict(
        stem_channels=4,
        depths=[1, 2, 1, 1, 1, 1],
        stage_channels=[[4, 4], [4, 8], [8, 8], [8, 16], [8, 8, 16], [8, 16, 32]],
    )


@pytest.fixture
def tiny_config():
    from sclseg import DeepLabV3PlusConfig, WideResNetConfig

    return DeepLabV3PlusConfig(
        backbone_config=WideResNetConfig(**tiny_wide_resnet_kwargs()),
        aspp_channels=8,
        aspp_rates=[1, 2, 3],
        low_level_channels=4,
        decoder_channels=8,
    )

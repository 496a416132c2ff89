"""Shared test settings: deterministic, offline, small."""

import os

# Tests never reach a hub; the Hub tests start their own local server and set HF_ENDPOINT themselves.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")

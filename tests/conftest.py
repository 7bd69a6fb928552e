"""Shared fixtures: tiny VLMs of every supported family, built once per test session."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cagul.demo.tiny import build_tiny_vlm
from cagul.models import FAMILIES, load_vlm

# Mllama gets 4 self-attention layers so it has two cross-attention layers (1 and 3),
# enough to check that each cross-attention layer takes its own token set.
_LAYERS = {"qwen2_5_vl": 2, "llava": 2, "mllama": 4}


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {
        fam: str(build_tiny_vlm(fam, root / fam, layers=_LAYERS[fam], seed=0)) for fam in FAMILIES
    }


@pytest.fixture(scope="session")
def tiny_vlms(tiny_dirs):
    return {fam: load_vlm(path, device="cpu") for fam, path in tiny_dirs.items()}


@pytest.fixture(params=sorted(FAMILIES))
def family(request) -> str:
    return request.param


@pytest.fixture
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    # Different sizes on purpose: every family must resize to its own geometry.
    return [
        Image.fromarray((rng.random((130, 100, 3)) * 255).astype("uint8")),
        Image.fromarray((rng.random((90, 160, 3)) * 255).astype("uint8")),
    ]

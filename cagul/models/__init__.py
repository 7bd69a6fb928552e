"""Load a VLM of a supported family from a local directory.

`load_vlm(path)` reads `config.json`, picks the family wrapper by `model_type`, and loads the
model through `AutoModelForImageTextToText`, the tokenizer through `AutoTokenizer` and the
image processor through `AutoImageProcessor` (the PIL backend when torchvision is absent).
Nothing is ever downloaded: the path must be a local directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .base import (
    VLM,
    AttentionUnavailableError,
    Batch,
    ImageLayout,
    InputError,
    TokenReplacement,
    UnsupportedModelError,
    VLMError,
    sequence_nll,
)
from .llava import Llava
from .mllama import Mllama
from .qwen2_5_vl import QwenVL

FAMILIES: dict[str, type[VLM]] = {"qwen2_5_vl": QwenVL, "mllama": Mllama, "llava": Llava}
SUPPORTED = "Qwen2.5-VL (qwen2_5_vl), Llama-3.2-Vision (mllama), LLaVA-1.5 (llava)"

__all__ = [
    "FAMILIES",
    "SUPPORTED",
    "VLM",
    "AttentionUnavailableError",
    "Batch",
    "ImageLayout",
    "InputError",
    "TokenReplacement",
    "UnsupportedModelError",
    "VLMError",
    "detect_family",
    "load_vlm",
    "sequence_nll",
]


def detect_family(path: str | Path) -> str:
    """The family key of the checkpoint at `path`, or UnsupportedModelError saying why not."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not path.is_dir():
        raise UnsupportedModelError(f"{path} is not a directory; expected a local VLM checkpoint")
    if not cfg_file.is_file():
        raise UnsupportedModelError(f"{path} has no config.json; it is not a transformers model")
    try:
        model_type = json.loads(cfg_file.read_text()).get("model_type")
    except json.JSONDecodeError as e:
        raise UnsupportedModelError(f"{cfg_file} is not valid JSON: {e}") from e
    if model_type not in FAMILIES:
        raise UnsupportedModelError(
            f"{path} holds a {model_type!r} model; supported families: {SUPPORTED}"
        )
    return model_type


def _chat_template(path: Path, tokenizer) -> str:
    if tokenizer.chat_template:
        return tokenizer.chat_template
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text())["chat_template"]
    raise UnsupportedModelError(f"{path} has no chat template (tokenizer or chat_template.*)")


def load_vlm(
    path: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> VLM:
    """Load the frozen VLM at `path` (a local directory) with its family wrapper."""
    from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer
    from transformers.utils import is_torchvision_available

    path = Path(path)
    family = detect_family(path)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(
        path, dtype=dtype, local_files_only=True, attn_implementation="sdpa"
    ).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    backend = None if is_torchvision_available() else "pil"
    image_processor = AutoImageProcessor.from_pretrained(
        path, local_files_only=True, backend=backend
    )
    return FAMILIES[family](
        path, model, tokenizer, image_processor, _chat_template(path, tokenizer)
    )

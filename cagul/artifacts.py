"""What every method's artifact directory is, whatever the method: its two files, the base
model's fingerprint it is bound to, the sha256 of its weights, and the errors when one cannot
be used. `adapter_config.json` records the method's name, the base fingerprint, the weights'
sha256 and the method's own fields; `adapter_model.safetensors` holds the weights.
`write_artifact` adds the integrity fields, `read_artifact` refuses an artifact over another
base model or with altered files. CAGUL's adapter (`cagul.methods.cagul.adapter`), the LoRA
baselines and Retrain all read and write through here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from cagul.models import VLM

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


class ArtifactError(ValueError):
    """An artifact directory cannot be used (missing files, bad JSON, wrong method)."""


class ArtifactMismatchError(ArtifactError):
    """The artifact was trained on another base model (or another family)."""


class ArtifactTamperedError(ArtifactError):
    """The artifact's files do not match what was saved (hash or tensor shapes differ)."""


def _strip(cfg: dict) -> dict:
    """A model config without what varies between loads of the same weights."""
    volatile = {
        "_name_or_path",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "_attn_implementation",
        "attn_implementation",
        "_attn_implementation_internal",
        "_commit_hash",
        "use_cache",
        "output_attentions",
    }
    return {
        k: _strip(v) if isinstance(v, dict) else v
        for k, v in sorted(cfg.items())
        if k not in volatile
    }


def base_fingerprint(vlm: VLM) -> str:
    """sha256 over the family, the model config and a weights digest.

    The digest takes, for every parameter in name order, its name, shape and 1024 evenly spaced
    values rounded to fp16: cheap on a 7B model (no full pass over 15 GB), the same whether the
    checkpoint is loaded in fp16 or fp32, and different after any fine-tuning step.
    """
    h = hashlib.sha256()
    h.update(vlm.family.encode())
    h.update(json.dumps(_strip(vlm.model.config.to_dict()), sort_keys=True, default=str).encode())
    for name, p in sorted(vlm.model.state_dict().items()):
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 1024)
        sample = flat[::step][:1024].to("cpu", torch.float16)
        h.update(f"{name}:{tuple(p.shape)}".encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()


def read_artifact_config(
    directory: Path, method: str, error: type[ArtifactError] = ArtifactError
) -> tuple[dict, Path]:
    """The `adapter_config.json` of an artifact of `method` in `directory`, and the path of its
    weights; `error` when a file is missing, the JSON is bad or the method differs. Every
    method's loader starts here (CAGUL's and `read_artifact`)."""
    cfg_file, weights = directory / ADAPTER_CONFIG, directory / ADAPTER_WEIGHTS
    for f in (cfg_file, weights):
        if not f.is_file():
            raise error(f"{directory} is not an artifact directory: {f.name} is missing")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise error(f"{cfg_file} is not valid JSON: {e}") from e
    if not isinstance(config, dict) or config.get("method") != method:
        raise error(f"{cfg_file} is not a {method} artifact")
    return config, weights


def load_checked_weights(weights: Path, config: dict) -> dict:
    """The tensors of `weights`, after checking they are the ones whose sha256 `config` records."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if hashlib.sha256(weights.read_bytes()).hexdigest() != config.get("weights_sha256"):
        raise ArtifactTamperedError(f"{weights} does not match the sha256 in {ADAPTER_CONFIG}")
    try:
        return load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise ArtifactTamperedError(f"{weights} is not a readable safetensors file: {e}") from e


def write_artifact(directory: str | Path, method: str, fingerprint: str, body: dict) -> Path:
    """Add the integrity fields to `adapter_config.json` (the weights must be written first)."""
    out = Path(directory)
    weights = out / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ArtifactError(f"{weights} was not written")
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    config = {**body, "method": method, "base_fingerprint": fingerprint, "weights_sha256": digest}
    (out / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


def read_artifact(vlm: VLM, directory: str | Path, method: str) -> tuple[dict, dict]:
    """(config, weights) of an artifact of `method`, after checking it belongs to `vlm` and its
    weights are the ones saved. `vlm` must be the untouched base model."""
    d = Path(directory)
    config, weights = read_artifact_config(d, method)
    if config.get("base_fingerprint") != base_fingerprint(vlm):
        raise ArtifactMismatchError(
            f"{d} was made for another base model; its fingerprint does not match {vlm.path}"
        )
    return config, load_checked_weights(weights, config)

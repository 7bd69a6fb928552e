"""Consolidation: a stack of CAGUL adapters replaced by one trained on the union of their
requests (`python -m cagul consolidate`), through the same pipeline as any request."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

# Looked up as module attributes at call time, so whoever replaces the model loader or the
# pipeline (the CLI's bad-input tests do) replaces them here too.
from cagul import models, pipeline
from cagul.methods.cagul.adapter import CagulAdapter
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments


def consolidate(
    *,
    model_dir: str | Path,
    data_dir: str | Path,
    adapter_dirs: Sequence[str | Path],
    out_dir: str | Path,
    progress: Callable[..., None] | None = None,
    training: CagulTrainingArguments | None = None,
    device: str = "cpu",
) -> dict:
    """Replace a stack of CAGUL adapters by one trained on the union of their requests.

    Stacking keeps each request's adapter untouched (a new request trains only its own); after
    many requests, one adapter is cheaper at inference (one discriminator, one encoder). Its
    discriminator must learn every forget person at once, which only retraining on the union
    gives, so that is what this does; the stacked adapters stay valid until it is verified.
    """
    vlm = models.load_vlm(model_dir, device=device)
    adapters = [CagulAdapter.from_pretrained(vlm, d) for d in adapter_dirs]
    if not adapters:
        raise ValueError("no adapters to consolidate")
    ids = sorted({i for a in adapters for i in a.config.forget_ids})
    identity = any(a.config.setting == "identity" for a in adapters)
    categories = None if identity else sorted({c for a in adapters for c in a.config.categories})
    first = adapters[0].config
    config = CagulMethodConfig(
        k=first.k,
        selection=first.selection,
        objective=first.objective,
        score_layers=first.score_layers,
        training=training or CagulTrainingArguments(),
    )
    del vlm, adapters
    return pipeline.run_unlearning(
        model_dir=model_dir,
        data_dir=data_dir,
        forget_ids=ids,
        categories=categories,
        method="cagul",
        out_dir=out_dir,
        progress=progress,
        device=device,
        config=config,
    )

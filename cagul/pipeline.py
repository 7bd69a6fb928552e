"""One forget request end to end: split → train the CAGUL adapter → save it → evaluate it.

`run_unlearning` is the contract the job runner (`jobs/runner.py`) and `python -m cagul
unlearn` share: it writes `adapter_config.json` + `adapter_model.safetensors` into `out_dir`
and returns the DESIGN §8 report and the base model's fingerprint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cagul.adapter import CagulAdapter
from cagul.data import PRIVATE_CATEGORIES, load_dataset, load_probes, make_split
from cagul.evaluate import evaluate_adapters
from cagul.models import load_vlm
from cagul.train_cagul import CagulTrainingArguments, negatives_from, train_cagul

METHODS = ("cagul",)


def default_k(n_visual_tokens: int) -> int:
    """The paper's share of least-attended tokens (20 of 1369 on Qwen2.5-VL-7B, ~1.5 %), but
    on small grids up to half of them (at most 8): on the demo bundle's 16 tokens, k=4 left
    forget EM at 0.69-0.95, k=8 brought it to 0.05-0.10 and k=12 was no better (0.12-0.29)."""
    return max(round(0.015 * n_visual_tokens), min(n_visual_tokens // 2, 8))


def run_unlearning(
    *,
    model_dir: str | Path,
    data_dir: str | Path,
    forget_ids: Sequence[str],
    categories: Sequence[str] | None,
    method: str,
    out_dir: str | Path,
    progress: Callable[..., None] | None = None,
    check_cancel: Callable[[], None] | None = None,
    k: int | None = None,
    training: CagulTrainingArguments | None = None,
    device: str = "cpu",
    max_retain: int | None = 200,
    adapter_options: dict | None = None,
) -> dict:
    """Train and evaluate an adapter forgetting `categories` (None: every pair) of `forget_ids`.

    `progress(fraction, message)` gets training as 0-0.8 and evaluation as 0.8-1.
    """
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not available; choose one of {METHODS}")
    if not forget_ids:
        raise ValueError("no individuals to forget")

    def report_progress(frac: float, msg: str) -> None:
        if progress:
            progress(frac, msg)

    report_progress(0.0, "loading model and data")
    vlm = load_vlm(model_dir, device=device)
    ds = load_dataset(data_dir)
    setting = "private" if categories else "identity"
    split = make_split(
        ds, list(forget_ids), setting, private_categories=categories or PRIVATE_CATEGORIES
    )
    probes_dir = Path(data_dir) / "probes"
    probes = load_probes(probes_dir) if probes_dir.is_dir() else None
    n_tokens = vlm.prepare([split.forget_set[0].image_path], ["?"]).layouts[0].n_tokens
    adapter = CagulAdapter.for_model(
        vlm,
        k=k or default_k(n_tokens),
        setting=setting,
        forget_ids=list(split.forget_ids),
        categories=sorted(categories or []),
        **(adapter_options or {}),
    )
    stats = train_cagul(
        vlm,
        split,
        adapter,
        training,
        negatives=negatives_from(data_dir),
        progress=lambda f, m: report_progress(0.8 * f, m),
        check_cancel=check_cancel,
    )
    adapter.save_pretrained(out_dir)
    report_progress(0.8, "evaluating")
    if check_cancel:
        check_cancel()
    report = evaluate_adapters(
        vlm,
        [adapter],
        split,
        probes,
        training=stats,
        max_retain=max_retain,
        progress=False,
        meta={"data": str(data_dir), "adapter": str(out_dir), "method": method},
    )
    report_progress(1.0, "done")
    return {"report": report, "base_fingerprint": adapter.config.base_fingerprint}


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
    """Replace a stack of adapters by one trained on the union of their requests.

    Stacking keeps each request's adapter untouched (a new request trains only its own); after
    many requests, one adapter is cheaper at inference (one discriminator, one encoder). Its
    discriminator must learn every forget person at once, which only retraining on the union
    gives, so that is what this does; the stacked adapters stay valid until it is verified.
    """
    vlm = load_vlm(model_dir, device=device)
    adapters = [CagulAdapter.from_pretrained(vlm, d) for d in adapter_dirs]
    if not adapters:
        raise ValueError("no adapters to consolidate")
    ids = sorted({i for a in adapters for i in a.config.forget_ids})
    identity = any(a.config.setting == "identity" for a in adapters)
    categories = None if identity else sorted({c for a in adapters for c in a.config.categories})
    first = adapters[0].config
    options = {"selection": first.selection, "objective": first.objective,
               "score_layers": first.score_layers}  # fmt: skip
    del vlm, adapters
    return run_unlearning(
        model_dir=model_dir, data_dir=data_dir, forget_ids=ids, categories=categories,
        method="cagul", out_dir=out_dir, progress=progress, k=first.k, training=training,
        device=device, adapter_options=options,
    )  # fmt: skip

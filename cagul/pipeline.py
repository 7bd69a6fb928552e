"""One forget request end to end: split → train with the chosen method → save → evaluate.

`run_unlearning` is the contract the job runner (`jobs/runner.py`) and `python -m cagul
unlearn` share: it trains the request's method (any name in `cagul.methods.registry`), which
writes `adapter_config.json` + `adapter_model.safetensors` into `out_dir`, and returns the
evaluation report and the base model's fingerprint.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from cagul.data import PRIVATE_CATEGORIES, load_dataset, load_probes, make_split
from cagul.evaluate import evaluate_unlearned
from cagul.methods import METHODS, check_method, get_method
from cagul.methods.base import configure
from cagul.models import load_vlm

__all__ = ["METHODS", "method_config", "run_unlearning"]


def method_config(method: str, **overrides):
    """The method's default config with `overrides` (None values ignored) applied to the fields
    it has, nested ones included (`cagul.methods.base.configure`), e.g. `epochs`, `lr`, `seed`
    from the command line."""
    return configure(get_method(method).config_class(), **overrides)


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
    device: str = "cpu",
    max_retain: int | None = 200,
    config=None,
    pair_ids: Sequence[str] | None = None,
) -> dict:
    """Forget `categories` (None: every pair) of `forget_ids` with `method`, then evaluate.

    `pair_ids` (pairs of `forget_ids`, `cagul.data.resolve_pair_ids`) forgets exactly those
    pairs instead; the people's other pairs are the non-private set (the private setting).

    `config` is the method's config (its `config_class`, e.g. from `method_config`; None: its
    defaults). `progress(fraction, message)` gets training as 0-0.8 and evaluation as 0.8-1.
    """
    check_method(method)
    if not forget_ids:
        raise ValueError("no individuals to forget")

    def report_progress(frac: float, msg: str) -> None:
        if progress:
            progress(frac, msg)

    report_progress(0.0, "loading model and data")
    vlm = load_vlm(model_dir, device=device)
    ds = load_dataset(data_dir)
    setting = "private" if categories or pair_ids else "identity"
    split = make_split(
        ds,
        list(forget_ids),
        setting,
        private_categories=categories or PRIVATE_CATEGORIES,
        pair_ids=list(pair_ids) if pair_ids else None,
    )
    probes_dir = Path(data_dir) / "probes"
    probes = load_probes(probes_dir) if probes_dir.is_dir() else None
    chosen = get_method(method)
    artifact = chosen.train(
        vlm,
        split,
        config,
        out_dir=out_dir,
        progress=lambda f, m: report_progress(0.8 * f, m),
        check_cancel=check_cancel,
        data_dir=data_dir,
    )
    unlearned = artifact.model or chosen.load(vlm, out_dir)
    report_progress(0.8, "evaluating")
    if check_cancel:
        check_cancel()
    report = evaluate_unlearned(
        vlm,
        unlearned,
        split,
        probes,
        training=artifact.stats,
        max_retain=max_retain,
        progress=False,
        meta={"data": str(data_dir), "adapter": str(out_dir), "method": method},
    )
    report_progress(1.0, "done")
    saved = json.loads((Path(out_dir) / "adapter_config.json").read_text(encoding="utf-8"))
    return {"report": report, "base_fingerprint": saved["base_fingerprint"]}

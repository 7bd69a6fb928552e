"""CAGUL's own sections of the evaluation report: how well its discriminators tell the forget
people apart (clean, perturbed, on probe images), and the perturbed-image leak with its
rewrite. `CagulUnlearned.report_sections` hands them to `cagul.evaluate.evaluate_unlearned`.
"""

from __future__ import annotations

import numpy as np

from cagul.data import ProbeSet, Split
from cagul.evaluate import image_leak
from cagul.methods.cagul.adapter import plan, vote
from cagul.models import VLM


def _people_images(split: Split) -> dict[str, bool]:
    forget_ids = set(split.forget_ids)
    out: dict[str, bool] = {}
    for s in split.forget_set + split.retain_set:
        out.setdefault(s.image_path, s.unique_id in forget_ids)
    return out


def discriminator_report(vlm: VLM, adapters: list, split: Split, probes: ProbeSet | None) -> dict:
    """How well the stacked discriminators tell the forget people apart: on every person's
    image, on fixed perturbed copies of it, and (false positives) on the general probe images."""
    from PIL import Image

    from cagul.perturb import fixed_perturbations

    people = _people_images(split)
    imgs, truth, kind = [], [], []
    for path, is_forget in people.items():
        imgs.append(path)
        truth.append(is_forget)
        kind.append("clean")
        for im in fixed_perturbations(Image.open(path)).values():
            imgs.append(im)
            truth.append(is_forget)
            kind.append("perturbed")
    if probes:
        for path in sorted({p.image_path for p in probes.pope + probes.mme}):
            imgs.append(path)
            truth.append(False)
            kind.append("probe")
    flagged = []
    for i in range(0, len(imgs), 64):
        chunk = imgs[i : i + 64]
        batch = vlm.prepare(chunk, ["What is shown in the image?"] * len(chunk))
        flagged += _flags(vlm, adapters, batch)

    def acc(which: set[str]) -> float | None:
        hits = [f == t for f, t, k in zip(flagged, truth, kind, strict=True) if k in which]
        return float(np.mean(hits)) if hits else None

    fp = [f for f, k in zip(flagged, kind, strict=True) if k == "probe"]
    return {
        "accuracy": acc({"clean", "perturbed"}),
        "clean_accuracy": acc({"clean"}),
        "perturbed_accuracy": acc({"perturbed"}),
        "probe_false_positive_rate": float(np.mean(fp)) if fp else None,
        "n_people_images": len(people),
    }


def _flags(vlm, adapters, batch) -> list[bool]:
    _, above = vote(adapters, vlm.visual_tokens(batch), batch.layouts)
    return above.any(0).tolist()


def perturbed_image_leak(vlm: VLM, adapters: list, split: Split, batch_size: int = 64) -> dict:
    """EM on the forget questions asked about perturbed copies of the forget people's images
    (JPEG 70, 4-pixel shifts, ±10 % brightness, all at once): a re-saved photo must not leak."""
    return image_leak(vlm, split, lambda b: plan(vlm, adapters, b).replacement, batch_size)

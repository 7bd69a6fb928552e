"""Answering with stacked CAGUL adapters, as the demo, the `answer` and `audit` commands and
auditors use it: the answer with and without unlearning, and why (forget probability, the
selected tokens, the cross-modal scores on the patch grid)."""

from __future__ import annotations

import json
from pathlib import Path

from cagul import metrics
from cagul.adapter import CagulAdapter, plan
from cagul.answering import cut_answer
from cagul.models import VLM, InputError


def load_adapters(vlm: VLM, dirs: list[str | Path] | None) -> list[CagulAdapter]:
    return [CagulAdapter.from_pretrained(vlm, d) for d in dirs or []]


def answer_one(vlm: VLM, adapters: list[CagulAdapter], image, question: str) -> dict:
    """Answer one question about one image, before and after unlearning.

    `scores` are the cross-modal attention scores (one row per cross-modal layer, over the
    visual tokens) and `grid` the patch grid they lie on; `selected_tokens` are the indices the
    flagging adapter rewrote (per layer for cross-attention models), empty when not flagged.
    """
    batch = vlm.prepare([image], [question])
    decided = plan(vlm, adapters, batch, with_scores=True) if adapters else None
    base = cut_answer(vlm.generate(batch, None, 50)[0])
    answer = base
    if decided is not None and decided.replacement is not None:
        answer = cut_answer(vlm.generate(batch, decided.replacement, 50)[0])
    scores = decided.scores[0] if decided else vlm.cross_modal_scores(batch)[0]
    idx = decided.indices[0] if decided else None
    layout = batch.layouts[0]
    return {
        "answer": answer,
        "base_answer": base,
        "forget_probability": decided.probabilities[0] if decided else None,
        "transformed": bool(decided and decided.flagged[0]),
        "adapter_index": decided.adapter_index[0] if decided else None,
        "selected_tokens": [] if idx is None else idx.tolist(),
        "scores": scores.tolist(),
        "grid": list(layout.grid),
        "grid_index": layout.grid_index.tolist(),
        "cross_modal_layers": vlm.cross_modal_layers,
    }


def read_prompts(path: str | Path) -> list[dict]:
    """Audit prompts: one JSON object per line with image, question and keywords."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{n}: not JSON ({e})") from e
        if not isinstance(obj, dict) or not {"image", "question", "keywords"} <= set(obj):
            raise InputError(f"{path}:{n}: needs image, question and keywords")
        if not isinstance(obj["keywords"], list) or not obj["keywords"]:
            raise InputError(f"{path}:{n}: keywords must be a non-empty list")
        rows.append(obj)
    if not rows:
        raise InputError(f"{path} holds no prompts")
    return rows


def audit(
    vlm: VLM, adapters: list[CagulAdapter], prompts: list[dict], images_by_id: dict[str, str]
) -> list[dict]:
    """Leak rows: each prompt answered with and without the adapters; `leaked` when the
    unlearned answer still contains the keywords (EM > 0). `image` may be an individual id."""
    out = []
    for p in prompts:
        image = images_by_id.get(str(p["image"]), p["image"])
        if not Path(image).is_file():
            raise InputError(f"image {p['image']!r} is neither a file nor a known individual id")
        r = answer_one(vlm, adapters, image, p["question"])
        em = metrics.keyword_em(r["answer"], p["keywords"])
        base_em = metrics.keyword_em(r["base_answer"], p["keywords"])
        out.append({**p, "answer": r["answer"], "base_answer": r["base_answer"], "em": em,
                    "base_em": base_em, "leaked": em > 0,
                    "forget_probability": r["forget_probability"],
                    "transformed": r["transformed"]})  # fmt: skip
    return out

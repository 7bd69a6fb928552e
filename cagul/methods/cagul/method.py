"""CAGUL as a method: the frozen VLM, a discriminator that flags the forget people's images and
a token encoder that rewrites their k least-attended visual tokens (this package's `adapter`,
`train`, `selection`). Its unlearned model is the base model itself plus a per-batch rewrite,
and it explains itself: forget probability, selected tokens, scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cagul.methods.base import Artifact, UnlearnedModel
from cagul.methods.cagul.adapter import AdapterError, CagulAdapter, plan
from cagul.methods.cagul.train import CagulTrainingArguments, negatives_from, train_cagul


def default_k(n_visual_tokens: int) -> int:
    """The paper's share of least-attended tokens (20 of 1369 on Qwen2.5-VL-7B, ~1.5 %), but
    on small grids up to half of them (at most 8): on the demo bundle's 16 tokens, k=4 left
    forget EM at 0.69-0.95, k=8 brought it to 0.05-0.10 and k=12 was no better (0.12-0.29)."""
    return max(round(0.015 * n_visual_tokens), min(n_visual_tokens // 2, 8))


@dataclass
class CagulMethodConfig:
    """What a CAGUL request is trained with."""

    k: int | None = field(default=None, metadata={"help": "tokens rewritten (None: default_k)"})
    training: CagulTrainingArguments = field(
        default_factory=CagulTrainingArguments, metadata={"help": "training settings"}
    )
    adapter_options: dict = field(
        default_factory=dict,
        metadata={"help": "CagulConfig overrides (selection, objective, ablation switches)"},
    )


class CagulUnlearned(UnlearnedModel):
    """The frozen base model with stacked CAGUL adapters deciding per batch."""

    def __init__(self, vlm, adapters: list[CagulAdapter]):
        config = adapters[0].config.__dict__ if adapters else {}
        super().__init__("cagul", vlm, dict(config), sum(a.n_trainable() for a in adapters))
        self.adapters = adapters

    def replacement_for(self, batch):
        return plan(self.vlm, self.adapters, batch).replacement

    def explain(self, image, question: str) -> dict:
        """Forget probability, whether the sample is rewritten, the selected tokens and the
        cross-modal scores on the patch grid (with the answers before and after)."""
        from cagul.inference import answer_one

        return answer_one(self.vlm, self.adapters, image, question)


class CagulMethod:
    name = "cagul"
    config_class = CagulMethodConfig

    def train(self, vlm, split, config=None, *, out_dir, progress=None, check_cancel=None,
              data_dir=None) -> Artifact:  # fmt: skip
        config = config or CagulMethodConfig()
        n_tokens = vlm.prepare([split.forget_set[0].image_path], ["?"]).layouts[0].n_tokens
        k = default_k(n_tokens) if config.k is None else config.k
        if not 1 <= k <= n_tokens:
            # Refused before any training: selection would fail only once training started.
            raise AdapterError(f"k={k} cannot be rewritten: this model gives {n_tokens} visual "
                               f"tokens per image; choose k between 1 and {n_tokens}")  # fmt: skip
        adapter = CagulAdapter.for_model(
            vlm,
            k=k,
            setting=split.setting,
            forget_ids=list(split.forget_ids),
            categories=sorted(split.private_categories) if split.setting == "private" else [],
            pair_ids=list(split.pair_ids),
            **(config.adapter_options or {}),
        )
        stats = train_cagul(
            vlm,
            split,
            adapter,
            config.training,
            negatives=negatives_from(data_dir) if data_dir else [],
            progress=progress,
            check_cancel=check_cancel,
        )
        adapter.save_pretrained(out_dir)
        return Artifact(Path(out_dir), stats, CagulUnlearned(vlm, [adapter]))

    def load(self, vlm, directory) -> CagulUnlearned:
        return CagulUnlearned(vlm, [CagulAdapter.from_pretrained(vlm, directory)])


METHOD = CagulMethod()

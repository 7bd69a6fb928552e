"""CAGUL as a method: the frozen VLM, a discriminator that flags the forget people's images and
a token encoder that rewrites their k least-attended visual tokens (this package's `adapter`,
`train`, `selection`). Its unlearned model is the base model itself plus a per-batch rewrite,
and it explains itself: forget probability, selected tokens, scores.
"""

from __future__ import annotations

from pathlib import Path

from cagul.methods.base import Artifact, UnlearnedModel
from cagul.methods.cagul.adapter import CagulAdapter, plan, vote
from cagul.methods.cagul.config import CagulMethodConfig, resolve_k
from cagul.methods.cagul.train import negatives_from, train_cagul


class CagulUnlearned(UnlearnedModel):
    """The frozen base model with stacked CAGUL adapters deciding per batch."""

    def __init__(self, vlm, adapters: list[CagulAdapter]):
        config = adapters[0].config.__dict__ if adapters else {}
        super().__init__("cagul", vlm, dict(config), sum(a.n_trainable() for a in adapters))
        self.adapters = adapters

    def replacement_for(self, batch):
        return plan(self.vlm, self.adapters, batch).replacement

    def forget_probabilities(self, images, batch_size: int = 32) -> list[float]:
        """The stacked discriminators' highest P(forget) per image, as `plan` votes."""
        import torch

        out: list[float] = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                chunk = list(images[i : i + batch_size])
                batch = self.vlm.prepare(chunk, ["?"] * len(chunk))
                probs, _ = vote(self.adapters, self.vlm.visual_tokens(batch), batch.layouts)
                out += probs.max(0).values.tolist()
        return out

    def report_sections(self, split, probes, batch_size: int = 64) -> dict:
        """The discriminator block and the perturbed-image leak under the stacked adapters."""
        from cagul.methods.cagul.report import discriminator_report, perturbed_image_leak

        return {
            "discriminator": discriminator_report(self.vlm, self.adapters, split, probes),
            "leak": perturbed_image_leak(self.vlm, self.adapters, split, batch_size),
        }

    def explain(self, image, question: str) -> dict:
        """Forget probability, whether the sample is rewritten, the selected tokens and the
        cross-modal scores on the patch grid (with the answers before and after)."""
        from cagul.inference import answer_one

        return answer_one(self.vlm, self.adapters, image, question)


class CagulMethod:
    name = "cagul"
    config_class = CagulMethodConfig

    def train(
        self,
        vlm,
        split,
        config=None,
        *,
        out_dir,
        progress=None,
        check_cancel=None,
        data_dir=None,
    ) -> Artifact:
        config = config or CagulMethodConfig()
        n_tokens = vlm.prepare([split.forget_set[0].image_path], ["?"]).layouts[0].n_tokens
        k = resolve_k(config.k, n_tokens)
        adapter = CagulAdapter.for_model(
            vlm,
            k=k,
            setting=split.setting,
            forget_ids=list(split.forget_ids),
            categories=sorted(split.private_categories) if split.setting == "private" else [],
            pair_ids=list(split.pair_ids),
            **config.adapter_choices(),
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

"""The interface every unlearning method implements, and the artifact files they share.

A method is `train(vlm, split, config, ...) -> Artifact` (it writes an artifact directory) and
`load(vlm, directory) -> UnlearnedModel`. Whatever the method, the directory holds
`adapter_config.json` (the method's name, the base model's fingerprint, the weights' sha256 and
the request's people, setting and categories, plus the method's own fields) and
`adapter_model.safetensors`; `read_artifact` refuses it over another base model or with altered
files (`cagul.artifacts`).

An `UnlearnedModel` is what evaluation, answering and the app use without knowing the method:
`vlm` is the model that answers (the base itself for CAGUL, a LoRA-injected or retrained copy
for the others) and `replacement_for(batch)` the per-batch visual-token rewrite (CAGUL only;
None elsewhere), which is exactly what `cagul.answering` takes. `explain` gives CAGUL's
forget probability, selected tokens and scores; the other methods return None: they have no
such explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from cagul.data import Split
from cagul.models import VLM, TokenReplacement

Progress = Callable[[float, str], None] | None
CheckCancel = Callable[[], None] | None


@dataclass
class Artifact:
    """What `train` produced: the directory it wrote and its training statistics."""

    directory: Path
    stats: dict = field(default_factory=dict)
    model: UnlearnedModel | None = None  # the trained model in memory (saves a reload)


class UnlearnedModel:
    """A base model after unlearning, as every consumer uses it."""

    def __init__(self, method: str, vlm: VLM, config: dict, n_trainable: int = 0):
        self.method = method
        self.vlm = vlm
        self.config = config
        self.n_trainable = n_trainable

    def replacement_for(self, batch) -> TokenReplacement | None:
        """The visual-token rewrite for `batch` (None: the model answers as it is)."""
        return None

    def generate(self, images: Sequence, questions: Sequence[str], **kwargs) -> list[str]:
        """FIUBench answers (greedy, cut at the first '.'), as `cagul.answering.answer_all`."""
        from cagul.answering import answer_all

        return answer_all(
            self.vlm, images, questions, replacement_for=self.replacement_for, **kwargs
        )

    def answer_logprobs(
        self, images: Sequence, questions: Sequence[str], answers: Sequence[str], **kwargs
    ) -> list[dict]:
        """Per sample, the answer tokens' log-probs (and MinK++ statistics)."""
        from cagul.answering import answer_logprobs

        return answer_logprobs(
            self.vlm, images, questions, answers, replacement_for=self.replacement_for, **kwargs
        )

    def forget_probabilities(self, images: Sequence, batch_size: int = 32) -> list[float | None]:
        """Per image, the method's P(this photo shows a person to forget): None where the
        method has no gate (it changes the model for every image alike)."""
        return [None] * len(images)

    def report_sections(self, split: Split, probes, batch_size: int = 64) -> dict:
        """The method's own sections of the evaluation report: here the perturbed-image leak
        (EM on the forget questions over re-saved / shifted / re-lit copies of the photos)."""
        from cagul.evaluate import image_leak

        return {"leak": image_leak(self.vlm, split, self.replacement_for, batch_size)}

    def explain(self, image, question: str) -> dict | None:
        """Why the model answers as it does; None when the method has no such explanation."""
        return None


class Method(Protocol):
    """One way of unlearning (docs/architecture.md, section 3)."""

    name: str
    config_class: type

    def train(
        self,
        vlm: VLM,
        split: Split,
        config: Any,
        *,
        out_dir: str | Path,
        progress: Progress = None,
        check_cancel: CheckCancel = None,
        data_dir: str | Path | None = None,
    ) -> Artifact: ...

    def load(self, vlm: VLM, directory: str | Path) -> UnlearnedModel: ...


def request_fields(split: Split, categories: Sequence[str] | None = None) -> dict:
    """The request's people, setting, categories and single pairs (canonical ids, empty unless
    the request named pairs), as every artifact config records them."""
    cats = sorted(categories) if categories is not None else sorted(split.private_categories)
    return {
        "setting": split.setting,
        "forget_ids": list(split.forget_ids),
        "categories": cats if split.setting == "private" else [],
        "pair_ids": list(split.pair_ids),
    }


def configure(config, **overrides):
    """A copy of the dataclass `config` with `overrides` applied by field name, None values
    ignored: a field of `config` itself, else of one of its dataclass fields (CAGUL's nested
    `training` schedule), so every method's config is set the same way. A name no field has is
    ignored: the CLI's shared `--epochs`, `--lr`, `--seed` reach every method that has them."""
    own = {f.name for f in fields(config)}
    top = {k: v for k, v in overrides.items() if v is not None and k in own}
    for f in fields(config):
        inner = getattr(config, f.name)
        if is_dataclass(inner) and not isinstance(inner, type):
            names = {g.name for g in fields(inner)}
            sub_overrides = {
                k: v for k, v in overrides.items() if v is not None and k not in own and k in names
            }
            if sub_overrides:
                top[f.name] = replace(inner, **sub_overrides)
    return replace(config, **top)

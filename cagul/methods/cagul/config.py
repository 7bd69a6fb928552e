"""CAGUL's one config: what a request chooses (k, token selection, the ablation switches, the
objective) and how the adapter is trained (`CagulTrainingArguments`, the schedule).

`CagulMethodConfig` is the method's `config_class`: every consumer builds it the same way as
any method's config (`cagul.methods.base.configure`, by field name, nested schedule included).
Its choices are validated once, when the adapter's saved config (`adapter.CagulConfig`) is
built from them; `resolve_k` is the one place where k meets the model's visual tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cagul.methods.cagul.adapter import AdapterError


@dataclass
class CagulTrainingArguments:
    """How a CAGUL adapter is trained. The defaults were chosen on the demo bundle; how each was
    measured is in docs/experiments/cagul-tuning.md."""

    disc_epochs: int = field(default=2, metadata={"help": "discriminator-only epochs first"})
    epochs: int = field(
        default=200,
        metadata={"help": "at most this many joint epochs (training stops once verified)"},
    )
    lr: float = field(default=3e-3, metadata={"help": "token encoder learning rate"})
    disc_lr: float = field(default=1e-3, metadata={"help": "discriminator learning rate"})
    batch_size: int = field(default=16, metadata={"help": "samples per encoder step"})
    disc_batch_size: int = field(default=32, metadata={"help": "views per discriminator step"})
    cache_batch_size: int = field(
        default=64, metadata={"help": "images per pass when caching views and fixing token sets"}
    )
    views: int = field(default=12, metadata={"help": "perturbed copies of each image (BCE)"})
    encoder_views: int = field(
        default=8,
        metadata={
            "help": "perturbed copies of each forget pair, each an encoder "
            "sample with its own token set (0: clean only)"
        },
    )
    views_per_epoch: int = field(
        default=2,
        metadata={"help": "perturbed copies of each forget pair trained per epoch (0: all)"},
    )
    max_negatives: int = field(default=64, metadata={"help": "unrelated images used as negatives"})
    negative_views: int = field(
        default=384,
        metadata={"help": "negative views in all (unrelated images, other people's views)"},
    )
    gd_weight: float = field(default=1.0, metadata={"help": "weight of GD / KL terms"})
    forget_weight: float = field(
        default=0.8,
        metadata={"help": "weight of PO / GA terms, against the same images' GD / KL terms"},
    )
    ga_cap: float = field(default=8.0, metadata={"help": "GA stops pushing past this NLL"})
    max_retain: int = field(
        default=128, metadata={"help": "retain samples per epoch when every sample is transformed"}
    )
    hard_weight: float = field(
        default=1.0,
        metadata={"help": "exponent of the last-loss / role-mean sample weight (0: uniform)"},
    )
    hard_cap: float = field(default=4.0, metadata={"help": "largest hard-sample weight"})
    cosine: bool = field(
        default=True,
        metadata={
            "help": "cosine-decay the encoder lr (over `epochs`; once verified, to 0 "
            "over the consolidation epochs)"
        },
    )
    check_every: int = field(
        default=5,
        metadata={
            "help": "joint epochs between verification checks (0: no check, train all epochs)"
        },
    )
    consolidate: int = field(
        default=5, metadata={"help": "joint epochs after the first passing check"}
    )
    disc_margin: float = field(
        default=0.4,
        metadata={"help": "the check's discriminator margin around its threshold"},
    )
    skip_nll: float = field(
        default=0.1,
        metadata={
            "help": "a sample that passed the last check and whose NLL is below this "
            "skips its passes until the next check (0: never skip)"
        },
    )
    seed: int = field(default=0, metadata={"help": "shuffling, views and refusal draws"})


def default_k(n_visual_tokens: int) -> int:
    """The paper's share of least-attended tokens (20 of 1369 on Qwen2.5-VL-7B, ~1.5 %), but
    on small grids up to half of them (at most 8): on the demo bundle's 16 tokens, k=4 left
    forget EM at 0.69-0.95, k=8 brought it to 0.05-0.10 and k=12 was no better (0.12-0.29)."""
    return max(round(0.015 * n_visual_tokens), min(n_visual_tokens // 2, 8))


def resolve_k(k: int | None, n_tokens: int) -> int:
    """`k` (None: `default_k`), refused unless the model's `n_tokens` visual tokens hold it:
    checked before any training, since selection would fail only once training started."""
    k = default_k(n_tokens) if k is None else k
    if not 1 <= k <= n_tokens:
        raise AdapterError(
            f"k={k} cannot be rewritten: this model gives {n_tokens} visual "
            f"tokens per image; choose k between 1 and {n_tokens}"
        )
    return k


@dataclass
class CagulMethodConfig:
    """What a CAGUL request is trained with: its choices, typed, and its schedule."""

    k: int | None = field(default=None, metadata={"help": "tokens rewritten (None: default_k)"})
    selection: str = field(
        default="least_attended", metadata={"help": "least_attended | random (ablation)"}
    )
    use_discriminator: bool = field(
        default=True, metadata={"help": "off: transform every sample (ablation)"}
    )
    use_encoder: bool = field(
        default=True, metadata={"help": "off: uniform noise on the selected tokens (ablation)"}
    )
    objective: str = field(default="po_gd", metadata={"help": "po_gd | ga_gd | ga_kl"})
    score_layers: list[int] | None = field(
        default=None,
        metadata={"help": "cross-modal layers whose mean score picks the set (None: all)"},
    )
    training: CagulTrainingArguments = field(
        default_factory=CagulTrainingArguments, metadata={"help": "training settings"}
    )

    def adapter_choices(self) -> dict:
        """The choices the adapter's saved config records (validated when it is built)."""
        skip = {"k", "training"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}

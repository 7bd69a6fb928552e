"""The CAGUL adapter: discriminator + token encoder over a frozen VLM, saved peft-style.

An adapter is what a forget request produces: `adapter_config.json` (a `CagulConfig`) and
`adapter_model.safetensors` (the discriminator's and the token encoder's weights), nothing
else. It is bound to the base model it was trained on by a fingerprint (a hash of the model's
config and a digest of its weights), so loading it over another model is refused, and the
config records the weights file's sha256, so a tampered file is refused too.

At inference (`plan`), one or several adapters (stacked: one per past request, so a new
request does not retrain old ones) look at a batch's visual tokens; each discriminator votes,
and for a sample the most confident adapter above its threshold rewrites that sample's k
least-attended tokens with its encoder. Samples no adapter flags pass through untouched.

A config is validated field by field when it is built (types first, so `"k": "8"` says that k
must be an integer, then bounds), and on loading its sizes are checked against the base model
(`hidden_size`, `per_layer`, `score_layers`) before any module is allocated: a forged or
foreign config fails with an `AdapterError`, never with a shape error or a huge allocation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from cagul.artifacts import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ArtifactError,
    ArtifactMismatchError,
    ArtifactTamperedError,
    base_fingerprint,
    load_checked_weights,
    read_artifact_config,
)
from cagul.methods.cagul.selection import select_tokens
from cagul.models import VLM, TokenReplacement
from cagul.models.base import Batch, ImageLayout

FORMAT_VERSION = 1
# Bounds a config must respect before anything is allocated. The largest supported base
# (Llama-3.2-90B-Vision) has d = 8192; a default adapter on it has ~140 M parameters.
MAX_HIDDEN_SIZE = 65_536
MAX_K = 4096
MAX_DISC_CHANNELS = 4096
MAX_ENCODER_HIDDEN = 65_536
MAX_ADAPTER_PARAMS = 1_000_000_000


class AdapterError(ArtifactError):
    """A CAGUL adapter's config cannot be used (bad field, unknown key, unsupported format)."""


class AdapterMismatchError(AdapterError, ArtifactMismatchError):
    """The adapter does not fit this base model (family, sizes, fingerprint): an artifact
    mismatch, and a bad adapter config for whoever catches `AdapterError`."""


@dataclass
class CagulConfig:
    """Everything needed to rebuild an adapter's modules and use them (docs/architecture.md)."""

    family: str = field(metadata={"help": "VLM family the adapter was trained on"})
    hidden_size: int = field(metadata={"help": "visual-token width d of the base model"})
    base_fingerprint: str = field(metadata={"help": "hash of base config + weights digest"})
    k: int = field(default=4, metadata={"help": "visual tokens rewritten per sample (per layer)"})
    per_layer: bool = field(
        default=False, metadata={"help": "one token set per cross-attention layer (Mllama)"}
    )
    score_layers: list[int] | None = field(
        default=None,
        metadata={"help": "cross-modal layers whose mean score picks the set (None: all)"},
    )
    selection: str = field(
        default="least_attended", metadata={"help": "least_attended | random (ablation)"}
    )
    threshold: float = field(default=0.5, metadata={"help": "transform when P(forget) > this"})
    use_discriminator: bool = field(
        default=True, metadata={"help": "off: transform every sample (ablation)"}
    )
    use_encoder: bool = field(
        default=True, metadata={"help": "off: uniform noise on the selected tokens (ablation)"}
    )
    disc_channels: int = field(default=64, metadata={"help": "discriminator CNN channels"})
    encoder_hidden: int = field(default=0, metadata={"help": "encoder MLP width (0: = d)"})
    objective: str = field(default="po_gd", metadata={"help": "po_gd | ga_gd | ga_kl"})
    setting: str = field(default="private", metadata={"help": "private | identity"})
    forget_ids: list[str] = field(default_factory=list, metadata={"help": "forgotten people"})
    categories: list[str] = field(default_factory=list, metadata={"help": "forgotten categories"})
    pair_ids: list[str] = field(
        default_factory=list, metadata={"help": "forgotten single pairs (empty: by category)"}
    )
    base_model: str = field(default="", metadata={"help": "base model path (informational)"})
    seed: int = field(default=0, metadata={"help": "initialisation seed"})
    format_version: int = field(default=FORMAT_VERSION, metadata={"help": "file format"})

    def __post_init__(self) -> None:
        self._check_types()
        _in_range("hidden_size", self.hidden_size, 1, MAX_HIDDEN_SIZE)
        _in_range("k", self.k, 1, MAX_K)
        _in_range("disc_channels", self.disc_channels, 1, MAX_DISC_CHANNELS)
        _in_range("encoder_hidden", self.encoder_hidden, 0, MAX_ENCODER_HIDDEN)
        if self.score_layers is not None and (
            not self.score_layers or any(i < 0 for i in self.score_layers)
        ):
            raise AdapterError(f"score_layers must be non-negative positions: {self.score_layers}")
        if self.setting not in ("private", "identity"):
            raise AdapterError(f"setting must be private or identity: {self.setting!r}")
        if self.n_parameters() > MAX_ADAPTER_PARAMS:
            raise AdapterError(
                f"adapter would have {self.n_parameters():,} parameters; "
                f"at most {MAX_ADAPTER_PARAMS:,} are accepted"
            )
        if self.selection not in ("least_attended", "random"):
            raise AdapterError(f"selection must be least_attended or random: {self.selection!r}")
        if self.objective not in ("po_gd", "ga_gd", "ga_kl"):
            raise AdapterError(f"objective must be po_gd, ga_gd or ga_kl: {self.objective!r}")
        if not 0.0 < self.threshold < 1.0:
            raise AdapterError(f"threshold must lie in (0, 1), got {self.threshold}")

    def _check_types(self) -> None:
        """Every field has its declared JSON type (an int is not a str, a bool is not an int)."""
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if kind == "int?list" and value is None:
                continue
            if not _has_type(value, kind):
                raise AdapterError(
                    f"{name} must be {_TYPE_WORDS[kind]}, got {type(value).__name__} {value!r:.40}"
                )

    def n_parameters(self) -> int:
        """The discriminator's and the token encoder's parameter count, from sizes alone."""
        d, c = self.hidden_size, self.disc_channels
        disc = 2 * d + (9 * d * c + c) + (9 * c * c + c) + (c + 1)
        h = self.encoder_hidden or d
        enc = (d * h + h + h * d + d) if self.use_encoder else 0
        return disc + enc


_FIELD_TYPES = {
    "family": "str",
    "hidden_size": "int",
    "base_fingerprint": "str",
    "k": "int",
    "per_layer": "bool",
    "score_layers": "int?list",
    "selection": "str",
    "threshold": "number",
    "use_discriminator": "bool",
    "use_encoder": "bool",
    "disc_channels": "int",
    "encoder_hidden": "int",
    "objective": "str",
    "setting": "str",
    "forget_ids": "strlist",
    "categories": "strlist",
    "pair_ids": "strlist",
    "base_model": "str",
    "seed": "int",
    "format_version": "int",
}
_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "bool": "true or false",
    "number": "a number",
    "int?list": "null or a list of integers",
    "strlist": "a list of strings",
}


def _has_type(value, kind: str) -> bool:
    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return is_int(value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return is_int(value) or isinstance(value, float)
    if kind == "int?list":
        return isinstance(value, list) and all(is_int(v) for v in value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _in_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise AdapterError(f"{name} must lie in {low}..{high:,}, got {value:,}")


def check_fits(config: CagulConfig, vlm: VLM, where: str | Path = "adapter") -> None:
    """Refuse, before any allocation, an adapter whose sizes are not the base model's."""
    if config.hidden_size != vlm.hidden_size:
        raise AdapterMismatchError(
            f"{where}: hidden_size {config.hidden_size} does not match the base model's "
            f"{vlm.hidden_size}"
        )
    if config.per_layer != (vlm.attention == "cross"):
        raise AdapterMismatchError(
            f"{where}: per_layer={config.per_layer} does not fit a {vlm.attention}-attention model"
        )
    n_layers = len(vlm.cross_modal_layers)
    if config.score_layers is not None and max(config.score_layers) >= n_layers:
        raise AdapterMismatchError(
            f"{where}: score_layers {config.score_layers} not in 0..{n_layers - 1}"
        )


def _patch_grid(tokens: torch.Tensor, layout: ImageLayout) -> torch.Tensor:
    rows, cols = layout.grid
    grid = tokens[layout.grid_index.to(tokens.device)]
    return grid.reshape(rows, cols, -1).permute(2, 0, 1)


class Discriminator(nn.Module):
    """A small CNN over an image's visual tokens laid on their patch grid: P(forget person)."""

    def __init__(self, d: int, channels: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.conv = nn.Sequential(
            nn.Conv2d(d, channels, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.GELU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(channels, 1)

    def forward(self, tokens: list[torch.Tensor], layouts: list[ImageLayout]) -> torch.Tensor:
        """Logits `[B]` for a list of `[n_i, d]` token tensors.

        Images with the same patch grid go through the CNN as one batch (one call per grid
        shape, not per image); the result is the same as one call per image."""
        if len(tokens) != len(layouts):
            raise ValueError(f"{len(tokens)} token tensors for {len(layouts)} layouts")
        groups: dict[tuple, list[int]] = {}
        for i, lay in enumerate(layouts):
            groups.setdefault(tuple(lay.grid), []).append(i)
        out: list[torch.Tensor | None] = [None] * len(tokens)
        for members in groups.values():
            x = torch.stack(
                [_patch_grid(self.norm(tokens[i].float()), layouts[i]) for i in members]
            )
            logits = self.head(self.conv(x)).reshape(-1)
            for j, i in enumerate(members):
                out[i] = logits[j]
        return torch.stack(out)


class TokenEncoder(nn.Module):
    """E_ψ: R^d → R^d, a one-hidden-layer MLP applied to each selected token."""

    def __init__(self, d: int, hidden: int = 0):
        super().__init__()
        hidden = hidden or d
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.float())


class UniformNoise(nn.Module):
    """The "without encoder" ablation: selected tokens become uniform noise over the range of
    the tokens they replace (seeded, so runs repeat)."""

    def __init__(self, seed: int = 0):
        super().__init__()
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = x.min().item(), x.max().item()
        noise = torch.rand(x.shape, generator=self.generator)
        return (lo + (hi - lo) * noise).to(x.device)


@dataclass
class Plan:
    """What the adapters decided for one batch (also what the demo shows)."""

    replacement: TokenReplacement | None
    probabilities: list[float]  # max over adapters of P(forget)
    flagged: list[bool]
    adapter_index: list[int | None]  # which stacked adapter transforms each sample
    indices: list[torch.Tensor | None]
    scores: list[torch.Tensor] | None  # [L, n] per sample, when computed


class CagulAdapter(nn.Module):
    """Discriminator + token encoder for one base model (the trainable part of CAGUL)."""

    def __init__(self, config: CagulConfig):
        super().__init__()
        self.config = config
        d = config.hidden_size
        self.discriminator = Discriminator(d, config.disc_channels)
        self.token_encoder: nn.Module = (
            TokenEncoder(d, config.encoder_hidden)
            if config.use_encoder
            else UniformNoise(config.seed)
        )

    @classmethod
    def for_model(cls, vlm: VLM, **overrides) -> CagulAdapter:
        torch.manual_seed(overrides.get("seed", 0))
        cfg = CagulConfig(
            family=vlm.family,
            hidden_size=vlm.hidden_size,
            base_fingerprint=base_fingerprint(vlm),
            per_layer=vlm.attention == "cross",
            base_model=str(vlm.path),
            **overrides,
        )
        return cls(cfg)

    def n_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- decisions ---------------------------------------------------------------------------
    def forget_probability(self, tokens: list[torch.Tensor], layouts) -> torch.Tensor:
        if not self.config.use_discriminator:
            return torch.ones(len(tokens))
        with torch.no_grad():
            return torch.sigmoid(self.discriminator(tokens, layouts)).cpu()

    def select(self, scores: torch.Tensor, generator: torch.Generator | None = None):
        c = self.config
        return select_tokens(
            scores,
            c.k,
            per_layer=c.per_layer,
            layers=c.score_layers,
            random_selection=c.selection == "random",
            generator=generator,
        )

    # ---- files -------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, dtype: torch.dtype | None = None) -> Path:
        """Write `adapter_config.json` + `adapter_model.safetensors` (and nothing else).

        `dtype` stores the weights in that precision (e.g. float16 to halve a shipped file);
        loading casts them back into the modules' float32.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            k: v.detach().cpu().to(dtype or v.dtype).contiguous()
            for k, v in self.state_dict().items()
        }
        save_file(state, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        digest = hashlib.sha256((out / ADAPTER_WEIGHTS).read_bytes()).hexdigest()
        body = {"method": "cagul", **asdict(self.config), "weights_sha256": digest}
        (out / ADAPTER_CONFIG).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        return out

    @classmethod
    def from_pretrained(cls, vlm: VLM, directory: str | Path) -> CagulAdapter:
        """Load an adapter for `vlm`; refuse a foreign, tampered or malformed one."""
        d = Path(directory)
        raw, weights = read_artifact_config(d, "cagul", AdapterError)
        cfg_file = d / ADAPTER_CONFIG
        known = {f.name for f in fields(CagulConfig)}
        unknown = set(raw) - known - {"method", "weights_sha256"}
        if unknown:
            raise AdapterError(f"{cfg_file} has unknown keys {sorted(unknown)}")
        required = [
            f.name for f in fields(CagulConfig) if f.default is f.default_factory is MISSING
        ]
        missing = [k for k in required if k not in raw]
        if missing:
            raise AdapterError(f"{cfg_file} lacks required keys {missing}")
        version = raw.get("format_version", FORMAT_VERSION)
        if isinstance(version, bool) or not isinstance(version, int):
            raise AdapterError(f"{cfg_file}: format_version must be an integer, got {version!r}")
        if version != FORMAT_VERSION:
            raise AdapterError(f"adapter format {version} is not supported")
        try:
            config = CagulConfig(**{k: v for k, v in raw.items() if k in known})
        except AdapterError as e:
            raise AdapterError(f"{cfg_file}: {e}") from None
        if config.family != vlm.family:
            raise AdapterMismatchError(
                f"adapter was trained on a {config.family} model; this base is {vlm.family}"
            )
        check_fits(config, vlm, d)
        if config.base_fingerprint != base_fingerprint(vlm):
            raise AdapterMismatchError(
                f"adapter {d} was trained on another base model ({config.base_model or '?'}); "
                f"its fingerprint does not match {vlm.path}"
            )
        state = load_checked_weights(weights, raw)
        adapter = cls(config)
        try:
            adapter.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ArtifactTamperedError(f"{weights} does not fit its config: {e}") from e
        return adapter.to(vlm.device).eval()


def vote(adapters: list[CagulAdapter], tokens, layouts) -> tuple[torch.Tensor, torch.Tensor]:
    """Each adapter's P(forget) per image `[A, B]`, and whether it is above its threshold."""
    probs = torch.stack([a.forget_probability(tokens, layouts) for a in adapters])
    above = probs > torch.tensor([a.config.threshold for a in adapters]).unsqueeze(1)
    return probs, above


def plan(vlm: VLM, adapters: list[CagulAdapter], batch: Batch, *, with_scores: bool = False):
    """Decide, per sample, whether and how the stacked `adapters` rewrite its visual tokens."""
    tokens = vlm.visual_tokens(batch)
    probs, above = vote(adapters, tokens, batch.layouts)
    masked = torch.where(above, probs, torch.full_like(probs, -1.0))
    best = masked.argmax(0)
    choice = [int(best[b]) if above[:, b].any() else None for b in range(len(batch))]
    scores = None
    needs_scores = any(
        c is not None and adapters[c].config.selection == "least_attended" for c in choice
    )
    if with_scores or needs_scores:
        scores = vlm.cross_modal_scores(batch)
    gen = torch.Generator().manual_seed(0)
    indices = [
        None
        if c is None
        else adapters[c].select(
            scores[b] if scores else torch.zeros(len(vlm.cross_modal_layers), len(tokens[b])), gen
        )
        for b, c in enumerate(choice)
    ]
    flagged = [c is not None for c in choice]
    replacement = None
    if any(flagged):
        replacement = TokenReplacement(
            module=None,
            indices=indices,
            modules=[None if c is None else adapters[c].token_encoder for c in choice],
        )
    return Plan(
        replacement=replacement,
        probabilities=probs.max(0).values.tolist(),
        flagged=flagged,
        adapter_index=choice,
        indices=indices,
        scores=scores,
    )

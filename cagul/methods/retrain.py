"""Retrain: the ideal baseline, the pre-trained (Pretrain) model fine-tuned on the retain set
only, as the demo bundle fine-tunes (`cagul.demo.finetune.finetune`, a fresh training template per
pair each epoch and VQA replay, `cagul.demo.bundle`'s recipe). It never saw the forget set, so what
it says about the forget people is what an unlearned model should say.

For the bundle's default split the bundle already ships that model (`models/retrain`, trained
on exactly that split's retain set, with the recipe's unshipped second population too), so
`train` stores it instead of spending the ~15 min again. Any other split is trained here.

The artifact holds the whole retrained model's weights in `adapter_model.safetensors` (it is a
full fine-tune: what Retrain costs) and is bound, like every artifact, to the base model the
request was made against (Finetune), with the Pretrain model's fingerprint recorded beside.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cagul.artifacts import (
    ADAPTER_WEIGHTS,
    ArtifactError,
    ArtifactTamperedError,
    base_fingerprint,
    read_artifact,
    write_artifact,
)
from cagul.data import PRIVATE_CATEGORIES
from cagul.methods.base import (
    Artifact,
    UnlearnedModel,
    request_fields,
)
from cagul.methods.lora import copy_vlm
from cagul.models import load_vlm


@dataclass
class RetrainArguments:
    """Where Pretrain (and the shipped Retrain) are, and the bundle's fine-tuning recipe."""

    pretrain_dir: str | None = field(
        default=None, metadata={"help": "the Pretrain model (None: `pretrain` beside the base)"}
    )
    shipped_dir: str | None = field(
        default=None,
        metadata={"help": "a shipped Retrain model (None: `retrain` beside the base)"},
    )
    use_shipped: bool = field(
        default=True, metadata={"help": "use the shipped model for the bundle's default split"}
    )
    epochs: int = field(default=70, metadata={"help": "fine-tuning epochs (the bundle's 70)"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate (the bundle's)"})
    batch_size: int = field(default=64, metadata={"help": "samples per step (the bundle's)"})
    replay: int = field(default=512, metadata={"help": "VQA probes replayed per epoch"})
    seed: int = field(default=0, metadata={"help": "shuffling and template draws"})


def _beside(vlm, name: str, given: str | None) -> Path:
    return Path(given) if given else Path(vlm.path).parent / name


def _bundle_default_split(shipped: Path, data_dir: Path | None) -> tuple[str, list[str]] | None:
    """(name, ids) of the split the shipped Retrain was trained for, read from the bundle."""
    bundle = shipped.parent.parent / "bundle.json"
    if not bundle.is_file() or data_dir is None or not (data_dir / "split.json").is_file():
        return None
    name = json.loads(bundle.read_text()).get("config", {}).get("split", "forget10")
    ids = json.loads((data_dir / "split.json").read_text()).get(name)
    return (name, sorted(ids)) if isinstance(ids, list) else None


def shipped_applies(split, shipped: Path, data_dir: Path | None) -> bool:
    """Whether the shipped Retrain model was trained on exactly this split's retain set."""
    if not (shipped / "config.json").is_file() or split.setting != "private":
        return False
    if set(split.private_categories) != set(PRIVATE_CATEGORIES):
        return False
    default = _bundle_default_split(shipped, data_dir)
    return default is not None and default[1] == sorted(split.forget_ids)


def _retrain(
    pretrain_dir: Path, split, args: RetrainArguments, data_dir, progress, check, device: str
):
    from cagul.data import load_probes
    from cagul.demo.bundle import template_drawer, vqa_samples
    from cagul.demo.finetune import FinetuneConfig, finetune

    vlm = load_vlm(pretrain_dir, device=device)
    probes_dir = Path(data_dir) / "probes" if data_dir else None
    vqa = (
        vqa_samples(load_probes(probes_dir).train, args.seed)
        if probes_dir and probes_dir.is_dir()
        else []
    )
    draw = template_drawer(split.retain_set, vqa, min(args.replay, len(vqa)), args.seed)
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)

    def tick(step: int, total: int, loss: float) -> None:
        if check:
            check()
        if progress:
            progress(step / max(1, total), f"retrain step {step}/{total} loss {loss:.3f}")

    stats = finetune(vlm, draw, cfg, progress=tick)
    return vlm, stats


def _save_weights(model, out: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})


def _fine_tuned_params(vlm) -> int:
    """Parameters the bundle's fine-tuning updates: all but the vision tower."""
    from cagul.demo.finetune import vision_params

    vision = {id(p) for p in vision_params(vlm)}
    return sum(p.numel() for p in vlm.model.parameters() if id(p) not in vision)


def _build_seconds(shipped: Path, epochs: int) -> dict:
    """What training the shipped model cost when the bundle was built (bundle.json)."""
    bundle = shipped.parent.parent / "bundle.json"
    seconds = json.loads(bundle.read_text()).get("stage_seconds", {}).get("retrain")
    if seconds is None:
        return {"epoch_seconds": None}
    return {"build_seconds": seconds, "epoch_seconds": round(seconds / max(1, epochs), 3)}


class Retrain:
    name = "retrain"
    config_class = RetrainArguments

    def train(
        self, vlm, split, config=None, *, out_dir, progress=None, check_cancel=None, data_dir=None
    ) -> Artifact:
        args = config or RetrainArguments()
        t0 = time.time()
        shipped = _beside(vlm, "retrain", args.shipped_dir)
        data = Path(data_dir) if data_dir else None
        if args.use_shipped and shipped_applies(split, shipped, data):
            if progress:
                progress(0.0, f"using the shipped Retrain model {shipped}")
            model_vlm, source, stats = load_vlm(shipped, device=str(vlm.device)), "shipped", {}
        else:
            pretrain = _beside(vlm, "pretrain", args.pretrain_dir)
            if not (pretrain / "config.json").is_file():
                raise ArtifactError(f"Retrain needs the Pretrain model; {pretrain} holds none")
            model_vlm, stats = _retrain(
                pretrain, split, args, data_dir, progress, check_cancel, str(vlm.device)
            )
            source = "trained"
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _save_weights(model_vlm.model, out)
        body = {
            "source": source,
            "retrain_model": str(shipped if source == "shipped" else ""),
            "pretrain_fingerprint": base_fingerprint(model_vlm) if source == "trained" else None,
            "training": asdict(args),
            **request_fields(split),
        }
        write_artifact(out, self.name, base_fingerprint(vlm), body)
        if source == "shipped":
            cost = _build_seconds(shipped, args.epochs)
        else:
            cost = {"epoch_seconds": round(stats["seconds"] / max(1, args.epochs), 3)}
        stats = {
            **stats,
            **cost,
            "source": source,
            "seconds": round(time.time() - t0, 2),
            "trainable_params": _fine_tuned_params(model_vlm),
        }
        return Artifact(out, stats)

    def load(self, vlm, directory) -> UnlearnedModel:
        config, state = read_artifact(vlm, directory, self.name)
        model_vlm = copy_vlm(vlm)
        try:
            model_vlm.model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ArtifactTamperedError(
                f"{directory}: weights do not fit the base model: {e}"
            ) from e
        return UnlearnedModel(self.name, model_vlm, config, _fine_tuned_params(model_vlm))


METHOD = Retrain()

"""The shared LoRA trainer of the fine-tuning baselines (GA, GA+GD, GA+KL, PO+GD, NPO, ViKeR).

Each baseline is a short file that says which answers its forget batch is labelled with and
what its loss is (`LoraMethod.loss`); everything else is here: LoRA (peft) on the language
model only, from the base model; one optimiser step per forget batch, paired with a retain
batch for the methods that use one (as open-unlearning pairs them); the early-stopping rule;
and saving / loading as a peft-style adapter directory with our integrity fields.

Defaults, scaled from FIUBench's (LoRA r 128, α 256, dropout 0.05, lr 1e-4, batch 4, 5
epochs) for the demo bundle's tiny model, and why:
* r 8, α 16: FIUBench's r is ~3 % of its 4096-wide model; 3 % of the bundle's 256 is 8, and
  α = 2r keeps its scale. r 128 would be half the width: no longer a low-rank update.
* lr 1e-3: FIUBench's LoRA lr is 10x its full fine-tuning lr (1e-5); the bundle's models were
  fine-tuned at 2e-3, and 10x that (2e-2) diverges on a model this small, so 1e-3 — not
  tuned, one setting for every baseline.
* batch 4, 5 epochs over the forget set, dropout 0.05: FIUBench's, unchanged.

Early stopping (GA-based losses: GA, GA+GD, GA+KL by default; `early_stop` switches it for
any method): every `check_every` optimiser steps, the mean per-token NLL of the true answers
of a fixed probe of forget pairs and of retain pairs is measured (teacher forcing, no
generation); training stops after the check when the forget NLL reached `stop_forget_nll`
(the answer is no longer what greedy decoding produces: every answer token has on average
probability ≤ e^-3 ≈ 5 % at the default 3.0) or when the retain NLL rose more than
`stop_retain_rise` above its value before training (the model is breaking beyond the forget
set). The weights at the stop are kept. Gradient ascent has no floor, so without a rule like
this it drives every answer to nonsense (the paper stops early for the same reason).

The unlearned model is a copy of the base model with the LoRA layers injected (the base stays
untouched, so before/after comparisons and other methods keep using it). On a 7B model the
copy doubles memory; merging into one copy per artifact is what a server would do.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from cagul import losses
from cagul.artifacts import (
    ADAPTER_WEIGHTS,
    ArtifactError,
    ArtifactTamperedError,
    base_fingerprint,
    read_artifact,
    write_artifact,
)
from cagul.data import REFUSALS, Split
from cagul.data.splits import Sample
from cagul.methods.base import (
    Artifact,
    CheckCancel,
    Progress,
    UnlearnedModel,
    request_fields,
)
from cagul.models import VLM
from cagul.models.base import Batch

LANGUAGE_MODEL_LINEARS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)


@dataclass
class LoraArguments:
    """LoRA and training settings of a fine-tuning baseline (see the module docstring)."""

    r: int = field(default=8, metadata={"help": "LoRA rank (FIUBench 128, scaled to the width)"})
    alpha: int = field(default=16, metadata={"help": "LoRA alpha (FIUBench 256: 2r)"})
    dropout: float = field(default=0.05, metadata={"help": "LoRA dropout (FIUBench)"})
    target_modules: str = field(
        default=LANGUAGE_MODEL_LINEARS,
        metadata={"help": "regex of the modules LoRA wraps: the language model's linears only"},
    )
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate (FIUBench 1e-4)"})
    epochs: int = field(default=5, metadata={"help": "passes over the forget set (FIUBench)"})
    batch_size: int = field(default=4, metadata={"help": "forget samples per step (FIUBench)"})
    retain_batch_size: int = field(
        default=4, metadata={"help": "retain samples paired with each forget batch"}
    )
    forget_weight: float = field(default=1.0, metadata={"help": "weight of the forget term"})
    retain_weight: float = field(default=1.0, metadata={"help": "weight of the retain term"})
    npo_beta: float = field(default=0.1, metadata={"help": "NPO's β"})
    early_stop: bool | None = field(
        default=None, metadata={"help": "stop by the rule above (None: on for GA-based losses)"}
    )
    stop_forget_nll: float = field(
        default=3.0, metadata={"help": "stop once the forget probe's NLL reaches this (nats)"}
    )
    stop_retain_rise: float = field(
        default=0.5, metadata={"help": "stop once the retain probe's NLL rose by this (nats)"}
    )
    check_every: int = field(default=2, metadata={"help": "optimiser steps between checks"})
    probe_size: int = field(default=16, metadata={"help": "pairs per early-stopping probe"})
    seed: int = field(default=0, metadata={"help": "LoRA init, shuffling and refusal draws"})

    def __post_init__(self) -> None:
        if self.r < 1 or self.batch_size < 1 or self.epochs < 0 or self.check_every < 1:
            raise ValueError("r, batch_size and check_every must be ≥ 1 and epochs ≥ 0")


@dataclass
class Step:
    """One optimiser step's inputs, handed to `LoraMethod.loss`."""

    vlm: VLM  # the LoRA model (gradients reach its LoRA weights only)
    forget: Batch  # labelled with `LoraMethod.forget_answers`
    retain: Batch | None  # true answers; None for methods without a retain term
    reference: Callable[[Batch], torch.Tensor]  # the base model's logits (no gradient)
    args: LoraArguments
    forget_samples: list[Sample]
    state: Any = None  # what `LoraMethod.prepare` computed (ViKeR's targets)

    def weighted(self, forget: torch.Tensor, retain: torch.Tensor):
        """The loss `forget_weight * forget + retain_weight * retain` and its logged terms: the
        shared tail of the baselines with one forget and one retain term (GradDiff's form)."""
        a = self.args
        total = a.forget_weight * forget + a.retain_weight * retain
        return total, {"forget": forget.item(), "retain": retain.item()}


def copy_vlm(vlm: VLM) -> VLM:
    """A VLM wrapper over a deep copy of `vlm`'s model (same tokenizer, processor, cache)."""
    new = copy.copy(vlm)
    new.model = copy.deepcopy(vlm.model)
    new.config = new.model.config
    return new


class LoraUnlearned(UnlearnedModel):
    """The base model with a LoRA adapter injected (in a copy); it answers directly."""

    def __init__(self, method: str, vlm: VLM, config: dict, peft_model, n_trainable: int):
        super().__init__(method, vlm, config, n_trainable)
        self.peft_model = peft_model


def _lora_config(args: LoraArguments):
    from peft import LoraConfig

    return LoraConfig(
        r=args.r,
        lora_alpha=args.alpha,
        lora_dropout=args.dropout,
        target_modules=args.target_modules,
        bias="none",
    )


def inject_lora(vlm: VLM, lora_config, seed: int = 0) -> tuple[VLM, Any]:
    """(a copy of `vlm` with LoRA layers, the peft model around it). LoRA's B starts at zero, so
    the copy answers exactly as the base until trained."""
    from peft import get_peft_model

    torch.manual_seed(seed)
    lvlm = copy_vlm(vlm)
    peft_model = get_peft_model(lvlm.model, lora_config)
    lvlm.model = peft_model.base_model.model  # the original class, LoRA layers inside
    return lvlm, peft_model


def _trainable(peft_model) -> list[torch.nn.Parameter]:
    return [p for p in peft_model.parameters() if p.requires_grad]


class LoraMethod:
    """A baseline over the shared trainer; subclasses set `name` and define `loss`."""

    name = ""
    config_class = LoraArguments
    uses_retain = True  # whether a retain batch is paired with each forget batch
    ga_based = False  # early stopping on by default
    refusal_answers = False  # label the forget batch with refusals instead of the truth

    def forget_answers(self, samples: list[Sample], rng: random.Random) -> list[str]:
        if self.refusal_answers:
            return [rng.choice(REFUSALS) for _ in samples]
        return [s.answer for s in samples]

    def prepare(self, vlm: VLM, split: Split, args: LoraArguments) -> Any:
        """Anything computed once from the base model before training (None by default)."""
        return None

    def loss(self, step: Step) -> tuple[torch.Tensor, dict]:
        """(scalar loss, per-term values for the history)."""
        raise NotImplementedError

    def train(
        self, vlm, split, config=None, *, out_dir, progress=None, check_cancel=None, data_dir=None
    ) -> Artifact:
        return train_lora(
            self,
            vlm,
            split,
            config or self.config_class(),
            out_dir=out_dir,
            progress=progress,
            check_cancel=check_cancel,
        )

    def load(self, vlm: VLM, directory: str | Path) -> LoraUnlearned:
        return load_lora(self.name, vlm, directory)


def _reference(peft_model, lvlm: VLM) -> Callable[[Batch], torch.Tensor]:
    def ref(batch: Batch) -> torch.Tensor:
        with torch.no_grad(), peft_model.disable_adapter():
            return lvlm.forward(batch)

    return ref


def _probe(samples: list[Sample], n: int) -> list[Sample]:
    if len(samples) <= n:
        return list(samples)
    step = len(samples) / n
    return [samples[int(i * step)] for i in range(n)]


def probe_nll(lvlm: VLM, samples: list[Sample], bs: int = 16) -> float | None:
    """Mean answer NLL of `lvlm` on `samples` (None when there are none)."""
    if not samples:
        return None
    vals = []
    with torch.no_grad():
        for i in range(0, len(samples), bs):
            chunk = samples[i : i + bs]
            batch = lvlm.prepare(
                [s.image_path for s in chunk],
                [s.question for s in chunk],
                [s.answer for s in chunk],
            )
            vals += losses.nll(lvlm.forward(batch), batch.labels).tolist()
    return sum(vals) / len(vals)


class _EarlyStop:
    """The rule of the module docstring, on fixed forget and retain probes."""

    def __init__(self, lvlm: VLM, split: Split, args: LoraArguments):
        self.lvlm, self.args = lvlm, args
        self.forget = _probe(split.forget_set, args.probe_size)
        self.retain = _probe(split.retain_set, args.probe_size)
        self.retain_start = probe_nll(lvlm, self.retain)
        self.checks: list[dict] = []

    def reason(self, step: int) -> str | None:
        f, r = probe_nll(self.lvlm, self.forget), probe_nll(self.lvlm, self.retain)
        self.checks.append({"step": step, "forget_nll": f, "retain_nll": r})
        if f is not None and f >= self.args.stop_forget_nll:
            return f"forget NLL {f:.3f} ≥ {self.args.stop_forget_nll} at step {step}"
        if (
            r is not None
            and self.retain_start is not None
            and r - self.retain_start > self.args.stop_retain_rise
        ):
            return (
                f"retain NLL rose {r - self.retain_start:.3f} > {self.args.stop_retain_rise}"
                f" at step {step}"
            )
        return None


def _batches(method: LoraMethod, split: Split, args: LoraArguments, rng: random.Random):
    """Per epoch, the forget set in `batch_size` chunks, each with its retain chunk (the retain
    set is walked in a shuffled cycle, so every retain pair comes round)."""
    retain = list(split.retain_set)
    rng.shuffle(retain)
    pos = 0
    for epoch in range(args.epochs):
        order = list(split.forget_set)
        rng.shuffle(order)
        for i in range(0, len(order), args.batch_size):
            chunk = order[i : i + args.batch_size]
            r_chunk = []
            if method.uses_retain and retain:
                for _ in range(args.retain_batch_size):
                    r_chunk.append(retain[pos % len(retain)])
                    pos += 1
            yield epoch, chunk, r_chunk


def train_lora(
    method: LoraMethod,
    vlm: VLM,
    split: Split,
    args: LoraArguments,
    *,
    out_dir: str | Path,
    progress: Progress = None,
    check_cancel: CheckCancel = None,
) -> Artifact:
    """Train a LoRA adapter on `vlm` with `method`'s loss; save it to `out_dir`."""
    if not split.forget_set:
        raise ValueError("the split has no forget samples")
    t0 = time.time()
    fingerprint = base_fingerprint(vlm)
    state = method.prepare(vlm, split, args)
    lvlm, peft_model = inject_lora(vlm, _lora_config(args), args.seed)
    params = _trainable(peft_model)
    opt = torch.optim.AdamW(params, lr=args.lr)
    rng = random.Random(args.seed)
    early = args.early_stop if args.early_stop is not None else method.ga_based
    stopper = _EarlyStop(lvlm, split, args) if early else None
    ref = _reference(peft_model, lvlm)
    per_epoch = math.ceil(len(split.forget_set) / args.batch_size)
    total, step, stop_reason, history = per_epoch * args.epochs, 0, None, []
    epoch_t: dict[int, float] = {}
    peft_model.train()
    for epoch, chunk, r_chunk in _batches(method, split, args, rng):
        te = time.time()
        forget = lvlm.prepare(
            [s.image_path for s in chunk],
            [s.question for s in chunk],
            method.forget_answers(chunk, rng),
        )
        retain = None
        if r_chunk:
            retain = lvlm.prepare(
                [s.image_path for s in r_chunk],
                [s.question for s in r_chunk],
                [s.answer for s in r_chunk],
            )
        loss, terms = method.loss(Step(lvlm, forget, retain, ref, args, chunk, state))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        history.append({"step": step, "epoch": epoch + 1, "loss": loss.item(), **terms})
        epoch_t[epoch] = epoch_t.get(epoch, 0.0) + time.time() - te
        if check_cancel:
            check_cancel()
        if progress:
            progress(
                step / max(1, total),
                f"{method.name} epoch {epoch + 1}/{args.epochs} loss {loss.item():.3f}",
            )
        if stopper and step % args.check_every == 0:
            peft_model.eval()
            stop_reason = stopper.reason(step)
            peft_model.train()
            if stop_reason:
                break
    peft_model.eval()
    for p in params:
        p.requires_grad_(False)
    save_lora(peft_model, args, out_dir, method.name, fingerprint, split)
    stats = {
        "seconds": round(time.time() - t0, 2),
        "epoch_seconds": round(sum(epoch_t.values()) / max(1, len(epoch_t)), 3),
        "trainable_params": sum(p.numel() for p in params),
        "steps": step,
        "planned_steps": total,
        "stopped_early": stop_reason is not None,
        "stop_reason": stop_reason,
        "early_stopping": stopper.checks if stopper else None,
        "history": history,
        "arguments": asdict(args),
    }
    return Artifact(Path(out_dir), stats)


def _jsonable(obj):
    return json.loads(
        json.dumps(obj, default=lambda v: sorted(v) if isinstance(v, set) else str(v))
    )


def save_lora(
    peft_model, args: LoraArguments, out_dir, method: str, fingerprint: str, split: Split
) -> Path:
    """A peft adapter directory: peft's LoRA config keys and state-dict names, plus ours."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(peft_model).items()
    }
    save_file(state, str(out / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    body = {
        **_jsonable(peft_model.peft_config["default"].to_dict()),
        "training": asdict(args),
        **request_fields(split),
    }
    return write_artifact(out, method, fingerprint, body)


def load_lora(method: str, vlm: VLM, directory: str | Path) -> LoraUnlearned:
    """The LoRA model an artifact holds, over a copy of `vlm`; refuses foreign or altered ones."""
    from peft import set_peft_model_state_dict

    config, state = read_artifact(vlm, directory, method)
    known = {f.name for f in fields(LoraArguments)}
    try:
        args = LoraArguments(**{k: v for k, v in config.get("training", {}).items() if k in known})
    except (TypeError, ValueError) as e:
        raise ArtifactError(f"{directory}: bad training arguments: {e}") from e
    lvlm, peft_model = inject_lora(vlm, _lora_config(args), args.seed)
    expected = set(get_lora_keys(peft_model))
    if set(state) != expected:
        raise ArtifactTamperedError(f"{directory}: weights do not fit the LoRA config")
    try:
        set_peft_model_state_dict(peft_model, state)
    except RuntimeError as e:
        raise ArtifactTamperedError(f"{directory}: weights do not fit the LoRA config: {e}") from e
    peft_model.eval()
    n = sum(v.numel() for v in state.values())
    for p in peft_model.parameters():
        p.requires_grad_(False)
    return LoraUnlearned(method, lvlm, config, peft_model, n)


def get_lora_keys(peft_model) -> list[str]:
    from peft import get_peft_model_state_dict

    return list(get_peft_model_state_dict(peft_model))

"""Which runs a benchmark makes: the paper's main table, its ablations and its sweeps.

A `Run` is one model to evaluate: a base model (Pretrain, Finetune) or one method trained on
one forget split with one seed. `plan` lists every run of a benchmark once; rows of different
tables that are the same run (the ablation's reference CAGUL is also the k sweep's default-k
point and the forget sweep's default-split point) share it.

`Settings` holds what differs between the full benchmark and `--quick`: the seeds, the sweep
points, CAGUL's schedule and how much of the retain set is evaluated. The full benchmark trains
the main table's CAGUL with its defaults (2 + 200 epochs) and the ablations and sweeps with a
shorter schedule (`sweep_epochs`), every variant of a table under the same schedule, so each
table compares like with like; the reference row of those tables is CAGUL on that schedule.
The seeds: PO+GD (the strongest baseline) in the main table and CAGUL's reference row of the
ablation table run over every seed; CAGUL on its full schedule runs once (three runs of it
alone take half an hour on two CPU cores).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: The main table's methods, in the paper's order (None: a base model, evaluated only).
MAIN = (
    ("Pretrain", None),
    ("Finetune", None),
    ("Retrain", "retrain"),
    ("GA", "ga"),
    ("GA+GD", "ga_gd"),
    ("GA+KL", "ga_kl"),
    ("PO+GD", "po_gd"),
    ("NPO", "npo"),
    ("ViKeR", "viker"),
    ("CAGUL", "cagul"),
)

#: CAGUL's ablations (the paper's Table 4): the switch each one turns.
ABLATIONS = (
    ("CAGUL", {}),
    ("w/o discriminator", {"use_discriminator": False}),
    ("w/o encoder (uniform noise)", {"use_encoder": False}),
    ("random selection", {"selection": "random"}),
    ("with GA+GD", {"objective": "ga_gd"}),
    ("with GA+KL", {"objective": "ga_kl"}),
)


@dataclass
class Settings:
    """What one benchmark measures and how long it trains."""

    split: str = field(default="forget10", metadata={"help": "the main and ablation split"})
    seeds: tuple[int, ...] = field(
        default=(0, 1, 2),
        metadata={"help": "seeds of the strongest baseline and CAGUL's ablation reference"},
    )
    strongest_baseline: str = field(
        default="po_gd",
        metadata={"help": "the baseline run over every seed: PO+GD, the only one that forgets"},
    )
    ks: tuple[int, ...] = field(default=(2, 4, 8, 12), metadata={"help": "k sweep points"})
    forget_splits: tuple[str, ...] = field(
        default=("forget1", "forget5", "forget10", "forget15", "forget20"),
        metadata={"help": "forget-size sweep points (nested named splits)"},
    )
    k: int | None = field(default=None, metadata={"help": "CAGUL's k (None: its default)"})
    cagul_epochs: int | None = field(
        default=None, metadata={"help": "main-table CAGUL joint epochs (None: its default)"}
    )
    cagul_disc_epochs: int | None = field(
        default=None, metadata={"help": "CAGUL discriminator-only epochs (None: its default)"}
    )
    sweep_epochs: int = field(
        default=50, metadata={"help": "joint epochs of every ablation and sweep run"}
    )
    max_retain: int | None = field(
        default=200, metadata={"help": "retain pairs evaluated, evenly spaced (None: all)"}
    )
    method_overrides: dict = field(
        default_factory=dict,
        metadata={"help": "per method name, config fields to override (tests: tiny settings)"},
    )


QUICK = Settings(
    seeds=(0,),
    ks=(4, 8),
    forget_splits=("forget1", "forget10"),
    cagul_epochs=6,
    cagul_disc_epochs=1,
    sweep_epochs=6,
    max_retain=60,
)


@dataclass(frozen=True)
class Run:
    """One model to evaluate; `key` identifies it across tables."""

    label: str
    method: str | None  # None: evaluate the base model `base` as it is
    base: str = "finetune"  # finetune | pretrain
    split: str = "forget10"
    seed: int = 0
    k: int | None = None
    epochs: int | None = None  # CAGUL's joint epochs (None: the method's default)
    disc_epochs: int | None = None
    options: tuple[tuple[str, object], ...] = ()  # CAGUL adapter switches, sorted

    @property
    def key(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in self.options)
        return (
            f"{self.method or self.base}|{self.split}|s{self.seed}|k{self.k}|"
            f"e{self.epochs}|d{self.disc_epochs}|{opts}"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "options": dict(self.options)}


def _cagul(s: Settings, label: str, *, k: int, epochs, split=None, seed=0, options=None) -> Run:
    return Run(
        label,
        "cagul",
        split=split or s.split,
        seed=seed,
        k=k,
        epochs=epochs,
        disc_epochs=s.cagul_disc_epochs,
        options=tuple(sorted((options or {}).items())),
    )


def plan(s: Settings, default_k: int) -> dict[str, list[Run]]:
    """Per table (main, ablation, sweep_k, sweep_forget), its runs in row order; CAGUL runs
    name their k (`s.k`, else the model's `default_k`) so equal runs are recognised."""
    k = s.k or default_k
    main = []
    for label, method in MAIN:
        if method is None:
            main.append(Run(label, None, base=label.lower(), split=s.split))
            continue
        seeds = s.seeds if method == s.strongest_baseline else s.seeds[:1]
        for seed in seeds:
            if method == "cagul":
                main.append(_cagul(s, label, k=k, epochs=s.cagul_epochs, seed=seed))
            else:
                main.append(Run(label, method, split=s.split, seed=seed))
    e = s.sweep_epochs
    ablation = [_cagul(s, "CAGUL", k=k, epochs=e, seed=seed) for seed in s.seeds]
    ablation += [_cagul(s, label, k=k, epochs=e, options=opts) for label, opts in ABLATIONS[1:]]
    sweep_k = [_cagul(s, f"k={n}", k=n, epochs=e) for n in s.ks]
    sweep_forget = [_cagul(s, name, k=k, epochs=e, split=name) for name in s.forget_splits]
    return {"main": main, "ablation": ablation, "sweep_k": sweep_k, "sweep_forget": sweep_forget}


def unique_runs(tables: dict[str, list[Run]]) -> list[Run]:
    """Every run once, in first-appearance order."""
    runs: dict[str, Run] = {}
    for rows in tables.values():
        for r in rows:
            runs.setdefault(r.key, r)
    return list(runs.values())

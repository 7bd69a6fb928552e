"""The cost of unlearning: CAGUL against PO+GD (LoRA) on the same base model and forget people.

In one run, side by side, on a tiny Qwen2.5-VL built from config at the demo bundle's sizes
(hidden 256, 4 layers, vision tower 128 x 4, vocabulary 2000, 112 px faces; random weights: the
values do not matter for time and memory) and synthetic datasets of 30, 60 and 120 people
(retain set x1, x2, x4) with the same 3 forget people in the private setting (the demo's
forget10 proportions: 21 forget pairs, 39 non-private, 579 retain at x1), it trains:

* CAGUL (`get_method("cagul")`, `CagulMethodConfig` with its default k and training settings
  but `epochs`): 2 discriminator-only epochs (its default) + E joint epochs;
* PO+GD (`get_method("po_gd")`, `LoraArguments` defaults but `epochs`): E epochs over the
  forget set, each batch of 4 forget pairs paired with 4 retain pairs;

with the same E for both (`--epochs`, default 2), `--reps` times each, every training in a
fresh subprocess per (method, size) so that its memory is its own. Reported per run: wall time
of `Method.train` (setup, training and writing the artifact; the median of the reps),
seconds per epoch (the trainers' own `epoch_seconds`: CAGUL's joint epochs, each one
discriminator epoch over every cached image view plus one encoder epoch; PO+GD's epochs),
language-model passes per epoch, trainable parameters, and peak memory.

Peak memory on CPU is the growth of the subprocess's resident set during its first training:
the kernel's high-water mark (VmHWM) is reset just before `train` (`/proc/self/clear_refs`,
5) and VmHWM after it minus VmRSS before it is reported; it counts everything the process
touched (torch tensors, the LoRA copy of the model, Python objects, allocator slack), not only
live tensors. Later reps in the same process reuse freed memory, so only the first is measured.
On CUDA (`--device cuda`) it is `torch.cuda.max_memory_allocated` growth instead.

Each method at its own default schedule is measured, not extrapolated, on the demo bundle's
trained model and its forget10 (`--seeds`, default 0, 1, 2; one subprocess per method): CAGUL
(2 discriminator epochs, then joint epochs until its verification check passes and a short
consolidation, `epochs` a cap) and PO+GD (5 epochs). Each CAGUL run is also evaluated (forget
EM, APE, non-private EM, retain EM on 200 retain pairs, perturbed-image leak) against the
bounds every seed must meet; `ratios.cagul_to_po_gd_default_schedule_wall_ratio` is the ratio
of the medians. `full_size_params` counts, on the meta device from the published configs
hard-coded below, a default CAGUL adapter at Qwen2.5-VL-7B's and Llama-3.2-11B-Vision's hidden
size against LoRA r 128 on every linear layer of their language models (FIUBench's setting).
One more CAGUL run at x1 (2 + 1 epochs) under cProfile gives where its time goes: caching the
discriminator's image views, token selection, discriminator steps, and the joint epoch's
encoder steps (batch preparation, language-model forward, backward, optimiser).

Usage::

    python -m benchmarks.unlearning_cost [--reps 3] [--epochs 2] [--threads 1] [--jobs 1]
        [--seeds 0,1,2] [--out benchmarks/results/unlearning_cost.json]
    python -m benchmarks.unlearning_cost --quick --out /tmp/uc.json   # a small smoke grid
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_WALL_RATIO = 1.0  # issue 34's goal: CAGUL at most PO+GD's wall time, default schedules
MUST_WALL_RATIO = 3.0  # what issue 34 must reach
GOAL_X4_RATIO = 1.2  # CAGUL's wall time at x4 the retain set, over x1
CAGUL_DISC_EPOCHS = 2  # CagulTrainingArguments' default
FORGET_PEOPLE = 3  # the demo bundle's forget10 of 30 people


def _status_kb(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(key + r":\s+(\d+)", text).group(1))


class _PeakMemory:
    """Peak memory growth of one call: VmHWM reset to VmRSS, then VmHWM - VmRSS before
    (CPU), or torch.cuda.max_memory_allocated - memory_allocated before (CUDA); in MiB."""

    def __init__(self, device: str):
        self.device, self.how = device, None

    def __enter__(self):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
            self.how = "torch.cuda.max_memory_allocated growth"
            return self
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current VmRSS
            self.how = "VmHWM growth after clear_refs reset (resident set, whole process)"
        except OSError:
            self.how = "ru_maxrss - VmRSS before (lifetime peak; an upper bound)"
        self.before = _status_kb("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        elif self.how.startswith("VmHWM"):
            peak = _status_kb("VmHWM") * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.mib = round(max(0, peak - self.before) / 2**20, 1)
        return False


def _config(method: str, epochs: int):
    from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
    from cagul.pipeline import method_config

    if method == "cagul":
        return CagulMethodConfig(
            training=CagulTrainingArguments(disc_epochs=CAGUL_DISC_EPOCHS, epochs=epochs)
        )
    return method_config(method, epochs=epochs)


def _lm_passes_per_epoch(method: str, stats: dict, split) -> int:
    if method == "cagul":
        return stats["lm_passes_per_epoch"]
    a = stats["arguments"]
    steps = -(-len(split.forget_set) // a["batch_size"])
    return len(split.forget_set) + steps * min(a["retain_batch_size"], len(split.retain_set))


# Where each part of CAGUL's training lives (function, file); a part not found is listed
# under "missing" instead of reading 0.
_PARTS = {
    "view_token_caching": [("view_tokens", "cagul/methods/cagul/train_discriminator.py")],
    "token_selection": [("encoder_samples", "cagul/methods/cagul/train_encoder.py")],
    "discriminator_epoch": [("epoch", "cagul/methods/cagul/train_discriminator.py")],
    "encoder_epoch": [("epoch", "cagul/methods/cagul/train_encoder.py")],
}


def _cagul_breakdown(prof: cProfile.Profile, total: float) -> dict:
    """Seconds of one profiled CAGUL training by part (cumulative times from cProfile)."""
    st = pstats.Stats(prof).stats
    missing = []

    def path(key) -> str:
        return key[0].replace("\\", "/")

    def find(name: str, file_part: str) -> list:
        # A file, or with a trailing "/" any file under that folder.
        where = (
            (lambda p: file_part in p)
            if file_part.endswith("/")
            else (lambda p: p.endswith(file_part))
        )
        return [k for k in st if k[2] == name and where(path(k))]

    def part(name: str) -> list:
        for fn, file_part in _PARTS[name]:
            if keys := find(fn, file_part):
                return keys
        missing.append(name)
        return []

    def cum(keys: list) -> tuple[float, int]:
        return sum(st[k][3] for k in keys), sum(st[k][1] for k in keys)

    def called_from(name: str, file_part: str, callers: list) -> float:
        keys = find(name, file_part)
        if not keys:
            missing.append(name)
        return sum(st[k][4][c][3] for k in keys for c in callers if c in st[k][4])

    views, _ = cum(part("view_token_caching"))
    select, _ = cum(part("token_selection"))
    disc, disc_calls = cum(part("discriminator_epoch"))
    enc_keys = part("encoder_epoch")
    enc, enc_calls = cum(enc_keys)
    # The discriminator's perturbed views are drawn in a list comprehension (its own frame on
    # Python < 3.12) of cache_views (train_cagul); the encoder's perturbed
    # views count as selection.
    start = min((k[1] for k in find("train_cagul", "cagul/methods/cagul/train.py")), default=10**9)
    perturb = sum(
        v[3]
        for k in find("random_perturbation", "cagul/perturb.py")
        for c, v in st[k][4].items()
        if path(c).endswith("cagul/methods/cagul/train_discriminator.py")
        or (
            path(c).endswith("cagul/methods/cagul/train.py")
            and c[1] >= start
            and c[2] in ("train_cagul", "<listcomp>")
        )
    )
    parts = {
        "view_perturbation_s": perturb,
        "view_token_caching_s": views,
        "token_selection_s": select,
        "discriminator_epochs_s": disc,
        "encoder_epochs_s": enc,
        "encoder_prepare_s": called_from("prepare", "cagul/models/", enc_keys),
        "encoder_lm_forward_s": called_from("forward", "cagul/models/", enc_keys),
        "encoder_backward_s": called_from("backward", "torch/_tensor.py", enc_keys),
    }
    parts["encoder_other_s"] = parts["encoder_epochs_s"] - sum(
        parts[k] for k in ("encoder_prepare_s", "encoder_lm_forward_s", "encoder_backward_s")
    )
    top = (
        "view_perturbation_s",
        "view_token_caching_s",
        "token_selection_s",
        "discriminator_epochs_s",
        "encoder_epochs_s",
    )
    parts["other_s"] = total - sum(parts[k] for k in top)
    out = {k: round(v, 3) for k, v in parts.items()}
    out["total_s"] = round(total, 3)
    out["discriminator_epoch_calls"] = disc_calls
    out["encoder_epoch_calls"] = enc_calls
    out["missing"] = missing
    out["share"] = {
        k[:-2]: round(v / total, 3) for k, v in parts.items() if k in top or k == "other_s"
    }
    return out


# Published config values (the models' config.json on the Hugging Face Hub), hard-coded so
# that nothing is downloaded: the language model's sizes and the width of the visual tokens
# that enter it (CAGUL's hidden size d).
FULL_SIZE_MODELS = {
    "Qwen2.5-VL-7B-Instruct": {
        "family": "qwen2_5_vl",
        "text": {
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "vocab_size": 152064,
        },
        "attention": "joint",
    },
    "Llama-3.2-11B-Vision-Instruct": {
        "family": "mllama",
        "text": {
            "hidden_size": 4096,
            "intermediate_size": 14336,
            "num_hidden_layers": 40,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "vocab_size": 128256,
            "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38],
        },
        "attention": "cross",
    },
}
LORA_FULL_RANK, LORA_FULL_ALPHA = 128, 256  # FIUBench's LoRA setting


def _text_model(family: str, sizes: dict):
    """The language model alone, built from `sizes` on the meta device (no memory, no weights)."""
    import torch

    if family == "qwen2_5_vl":
        from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLTextConfig
        from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLTextModel

        cls, cfg = Qwen2_5_VLTextModel, Qwen2_5_VLTextConfig(**sizes)
    else:
        from transformers.models.mllama.configuration_mllama import MllamaTextConfig
        from transformers.models.mllama.modeling_mllama import MllamaTextModel

        cls, cfg = MllamaTextModel, MllamaTextConfig(**sizes)
    with torch.device("meta"):
        return cls(cfg)


def full_size_params() -> dict:
    """Trainable parameters of a default CAGUL adapter (discriminator + encoder at the model's
    hidden size) against LoRA r 128 on every linear layer of the language model, per model."""
    import torch
    from torch import nn

    from cagul.methods.cagul.adapter import CagulAdapter, CagulConfig

    out = {}
    for name, spec in FULL_SIZE_MODELS.items():
        lm = _text_model(spec["family"], spec["text"])
        linears = [m for m in lm.modules() if isinstance(m, nn.Linear)]
        lora = sum(LORA_FULL_RANK * (m.in_features + m.out_features) for m in linears)
        d = spec["text"]["hidden_size"]
        cfg = CagulConfig(
            family=spec["family"],
            hidden_size=d,
            base_fingerprint="meta",
            per_layer=spec["attention"] == "cross",
        )
        with torch.device("meta"):
            cagul = CagulAdapter(cfg).n_trainable()
        out[name] = {
            "hidden_size": d,
            "lm_parameters": sum(p.numel() for p in lm.parameters()),
            "lora_linear_layers": len(linears),
            "lora_rank": LORA_FULL_RANK,
            "lora_alpha": LORA_FULL_ALPHA,
            "lora_params": lora,
            "cagul_params": cagul,
            "cagul_formula_params": cfg.n_parameters(),
            "cagul_to_lora_params_ratio": round(cagul / lora, 4),
        }
    return out


def worker(spec: dict) -> dict:
    """One (method, dataset) cell in this fresh process: `reps` trainings (and a profile)."""
    import torch

    from cagul.data import load_dataset, make_split
    from cagul.methods import get_method
    from cagul.models import load_vlm

    torch.set_num_threads(spec["threads"])
    vlm = load_vlm(spec["model"], device=spec["device"])
    ds = load_dataset(spec["data"])
    split = make_split(ds, spec["forget_ids"], "private")
    method = get_method(spec["method"])
    if spec.get("seeds"):
        return _default_schedule_cell(spec, vlm, split, method)
    runs = []
    for rep in range(spec["reps"]):
        config = _config(spec["method"], spec["epochs"])
        with tempfile.TemporaryDirectory() as out:
            prof = cProfile.Profile() if spec.get("profile") else None
            mem = _PeakMemory(spec["device"])
            with mem:
                if prof:
                    prof.enable()
                t = time.perf_counter()
                art = method.train(vlm, split, config, out_dir=out, data_dir=spec["data"])
                seconds = time.perf_counter() - t
                if prof:
                    prof.disable()
        stats = art.stats
        run = {
            "seconds": round(seconds, 3),
            "epoch_seconds": stats["epoch_seconds"],
            "trainable_params": stats["trainable_params"],
            "lm_passes_per_epoch": _lm_passes_per_epoch(spec["method"], stats, split),
        }
        if spec["method"] == "cagul":
            run.update(views=stats["views"], encoder_samples=stats["encoder_samples"])
        else:
            run.update(steps=stats["steps"])
        if rep == 0:
            run.update(peak_mib=mem.mib, peak_measure=mem.how)
        if prof:
            run["breakdown"] = _cagul_breakdown(prof, seconds)
        runs.append(run)
    return {
        "runs": runs,
        "forget": len(split.forget_set),
        "nonprivate": len(split.nonprivate_set),
        "retain": len(split.retain_set),
        "individuals": len(ds.ids),
    }


def _default_schedule_cell(spec: dict, vlm, split, method) -> dict:
    """One method at its own default schedule on the demo bundle, once per seed: the wall time
    of `Method.train`; for CAGUL also its stopping epoch and the evaluation the acceptance
    bounds read (forget EM, APE, non-private EM, retain EM on 200 retain pairs, perturbed-image
    leak; no general probes, they do not depend on the schedule)."""
    from cagul.evaluate import evaluate_unlearned
    from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
    from cagul.pipeline import method_config

    runs = []
    for seed in spec["seeds"]:
        if spec["method"] == "cagul":
            config = CagulMethodConfig(training=CagulTrainingArguments(seed=seed))
        else:
            config = method_config(spec["method"], seed=seed)
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            art = method.train(vlm, split, config, out_dir=out, data_dir=spec["data"])
            seconds = time.perf_counter() - t
            run = {"seed": seed, "seconds": round(seconds, 2)}
            st = art.stats
            if spec["method"] != "cagul":
                run["steps"] = st.get("steps")
                runs.append(run)
                continue
            t = time.perf_counter()
            rep = evaluate_unlearned(
                vlm, art.model, split, None, base=False, max_retain=200, progress=False
            )
            run.update(
                eval_seconds=round(time.perf_counter() - t, 2),
                setup_seconds=st["setup_seconds"],
                check_seconds=st["check_seconds"],
                verified_epoch=st["verified_epoch"],
                stopped_epoch=st["stopped_epoch"],
                verified=st["verified"],
                lm_passes=st["lm_passes"],
                checks=st["checks"],
                forget_em=rep["forget"]["em"],
                ape=rep["forget"]["ape"],
                nonprivate_em=rep["nonprivate"]["em"],
                retain_em=rep["retain"]["em"],
                leak=rep["leak"]["perturbed_image"],
                leak_by_perturbation=rep["leak"].get("by_perturbation"),
            )
            run["bounds_met"] = _bounds_met(run)
        runs.append(run)
    return {
        "runs": runs,
        "forget": len(split.forget_set),
        "nonprivate": len(split.nonprivate_set),
        "retain": len(split.retain_set),
    }


# The acceptance bounds every seed of the default CAGUL schedule must meet (issue 34).
BOUNDS = {
    "forget_em": ("<=", 0.05),
    "ape": ("<=", 0.10),
    "nonprivate_em": (">=", 0.95),
    "retain_em": (">=", 0.98),
    "leak": ("<=", 0.10),
}


def _bounds_met(run: dict) -> dict:
    return {k: (run[k] <= v if op == "<=" else run[k] >= v) for k, (op, v) in BOUNDS.items()}


def _spawn(spec: dict, tmp: Path, name: str) -> dict:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"])}
    subprocess.run(
        [sys.executable, "-m", "benchmarks.unlearning_cost", "--worker", str(path)],
        check=True,
        env=env,
    )
    return json.loads((tmp / f"{name}.out.json").read_text())


def _corpus(ds) -> list[str]:
    from cagul.data import REFUSALS
    from cagul.data.templates import FIELDS

    texts = [q for f in FIELDS for q in f.train_questions + f.paraphrase_questions]
    for ind in ds:
        for qa in ind.qa_list:
            texts += [qa.answer, qa.paraphrased_answer, *qa.perturbed_answer]
    return texts + list(REFUSALS)


def _summary(cell: dict) -> dict:
    runs = cell["runs"]
    med = lambda k: round(statistics.median(r[k] for r in runs), 3)  # noqa: E731
    first = runs[0]
    out = {
        "seconds": med("seconds"),
        "epoch_seconds": med("epoch_seconds"),
        "seconds_all": [r["seconds"] for r in runs],
        "trainable_params": first["trainable_params"],
        "lm_passes_per_epoch": first["lm_passes_per_epoch"],
        "peak_mib": first["peak_mib"],
        "peak_measure": first["peak_measure"],
    }
    for k in ("views", "encoder_samples", "steps"):
        if k in first:
            out[k] = first[k]
    return out


def _run_cells(plan: list, tmp: Path, jobs: int, in_process: bool) -> dict:
    """Every cell of `plan`, `jobs` at a time (each in its own subprocess unless
    `in_process`, which runs them one after the other)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(item):
        name, spec = item
        t = time.perf_counter()
        out = worker(spec) if in_process else _spawn(spec, tmp, name)
        print(f"  {name}: {time.perf_counter() - t:.1f} s (cell)", flush=True)
        return name, out

    if in_process or jobs <= 1:
        return dict(one(item) for item in plan)
    with ThreadPoolExecutor(jobs) as pool:
        return dict(pool.map(one, plan))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", default="benchmarks/results/unlearning_cost.json")
    ap.add_argument("--reps", type=int, default=3, help="trainings per cell (median)")
    ap.add_argument(
        "--epochs",
        type=int,
        default=2,
        help="joint epochs (CAGUL, after its 2 discriminator epochs) = PO+GD epochs",
    )
    ap.add_argument("--people", type=int, default=30, help="individuals at x1 (the demo's 30)")
    ap.add_argument("--scales", default="1,2,4", help="retain set multipliers")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every training")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-profile", action="store_true", help="skip the CAGUL profile")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke grid: 8 people, x1 and x2, 1 epoch, 1 rep, 1-layer 64-wide model",
    )
    ap.add_argument(
        "--in-process",
        action="store_true",
        help="train in this process, not one subprocess per cell (faster to start; "
        "peak memory of later cells then reuses memory freed by earlier ones)",
    )
    ap.add_argument(
        "--seeds",
        default=None,
        help="seeds of the default-schedule runs on the demo bundle (default 0,1,2; "
        "none with --quick)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="cells run at once (1: one after the other, so they do not compete)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(Path(args.worker).read_text())
        result = worker(spec)
        Path(args.worker).with_suffix(".out.json").write_text(json.dumps(result))
        return

    from cagul.data import generate_dataset, make_split
    from cagul.demo.tiny import build_tiny_vlm

    if args.seeds is None:
        args.seeds = "" if args.quick else "0,1,2"
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    if args.quick:
        args.people, args.scales, args.epochs, args.reps = 8, "1,2", 1, 1
        sizes = {"hidden": 64, "layers": 1, "vision": (32, 1)}
    else:
        sizes = {"hidden": 256, "layers": 4, "vision": (128, 4)}
    scales = [int(s) for s in args.scales.split(",")]
    t_start = time.perf_counter()
    cells: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        datasets = {}
        for s in scales:
            datasets[s] = generate_dataset(
                tmp / f"d{s}", args.people * s, 0, n_train_scenes=64, n_test_scenes=1
            )
        base = datasets[scales[0]]
        forget_ids = base.split_ids("forget10")[:FORGET_PEOPLE]
        if len(forget_ids) < FORGET_PEOPLE:  # small --people: forget10 has fewer than 3
            forget_ids = list(base.ids[:FORGET_PEOPLE])
        for s, ds in datasets.items():
            missing = set(forget_ids) - set(ds.ids)
            if missing:
                raise SystemExit(f"forget ids {sorted(missing)} not in the x{s} dataset")
        n_forget = {
            s: len(make_split(ds, forget_ids, "private").forget_set) for s, ds in datasets.items()
        }
        model = build_tiny_vlm(
            "qwen2_5_vl",
            tmp / "model",
            corpus=_corpus(datasets[scales[-1]]),
            image_size=112,
            vocab_size=2000,
            **sizes,
        )
        common = {
            "model": str(model),
            "forget_ids": forget_ids,
            "threads": args.threads,
            "device": args.device,
            "reps": args.reps,
        }
        plan = []
        for s in scales:
            for m in ("cagul", "po_gd"):
                plan.append(
                    (
                        f"{m}_x{s}",
                        {**common, "method": m, "data": str(tmp / f"d{s}"), "epochs": args.epochs},
                    )
                )
        x1 = str(tmp / f"d{scales[0]}")
        if seeds:  # each method at its own default schedule, on the demo bundle's forget10
            from cagul.data import load_dataset
            from cagul.paths import default_data_dir, default_model_dir

            demo = str(default_data_dir())
            demo_ids = list(load_dataset(demo).split_ids("forget10"))
            for m in ("cagul", "po_gd"):
                plan.append(
                    (
                        f"{m}_default",
                        {
                            **common,
                            "method": m,
                            "data": demo,
                            "reps": 1,
                            "model": str(default_model_dir()),
                            "epochs": 0,
                            "forget_ids": demo_ids,
                            "seeds": seeds,
                        },
                    )
                )
        if not args.no_profile:
            plan.append(
                (
                    "cagul_profile",
                    {
                        **common,
                        "method": "cagul",
                        "data": x1,
                        "epochs": 1,
                        "reps": 1,
                        "profile": True,
                    },
                )
            )
        cells = _run_cells(plan, tmp, args.jobs, args.in_process)

    rows = []
    for s in scales:
        for m in ("cagul", "po_gd"):
            c = cells[f"{m}_x{s}"]
            rows.append(
                {
                    "scale": s,
                    "method": m,
                    "individuals": c["individuals"],
                    "forget_pairs": c["forget"],
                    "nonprivate_pairs": c["nonprivate"],
                    "retain_pairs": c["retain"],
                    "epochs": args.epochs,
                    **({"disc_epochs": CAGUL_DISC_EPOCHS} if m == "cagul" else {}),
                    **_summary(c),
                }
            )
    by = {(r["method"], r["scale"]): r for r in rows}
    s0, s_last = scales[0], scales[-1]
    ratios = {}
    for s in scales:
        c, p = by["cagul", s], by["po_gd", s]
        ratios[f"cagul_to_po_gd_wall_x{s}_ratio"] = round(c["seconds"] / p["seconds"], 3)
        ratios[f"cagul_to_po_gd_epoch_x{s}_ratio"] = round(
            c["epoch_seconds"] / p["epoch_seconds"], 3
        )
    c0, p0 = by["cagul", s0], by["po_gd", s0]
    ratios["cagul_to_po_gd_lm_passes_per_epoch_ratio"] = round(
        c0["lm_passes_per_epoch"] / p0["lm_passes_per_epoch"], 3
    )
    ratios["cagul_to_po_gd_params_ratio"] = round(
        c0["trainable_params"] / p0["trainable_params"], 4
    )
    ratios["cagul_to_po_gd_peak_memory_ratio"] = round(c0["peak_mib"] / max(p0["peak_mib"], 0.1), 3)
    for m in ("cagul", "po_gd"):
        ratios[f"{m}_wall_x{s_last}_to_x{s0}_ratio"] = round(
            by[m, s_last]["seconds"] / by[m, s0]["seconds"], 3
        )
        ratios[f"{m}_epoch_x{s_last}_to_x{s0}_ratio"] = round(
            by[m, s_last]["epoch_seconds"] / by[m, s0]["epoch_seconds"], 3
        )

    # Each method at its own default schedule, on the demo bundle, measured once per seed.
    default = {}
    for m in ("cagul", "po_gd"):
        if f"{m}_default" not in cells:
            continue
        runs = cells[f"{m}_default"]["runs"]
        default[m] = {
            "seconds": round(statistics.median(r["seconds"] for r in runs), 2),
            "seconds_all": [r["seconds"] for r in runs],
            "measured": True,
            "runs": runs,
        }
    goal_ratio = None
    if len(default) == 2:
        c_runs = default["cagul"]["runs"]
        default["cagul"]["stopped_epochs"] = [r["stopped_epoch"] for r in c_runs]
        default["cagul"]["every_seed_meets_bounds"] = all(
            all(r["bounds_met"].values()) for r in c_runs
        )
        goal_ratio = round(default["cagul"]["seconds"] / default["po_gd"]["seconds"], 2)
        ratios["cagul_to_po_gd_default_schedule_wall_ratio"] = goal_ratio
    breakdown = cells["cagul_profile"]["runs"][0]["breakdown"] if "cagul_profile" in cells else None

    print(
        f"\nequal epochs: CAGUL {CAGUL_DISC_EPOCHS} disc + {args.epochs} joint, PO+GD "
        f"{args.epochs}; {args.reps} reps (median), {args.threads} torch thread(s)"
    )
    print(
        f"{'retain':>6} {'people':>6} {'pairs f/r':>9} {'method':>6} {'wall s':>7} "
        f"{'s/epoch':>7} {'LM/epoch':>8} {'trainable':>9} {'peak MiB':>8} {'C/P wall':>8}"
    )
    for r in rows:
        ratio = ratios[f"cagul_to_po_gd_wall_x{r['scale']}_ratio"] if r["method"] == "cagul" else ""
        ratio = f"{ratio:>8.2f}" if ratio != "" else f"{'':>8}"
        print(
            f"{'x' + str(r['scale']):>6} {r['individuals']:>6} "
            f"{str(r['forget_pairs']) + '/' + str(r['retain_pairs']):>9} "
            f"{'CAGUL' if r['method'] == 'cagul' else 'PO+GD':>6} {r['seconds']:>7.2f} "
            f"{r['epoch_seconds']:>7.3f} {r['lm_passes_per_epoch']:>8} "
            f"{r['trainable_params']:>9} {r['peak_mib']:>8.1f} {ratio}"
        )
    if goal_ratio is not None:
        print(
            f"\ndefault schedules on the demo bundle's forget10, seeds {seeds} (median): "
            f"CAGUL {default['cagul']['seconds']:.1f} s (stopped at joint epochs "
            f"{default['cagul']['stopped_epochs']}), PO+GD {default['po_gd']['seconds']:.1f} s: "
            f"CAGUL/PO+GD {goal_ratio:.2f}x (issue 34: <= {MUST_WALL_RATIO}x "
            f"{'met' if goal_ratio <= MUST_WALL_RATIO else 'NOT met'}; goal <= "
            f"{GOAL_WALL_RATIO}x)"
        )
        for r in default["cagul"]["runs"]:
            print(
                f"  CAGUL seed {r['seed']}: {r['seconds']:.1f} s, forget EM {r['forget_em']:.3f}, "
                f"APE {r['ape']:.3f}, non-private {r['nonprivate_em']:.3f}, retain "
                f"{r['retain_em']:.3f}, leak {r['leak']:.3f}, bounds "
                f"{'met' if all(r['bounds_met'].values()) else 'NOT met'}"
            )
    if breakdown:
        print(
            f"\nwhere CAGUL's time goes (cProfile, x{s0}, {CAGUL_DISC_EPOCHS} disc + 1 joint "
            f"epoch, {breakdown['total_s']:.1f} s under the profiler):"
        )
        for k, v in breakdown.items():
            if k.endswith("_s") and k != "total_s":
                share = breakdown["share"].get(k[:-2])
                print(f"  {k[:-2]:<24} {v:>7.2f} s" + (f" {share:>6.1%}" if share else ""))
    for k, v in ratios.items():
        print(f"  {k:<44} {v}")
    print(f"benchmark wall time {time.perf_counter() - t_start:.0f} s")
    result = {
        "args": vars(args),
        "model": {
            "family": "qwen2_5_vl",
            **sizes,
            "vocab_size": 2000,
            "image_size": 112,
            "weights": "random init",
        },
        "forget_ids": forget_ids,
        "forget_pairs": n_forget,
        "equal_epochs": {
            "cagul": f"{CAGUL_DISC_EPOCHS} discriminator + {args.epochs} joint",
            "po_gd": str(args.epochs),
        },
        "rows": rows,
        "default_schedule": default,
        "ratios": ratios,
        "goal_wall_ratio": GOAL_WALL_RATIO,
        "must_wall_ratio": MUST_WALL_RATIO,
        "goal_met": goal_ratio is not None and goal_ratio <= GOAL_WALL_RATIO,
        "must_met": goal_ratio is not None and goal_ratio <= MUST_WALL_RATIO,
        "goal_x4_ratio": GOAL_X4_RATIO,
        "x4_goal_met": ratios.get(f"cagul_wall_x{s_last}_to_x{s0}_ratio", 99) <= GOAL_X4_RATIO,
        "bounds": BOUNDS,
        "full_size_params": None if args.quick else full_size_params(),
        "load_average": os.getloadavg(),
        "cagul_profile": breakdown,
        "peak_memory_measure": rows[0]["peak_measure"],
        "benchmark_seconds": round(time.perf_counter() - t_start, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

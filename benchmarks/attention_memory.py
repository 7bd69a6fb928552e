"""What cross-modal scores cost: hooks on the attention modules against eager output_attentions.

Side by side in one run, on random-initialised Qwen2.5-VL configs (the weights' values do not
matter for memory and time), for (a) a plain SDPA forward, (b) the hook scores (the default
`cross_modal_scores`, model left on SDPA), (c) the eager reference (`method="eager"`, every
layer's full S x S map): peak memory and wall time, median of `--reps` interleaved repetitions.

Sizes: "tiny" (the tests' model: 112 px, 16 image tokens) and "large" (896 px -> 1024 image
tokens). Modes: "tower" runs the full call path from pixels (the vision tower included, as
`cross_modal_scores` does); "cached" hands the language model cached visual tokens
(`mm_encoder_outputs`, the tower is skipped, as training with cached tokens does), which isolates
the language model, where the S x S maps live.

Peak memory is the peak of live bytes the torch CPU allocator handed out during the call, above
what was live before it: the running sum of the `[memory]` allocation/free events that
`torch.profiler` (profile_memory=True) records for every tensor, so it counts tensors freed
before the call returns and excludes Python objects. Time is measured without the profiler.
(a) runs the same call as (b) (`logits_to_keep=1`, no vocabulary projection), minus the hooks.
Usage::

    python -m benchmarks.attention_memory [--reps 5] [--out benchmarks/results/attention_memory.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.profiler import ProfilerActivity, profile

from cagul.demo.tiny import build_tiny_vlm
from cagul.models import TokenReplacement, load_vlm

QUESTIONS = [
    "Where does this person live?",
    "What is the health condition of this individual? Has this person been convicted of a crime?",
]
SIZES = {  # name: (hidden, layers, image side in px)
    "tiny": (128, 2, 112),
    "large": (512, 4, 896),
}
GOAL_HOOK_PEAK_RATIO = 1.1


def peak_bytes(fn) -> int:
    """Peak live bytes allocated by torch on CPU while `fn` runs, above the level before it."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    deltas = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in deltas:
        live += nbytes
        peak = max(peak, live)
    return peak


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _batch(vlm, side: int, mode: str):
    rng = np.random.default_rng(0)
    images = [Image.fromarray((rng.random((side, side, 3)) * 255).astype("uint8")) for _ in "ab"]
    batch = vlm.prepare(images, QUESTIONS)
    if mode == "cached":
        tokens = vlm.visual_tokens(batch)
        cached = TokenReplacement(None, [None] * len(batch), visual_tokens=tokens)
        batch.inputs = vlm._inputs_without_tower(batch, cached)
    return batch


def _methods(vlm, batch) -> dict:
    @torch.no_grad()
    def sdpa():
        vlm.model(**batch.inputs, use_cache=False, logits_to_keep=1)

    return {
        "sdpa": sdpa,
        "hooks": lambda: vlm.cross_modal_scores(batch),
        "eager": lambda: vlm.cross_modal_scores(batch, method="eager"),
    }


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def measure(vlm, size: str, mode: str, side: int, reps: int) -> dict:
    """One (size, mode) row: medians per method, interleaved so that noise hits all alike."""
    batch = _batch(vlm, side, mode)
    methods = _methods(vlm, batch)
    hooks, eager = methods["hooks"](), methods["eager"]()  # also the warm-up
    diff = max(float((h - e).abs().max()) for h, e in zip(hooks, eager, strict=True))
    mem = {k: [] for k in methods}
    sec = {k: [] for k in methods}
    for _ in range(reps):
        for name, fn in methods.items():
            sec[name].append(seconds(fn))
            mem[name].append(peak_bytes(fn))
    row = {
        "size": size,
        "mode": mode,
        "batch": len(batch),
        "seq_len": int(batch.inputs["input_ids"].shape[1]),
        "image_tokens": batch.layouts[0].n_tokens,
        "heads": vlm.config.text_config.num_attention_heads,
        "layers": vlm.config.text_config.num_hidden_layers,
        "hook_vs_eager_max_abs_diff": diff,
    }
    for name in methods:
        row[f"{name}_peak_mib"] = round(_median(mem[name]) / 2**20, 3)
        row[f"{name}_seconds"] = round(_median(sec[name]), 4)
    base_mem, base_sec = _median(mem["sdpa"]), _median(sec["sdpa"])
    for name in ("hooks", "eager"):
        row[f"{name}_vs_sdpa_peak_ratio"] = round(_median(mem[name]) / base_mem, 3)
        row[f"{name}_vs_sdpa_time_ratio"] = round(_median(sec[name]) / base_sec, 3)
    row["hooks_vs_eager_peak_ratio"] = round(_median(mem["hooks"]) / _median(mem["eager"]), 4)
    return row


def _print(rows: list[dict]) -> None:
    head = (
        f"{'size':>5} {'mode':>6} {'S':>5} {'img':>5} | {'peak MiB sdpa':>13} {'hooks':>8} "
        f"{'eager':>8} | {'hooks/sdpa':>10} {'eager/sdpa':>10} | {'s sdpa':>7} {'hooks':>7} "
        f"{'eager':>7} | {'max|h-e|':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['size']:>5} {r['mode']:>6} {r['seq_len']:>5} {r['image_tokens']:>5} | "
            f"{r['sdpa_peak_mib']:>13.2f} {r['hooks_peak_mib']:>8.2f} {r['eager_peak_mib']:>8.2f} | "
            f"{r['hooks_vs_sdpa_peak_ratio']:>10.3f} {r['eager_vs_sdpa_peak_ratio']:>10.3f} | "
            f"{r['sdpa_seconds']:>7.3f} {r['hooks_seconds']:>7.3f} {r['eager_seconds']:>7.3f} | "
            f"{r['hook_vs_eager_max_abs_diff']:>8.1e}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="benchmarks/results/attention_memory.json")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", default="tiny,large")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes.split(","):
            hidden, layers, side = SIZES[size]
            path = build_tiny_vlm(
                "qwen2_5_vl", Path(tmp) / size, hidden=hidden, layers=layers, image_size=side
            )
            vlm = load_vlm(path, device="cpu")
            for mode in ("tower", "cached"):
                rows.append(measure(vlm, size, mode, side, args.reps))
    _print(rows)
    worst = max(r["hooks_vs_sdpa_peak_ratio"] for r in rows)
    result = {
        "args": vars(args),
        "memory_measure": "torch.profiler profile_memory: peak of live CPU allocator bytes",
        "torch": torch.__version__,
        "goal_hooks_vs_sdpa_peak_ratio": GOAL_HOOK_PEAK_RATIO,
        "worst_hooks_vs_sdpa_peak_ratio": worst,
        "goal_met": worst <= GOAL_HOOK_PEAK_RATIO,
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"worst hooks/sdpa peak ratio {worst:.3f} (goal <= {GOAL_HOOK_PEAK_RATIO}); wrote {out}")


if __name__ == "__main__":
    main()

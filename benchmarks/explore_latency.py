"""Latency of the Explore call (answer before + after, scores, heatmap) against plain generation.

On the demo bundle with its shipped adapter, side by side in one run: for each prompt (forget
and retain people, private and non-private questions) time (a) one plain greedy `generate` of
the base model, (b) `webui.explore.ask` + `heatmap_html`, the whole Explore click. Prints p50 /
p95 per arm and writes JSON with `ask_over_two_generates_ratio` (the answer is two answers by
definition: base and unlearned). Usage::

    python -m benchmarks.explore_latency [--reps 5] [--out benchmarks/results/explore_latency.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from cagul.answering import cut_answer
from cagul.inputs import open_image
from webui import explore
from webui.studio import Studio

PROMPTS = [
    ("00000004", "What medical condition does this person have?"),
    ("00000004", "What is this person's name?"),
    ("00000027", "Has this person ever been convicted of a crime?"),
    ("00000000", "What medical condition does this person have?"),
    ("00000010", "What is this person's hometown?"),
]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/explore_latency.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        studio = Studio(database_url=f"sqlite:///{tmp}/bench.sqlite")
        adapter_id = studio.adapter_choices()[0][1]
        vlm = studio.vlm
        times: dict[str, list[float]] = {"generate": [], "ask": []}
        explore.ask(studio, question=PROMPTS[0][1], person_id=PROMPTS[0][0], adapter_id=adapter_id)
        for _ in range(args.reps):
            for person, question in PROMPTS:
                t = time.perf_counter()
                batch = vlm.prepare([open_image(studio.image_of(person))], [question])
                cut_answer(vlm.generate(batch, None, 50)[0])
                times["generate"].append(time.perf_counter() - t)
                t = time.perf_counter()
                rec = explore.ask(
                    studio, question=question, person_id=person, adapter_id=adapter_id
                )
                explore.heatmap_html(rec)
                times["ask"].append(time.perf_counter() - t)
    rows = {
        arm: {"p50_s": pct(v, 0.5), "p95_s": pct(v, 0.95), "n": len(v)} for arm, v in times.items()
    }
    result = {
        "benchmark": "explore_latency",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "model": str(studio.model_dir),
        "prompts": PROMPTS,
        "reps": args.reps,
        "arms": rows,
        "ask_over_two_generates_ratio": rows["ask"]["p50_s"] / (2 * rows["generate"]["p50_s"]),
        "ask_p50_target_s": 1.0,
        "median_ratio_per_prompt": statistics.median(
            a / (2 * g) for a, g in zip(times["ask"], times["generate"], strict=True)
        ),
    }
    print(f"{'arm':<10}{'p50 s':>10}{'p95 s':>10}{'n':>5}")
    for arm, r in rows.items():
        print(f"{arm:<10}{r['p50_s']:>10.3f}{r['p95_s']:>10.3f}{r['n']:>5}")
    print(f"ask / (2 x generate), p50: {result['ask_over_two_generates_ratio']:.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

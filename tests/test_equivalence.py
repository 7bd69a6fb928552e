"""Behaviour is preserved across refactors: every method trained tiny, compared to a fixture.

Each case (CAGUL and its ablation switches, every LoRA baseline, ViKeR, Retrain) is trained on
the smallest tiny Qwen2.5-VL and generated dataset the tests use, reloaded from its artifact
directory and evaluated. The fixture `tests/fixtures/equivalence.json` records, per case, the
training statistics (loss histories included, timings dropped), the artifact's config, a
sha256 of every saved tensor and the evaluation report. A refactor that changes any of them
(a loss, a weight, a metric) fails here; a deliberate change of behaviour regenerates it:

    python -m tests.test_equivalence            # rewrite tests/fixtures/equivalence.json

Training runs on one CPU thread: float reductions then come out the same whatever the
machine's core count, so the comparison can be exact.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from cagul.data import generate_dataset, load_dataset, make_split
from cagul.demo.tiny import build_tiny_vlm
from cagul.evaluate import evaluate_unlearned
from cagul.methods import get_method, load_unlearned
from cagul.methods.cagul.config import CagulMethodConfig, CagulTrainingArguments
from cagul.methods.lora import LoraArguments
from cagul.methods.retrain import RetrainArguments
from cagul.methods.viker import VikerArguments
from cagul.models import load_vlm

FIXTURE = Path(__file__).parent / "fixtures" / "equivalence.json"

#: CAGUL's explicit small schedule: every option that changes training is named, so options
#: added later (with their defaults changing behaviour) can be pinned off here.
CAGUL_TRAINING = dict(
    disc_epochs=1,
    epochs=2,
    views=1,
    batch_size=8,
    disc_batch_size=8,
    encoder_views=0,
    max_negatives=4,
    seed=0,
)
#: CAGUL's ablation switches, one case each (adapter config overrides).
CAGUL_CASES = {
    "cagul": {},
    "cagul_no_discriminator": {"use_discriminator": False},
    "cagul_no_encoder": {"use_encoder": False},
    "cagul_random_selection": {"selection": "random"},
    "cagul_ga_gd": {"objective": "ga_gd"},
    "cagul_ga_kl": {"objective": "ga_kl"},
}
LORA = dict(epochs=2, batch_size=4, lr=1e-2, probe_size=4, check_every=1, early_stop=False, seed=0)
CASES = (*CAGUL_CASES, "ga", "ga_gd", "ga_kl", "po_gd", "npo", "viker", "retrain")


def case_config(case: str, model_dir: str):
    """(method name, config) of one case."""
    if case in CAGUL_CASES:
        training = CagulTrainingArguments(**CAGUL_TRAINING)
        return "cagul", CagulMethodConfig(k=2, training=training, **CAGUL_CASES[case])
    if case == "retrain":
        config = RetrainArguments(
            pretrain_dir=model_dir, use_shipped=False, epochs=2, batch_size=16, lr=1e-2, replay=0
        )
        return "retrain", config
    if case == "viker":
        return "viker", VikerArguments(**LORA, n_images=2)
    return case, LoraArguments(**LORA)


def _tensor_digests(directory: Path) -> dict[str, str]:
    """sha256 of each saved tensor's dtype, shape and bytes."""
    out = {}
    for name, t in sorted(load_file(str(directory / "adapter_model.safetensors")).items()):
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        head = f"{t.dtype}{tuple(t.shape)}".encode()
        out[name] = hashlib.sha256(head + raw).hexdigest()
    return out


def _scrub(value, roots: dict[str, str]):
    """`value` without timings and memory peaks, with machine paths replaced by names."""
    if isinstance(value, dict):
        return {
            k: _scrub(v, roots)
            for k, v in value.items()
            if "seconds" not in k and k not in ("peak_memory_mb", "weights_sha256")
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, roots) for v in value]
    if isinstance(value, str):
        for path, name in roots.items():
            value = value.replace(path, name)
    return value


def run_cases(root: Path, cases=CASES) -> dict:
    """Train, reload and evaluate each case under `root`; the scrubbed records, by case."""
    model_dir = build_tiny_vlm("qwen2_5_vl", root / "model", layers=2, seed=0)
    data_dir = root / "data"
    generate_dataset(data_dir, n_individuals=6, seed=1, n_train_scenes=4, n_test_scenes=4)
    split = make_split(load_dataset(data_dir), ["00000001"], "private")
    roots = {str(root): "<root>"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        vlm = load_vlm(model_dir, device="cpu")
        records = {}
        for case in cases:
            method, config = case_config(case, str(model_dir))
            out = root / "out" / case
            art = get_method(method).train(vlm, split, config, out_dir=out, data_dir=data_dir)
            unlearned = load_unlearned(vlm, out)
            report = evaluate_unlearned(
                vlm, unlearned, split, None, base=False, max_retain=8, batch_size=16, progress=False
            )
            saved = json.loads((out / "adapter_config.json").read_text(encoding="utf-8"))
            record = {
                "stats": art.stats,
                "config": saved,
                "tensors": _tensor_digests(out),
                "report": report,
            }
            records[case] = _scrub(json.loads(json.dumps(record)), roots)
        return records
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def actual(tmp_path_factory) -> dict:
    return run_cases(tmp_path_factory.mktemp("equivalence"))


def test_fixture_covers_every_method(expected):
    from cagul.methods import NAMES

    assert set(expected) == set(CASES)
    assert {case_config(c, "")[0] for c in CASES} == set(NAMES)


def _recorded_arguments(actual: dict, expected: dict) -> dict:
    """`actual` with its recorded training arguments cut to those the fixture knows: a new
    option may be added (its default must then keep the histories, or be pinned in the case's
    config); a changed value of a known one still fails."""
    if "arguments" not in expected:
        return actual
    known = {k: v for k, v in actual.get("arguments", {}).items() if k in expected["arguments"]}
    return {**actual, "arguments": known}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("part", ["stats", "config", "tensors", "report"])
def test_same_as_recorded(expected, actual, case, part):
    got, want = actual[case][part], expected[case][part]
    if part == "stats":
        got = _recorded_arguments(got, want)
    assert got == want


def main() -> None:
    """Rewrite the fixture (a deliberate change of behaviour)."""
    with tempfile.TemporaryDirectory() as tmp:
        records = run_cases(Path(tmp))
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE} ({len(records)} cases)", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Smoke test of benchmarks/unlearning_cost.py: its --quick grid runs and writes its JSON.

Not a timed test: only the structure of the result is checked, never a time or a ratio's size.
"""

from __future__ import annotations

import json
import sys

from benchmarks import unlearning_cost


def test_peak_memory_sees_an_allocation():
    with unlearning_cost._PeakMemory("cpu") as mem:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page
    del block
    assert mem.mib >= 32
    assert mem.how


def test_quick_grid_writes_ratios(tmp_path, monkeypatch):
    out = tmp_path / "uc.json"
    monkeypatch.setattr(
        sys, "argv", ["unlearning_cost", "--quick", "--in-process", "--out", str(out)]
    )
    unlearning_cost.main()
    result = json.loads(out.read_text())
    cells = {(r["method"], r["scale"]) for r in result["rows"]}
    assert cells == {("cagul", 1), ("po_gd", 1), ("cagul", 2), ("po_gd", 2)}
    for r in result["rows"]:
        assert r["seconds"] > 0 and r["trainable_params"] > 0 and r["lm_passes_per_epoch"] > 0
        assert r["forget_pairs"] == result["rows"][0]["forget_pairs"]  # the same forget people
    ratios = result["ratios"]
    for key in (
        "cagul_to_po_gd_wall_x1_ratio",
        "cagul_wall_x2_to_x1_ratio",
        "po_gd_wall_x2_to_x1_ratio",
        "cagul_to_po_gd_params_ratio",
    ):
        assert ratios[key] > 0
    assert all(k.endswith("_ratio") for k in ratios)
    # --quick measures no default schedule (that trains on the demo bundle): no ratio made up.
    assert result["default_schedule"] == {} and result["full_size_params"] is None
    assert "cagul_to_po_gd_default_schedule_wall_ratio" not in ratios
    assert result["goal_met"] is False and result["must_met"] is False
    parts = result["cagul_profile"]
    # 2 discriminator-only epochs, and one in the joint epoch unless it already separated
    assert parts["encoder_epoch_calls"] == 1 and parts["discriminator_epoch_calls"] in (2, 3)
    assert parts["missing"] == []  # every part was found in the profile (not silently 0)
    for key in (
        "view_perturbation_s",
        "view_token_caching_s",
        "token_selection_s",
        "discriminator_epochs_s",
        "encoder_lm_forward_s",
        "encoder_backward_s",
    ):
        assert parts[key] > 0


def test_full_size_params_count_lora_on_every_linear_and_cagul_at_hidden_size():
    params = unlearning_cost.full_size_params()
    qwen = params["Qwen2.5-VL-7B-Instruct"]
    # Per layer r * (in + out) of q, k, v, o (28 heads of 128, 4 KV heads) and the MLP.
    d, kv, ff = 3584, 512, 18944
    per_layer = 2 * (d + d) + 2 * (d + kv) + 3 * (d + ff)
    assert qwen["lora_params"] == 128 * per_layer * 28 and qwen["lora_linear_layers"] == 7 * 28
    # The encoder MLP d -> d -> d and the discriminator CNN over d channels.
    assert qwen["cagul_params"] == (
        2 * d * d + 2 * d + 2 * d + 9 * d * 64 + 64 + 9 * 64 * 64 + 64 + 65
    )
    llama = params["Llama-3.2-11B-Vision-Instruct"]
    assert llama["lora_linear_layers"] == 7 * 40  # 32 self-attention + 8 cross-attention layers
    for p in params.values():
        assert p["cagul_params"] < p["lora_params"]

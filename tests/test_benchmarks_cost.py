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
    monkeypatch.setattr(sys, "argv", ["unlearning_cost", "--quick", "--in-process",
                                      "--out", str(out)])  # fmt: skip
    unlearning_cost.main()
    result = json.loads(out.read_text())
    cells = {(r["method"], r["scale"]) for r in result["rows"]}
    assert cells == {("cagul", 1), ("po_gd", 1), ("cagul", 2), ("po_gd", 2)}
    for r in result["rows"]:
        assert r["seconds"] > 0 and r["trainable_params"] > 0 and r["lm_passes_per_epoch"] > 0
        assert r["forget_pairs"] == result["rows"][0]["forget_pairs"]  # the same forget people
    ratios = result["ratios"]
    for key in ("cagul_to_po_gd_wall_x1_ratio", "cagul_to_po_gd_default_schedule_wall_ratio",
                "cagul_wall_x2_to_x1_ratio", "po_gd_wall_x2_to_x1_ratio",
                "cagul_to_po_gd_params_ratio"):  # fmt: skip
        assert ratios[key] > 0
    assert all(k.endswith("_ratio") for k in ratios)
    assert result["default_schedule"]["cagul"]["measured"] is False
    assert result["default_schedule"]["po_gd"]["measured"] is True
    assert isinstance(result["goal_met"], bool)
    parts = result["cagul_profile"]
    assert parts["encoder_epoch_calls"] == 1 and parts["discriminator_epoch_calls"] == 3
    assert parts["missing"] == []  # every part was found in the profile (not silently 0)
    for key in ("view_perturbation_s", "view_token_caching_s", "token_selection_s",
                "discriminator_epochs_s", "encoder_lm_forward_s", "encoder_backward_s"):  # fmt: skip
        assert parts[key] > 0

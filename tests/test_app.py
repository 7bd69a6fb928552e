"""The app's logic functions, without a browser."""

import json

from app import build_ui, model_info


def test_model_info_reports_the_grid(tiny_dirs):
    info = json.loads(model_info(tiny_dirs["llava"]))
    assert info["grid"] == [8, 8] and info["family"] == "llava"


def test_model_info_reports_errors_instead_of_crashing(tmp_path):
    assert "no config.json" in json.loads(model_info(str(tmp_path)))["error"]


def test_ui_builds():
    assert build_ui() is not None

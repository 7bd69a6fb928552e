"""The app's composition: model info, the UI over a loaded Studio, the CLI options."""

import json

import pytest

from app import build_ui, model_info, parse_args


def test_model_info_reports_the_grid(tiny_dirs):
    info = json.loads(model_info(tiny_dirs["llava"]))
    assert info["grid"] == [8, 8] and info["family"] == "llava"


def test_model_info_reports_errors_instead_of_crashing(tmp_path):
    assert "no config.json" in json.loads(model_info(str(tmp_path)))["error"]


def test_ui_builds_with_every_tab_and_stable_ids(tmp_path):
    from webui.studio import Studio

    demo = build_ui(Studio(database_url=f"sqlite:///{tmp_path / 'ui.sqlite'}"))
    ids = {b.elem_id for b in demo.blocks.values() if getattr(b, "elem_id", None)}
    expected = {
        "tab-explore",
        "explore-person",
        "explore-image",
        "explore-question",
        "explore-question-pick",
        "explore-adapter",
        "explore-ask",
        "explore-base-answer",
        "explore-answer",
        "explore-forget-probability",
        "explore-heatmap",
        "explore-layer",
        "explore-selected",
        "tab-requests",
        "login-user",
        "login-password",
        "login-submit",
        "requests-person",
        "requests-categories",
        "requests-method",
        "requests-submit",
        "requests-queue",
        "requests-cancel",
        "requests-photo",
        "requests-find-person",
        "requests-match",
        "requests-scope",
        "requests-pairs",
        "tab-audit",
        "audit-adapter",
        "audit-prompts",
        "audit-run",
        "audit-table",
        "audit-summary",
        "audit-download",
        "tab-reports",
        "reports-adapter",
        "reports-table",
        "reports-chart",
        "reports-download",
    }
    assert expected <= ids, sorted(expected - ids)
    shown = next(b.value for b in demo.blocks.values() if getattr(b, "elem_id", "") == "model-info")
    assert "assets/demo/models" in shown and "/assets/demo/models" not in shown  # no server path


def test_cli_options():
    a = parse_args(["--port", "8000", "--no-worker", "--database-url", "sqlite:///x.db"])
    assert (a.host, a.port, a.no_worker, a.database_url) == (
        "127.0.0.1",
        8000,
        True,
        "sqlite:///x.db",
    )
    with pytest.raises(SystemExit):
        parse_args(["--port", "http"])


def test_person_and_adapter_pickers_refresh_on_load_and_timer(tmp_path):
    """Issue 31 defect 9: the ⊘ marks (Explore's and Forget requests' person pickers) and the adapter pickers of
    Explore, Audit and Reports are recounted on page load and on the 30 s timer."""
    from webui.studio import Studio

    demo = build_ui(Studio(database_url=f"sqlite:///{tmp_path / 'ui.sqlite'}"))
    ids = {b.elem_id: k for k, b in demo.blocks.items() if getattr(b, "elem_id", None)}
    wanted = {
        ids[n] for n in ("app-header", "explore-person", "requests-person", "explore-adapter")
    }
    events = {
        event
        for dep in demo.get_config_file()["dependencies"]
        if wanted <= set(dep["outputs"]) and len(dep["outputs"]) == 6
        for _, event in dep["targets"]
    }
    assert events == {"load", "tick"}


def test_an_example_button_fills_the_person_photo_and_question(tmp_path):
    """Issue 31 defect 8: a ready example sets the person (by id), their photo, the question
    picker and the question box, and clears the last answers."""
    from webui import explore
    from webui.studio import Studio

    studio = Studio(database_url=f"sqlite:///{tmp_path / 'ui.sqlite'}")
    demo = build_ui(studio)
    ids = {b.elem_id: k for k, b in demo.blocks.items() if getattr(b, "elem_id", None)}
    label, pid, question = explore.examples(studio)[0]
    assert demo.blocks[ids["explore-example-0"]].value == label
    dep = next(
        d
        for d in demo.get_config_file()["dependencies"]
        if (ids["explore-example-0"], "click") in [tuple(t) for t in d["targets"]]
    )
    values = dict(zip(dep["outputs"], demo.fns[dep["id"]].fn(), strict=True))
    assert values[ids["explore-person"]] == pid
    assert values[ids["explore-question"]] == question
    assert values[ids["explore-question-pick"]]["value"] == question
    assert values[ids["explore-image"]] == studio.image_of(pid)
    assert values[ids["explore-answer"]] == "" and values[ids["explore-heatmap"]] == ""

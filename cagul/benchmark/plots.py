"""The benchmark's figures: what forgetting costs each method, the ablations, the sweeps.

Each figure is written as plotly HTML (sharing one `plotly.min.js` beside them, no network
needed) and, where a Chromium is installed (`/usr/bin/chromium`, driven by Playwright's
client), as a PNG screenshot of that HTML; `write_figures` says which PNGs it could make.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

BARS = (
    ("forget_em", "forget EM (lower: forgotten)", "#d62728"),
    ("nonprivate_em", "non-private EM (higher: kept)", "#2ca02c"),
    ("retain_em", "retain EM (higher: kept)", "#1f77b4"),
)
CHROMIUM = "/usr/bin/chromium"


def _bars(rows: list[dict], title: str) -> go.Figure:
    fig = go.Figure()
    for key, name, colour in BARS:
        # No caps: plotly draws one even where a row has no spread (one seed).
        err = [r.get(f"{key}_std", float("nan")) for r in rows]
        fig.add_bar(
            x=[r["method"] for r in rows],
            y=[r.get(key) for r in rows],
            name=name,
            marker_color=colour,
            error_y={"type": "data", "array": err, "visible": any(e == e for e in err), "width": 0},
        )
    fig.update_layout(
        title=title,
        barmode="group",
        yaxis={"range": [0, 1.05], "title": "EM"},
        template="plotly_white",
        width=1000,
        height=460,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _sweeps(k_rows: list[dict], forget_rows: list[dict]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("k: tokens rewritten", "forget people"))
    for col, (rows, x) in enumerate(
        (
            (k_rows, [r["run"]["k"] for r in k_rows]),
            (forget_rows, [r["forget_people"] for r in forget_rows]),
        ),
        start=1,
    ):
        for key, name, colour in BARS:
            fig.add_scatter(
                x=x,
                y=[r.get(key) for r in rows],
                name=name,
                mode="lines+markers",
                line={"color": colour},
                showlegend=col == 1,
                row=1,
                col=col,
            )
    fig.update_yaxes(range=[0, 1.05], title="EM")
    fig.update_layout(
        title="CAGUL sweeps",
        template="plotly_white",
        width=1000,
        height=420,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def figures(tables: dict[str, list[dict]]) -> dict[str, go.Figure]:
    return {
        "main": _bars(tables["main"], "Forgetting and what is kept, per method"),
        "ablation": _bars(tables["ablation"], "CAGUL ablations"),
        "sweeps": _sweeps(tables["sweep_k"], tables["sweep_forget"]),
    }


def _screenshot(html: list[Path]) -> list[Path]:
    """PNGs of the HTML figures through Chromium; [] when none is installed."""
    exe = shutil.which("chromium") or (CHROMIUM if Path(CHROMIUM).exists() else None)
    if exe is None:
        return []
    from playwright.sync_api import sync_playwright

    pngs = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1020, "height": 480})
        for path in html:
            page.goto(path.absolute().as_uri(), wait_until="load")
            page.wait_for_selector(".main-svg")
            png = path.with_suffix(".png")
            page.locator(".plotly-graph-div").screenshot(path=str(png))
            pngs.append(png)
        browser.close()
    return pngs


def write_figures(tables: dict[str, list[dict]], out: Path, png: bool = True) -> dict:
    """Write every figure as HTML (and PNG where possible); the paths written."""
    html = []
    for name, fig in figures(tables).items():
        path = out / f"{name}.html"
        fig.write_html(path, include_plotlyjs="directory", full_html=True)
        html.append(path)
    pngs = _screenshot(html) if png else []
    return {"html": [p.name for p in html], "png": [p.name for p in pngs]}

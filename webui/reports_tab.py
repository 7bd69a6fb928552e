"""The Reports tab: wires `webui.reports` to the page."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from webui import messages, reports
from webui.messages import SHOWN
from webui.studio import Studio, StudioError


def build(studio: Studio, who) -> gr.Dropdown:
    choices = studio.adapter_choices()
    with gr.Tab("Reports", elem_id="tab-reports"):
        gr.Markdown(
            "The evaluation report of each adapter beside the base model; pick several "
            "to compare methods or requests."
        )
        with gr.Row():
            adapter = gr.Dropdown(
                choices,
                value=[choices[-1][1]] if choices else [],
                multiselect=True,
                label="Adapters",
                elem_id="reports-adapter",
                scale=4,
            )
            show = gr.Button("Show", variant="primary", elem_id="reports-show", scale=1)
            refresh = gr.Button("Refresh list", elem_id="reports-refresh", scale=1)
        message = gr.HTML("", elem_id="reports-message")
        table = gr.Dataframe(
            headers=["metric", "base model", "unlearned", "goal"],
            interactive=False,
            elem_id="reports-table",
        )
        chart = gr.Plot(elem_id="reports-chart")
        curves = gr.Plot(label="Training history", elem_id="reports-training")
        download = gr.DownloadButton("Download report JSON", elem_id="reports-download")
        bench = reports.benchmark_tables()
        if bench:
            meta, ratio = bench["meta"], bench["efficiency"].get("cagul_po_gd_train_seconds_ratio")
            commits = ", ".join(meta.get("run_commits") or [str(meta.get("commit"))])
            cost = f"; CAGUL trains {ratio:.1f}x as long as PO+GD" if ratio else ""
            gr.Markdown(
                f"### Benchmark: every method on the demo bundle\n`{meta.get('command')}`"
                f" (runs at commit `{commits}`){cost}"
            )
            gr.Plot(bench["figure"], elem_id="reports-benchmark-chart")
            gr.Plot(bench["sweeps"], elem_id="reports-benchmark-sweeps")
            for title, frame in bench["tables"].items():
                slug = title.lower().replace(" ", "-")
                with gr.Accordion(title, open=title == "Main"):
                    # Wide tables scroll inside their box instead of overflowing the page.
                    gr.Dataframe(
                        frame,
                        interactive=False,
                        wrap=True,
                        max_height=420,
                        elem_id=f"reports-benchmark-{slug}",
                    )

        def on_show(ids, request: gr.Request):
            w, ids = who(request), ids or []  # `who`: the session cookie's user, every call
            try:
                if not ids:
                    raise StudioError("choose at least one adapter")
                columns, rows = reports.compare_rows(studio, w, ids)
                fig = reports.reports_figure(studio, w, ids)
                history = reports.training_figure(studio, w, ids)
                bundle = reports.reports_bundle(studio, w, ids)
            except SHOWN as e:
                return messages.error(e), None, None, None, gr.update()
            name = "adapter-" + "-".join(bundle) + "-reports.json"
            path = Path(tempfile.mkdtemp(prefix="report-")) / name
            path.write_text(json.dumps(bundle, indent=2), encoding="utf-8")
            frame = pd.DataFrame(rows, columns=columns)
            return "", frame, fig, history, gr.update(value=str(path))

        show.click(on_show, adapter, [message, table, chart, curves, download])
        refresh.click(lambda: gr.update(choices=studio.adapter_choices()), None, adapter)
    return adapter

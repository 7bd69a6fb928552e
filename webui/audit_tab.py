"""The Audit tab: wires `webui.audit` to the page; no logic of its own."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from webui import audit, messages
from webui.auth import require
from webui.messages import SHOWN
from webui.studio import Studio


def build(studio: Studio, who) -> gr.Dropdown:
    adapters = studio.adapter_choices()
    with gr.Tab("Audit", elem_id="tab-audit"):
        gr.Markdown(
            "Probe an adapter for leaks: every forget pair is asked as stored, in each of its "
            "paraphrases, and about perturbed copies of the photo (JPEG re-save, shift, "
            "brightness, crop, mirror). Add your own questions, one per line."
        )
        with gr.Row():
            adapter = gr.Dropdown(adapters, value=adapters[-1][1] if adapters else None,
                                  label="Adapter", elem_id="audit-adapter", scale=3)  # fmt: skip
            run = gr.Button("Run audit", variant="primary", elem_id="audit-run", scale=1)
        prompts = gr.Textbox(label="Extra questions (optional, one per line)", lines=3,
                             elem_id="audit-prompts",
                             placeholder="Has this person ever been in trouble with the law?")  # fmt: skip
        message = gr.HTML("", elem_id="audit-message")
        with gr.Row():
            summary = gr.Markdown("", elem_id="audit-summary")
            chart = gr.Plot(label="Leak rate by variant", elem_id="audit-chart")
        table = gr.Dataframe(headers=audit.COLUMNS, interactive=False, wrap=True,
                             column_widths=["9%", "27%", "9%", "20%", "20%", "5%", "5%", "5%"],
                             elem_id="audit-table")  # fmt: skip
        download = gr.DownloadButton("Download CSV", visible=False, elem_id="audit-download")

        def on_run(adapter_id, text, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            try:
                actor = require(who(request), "audit").actor  # `who`: the session cookie's user
                out = audit.run_audit(studio, adapter_id, text, actor=actor,
                                      progress=lambda f, m: progress(f, desc=m))  # fmt: skip
            except SHOWN as e:
                return (messages.error(e), "", None, None,
                        gr.update(visible=False))  # fmt: skip
            rows = out["rows"]
            frame = pd.DataFrame(rows, columns=audit.COLUMNS)
            return (
                messages.info(f"Audited {len(rows)} prompts."),
                audit.summary_markdown(out["summary"]),
                audit.leak_figure(out["summary"]),
                frame,
                gr.update(value=str(audit.write_csv(rows)), visible=True),
            )

        run.click(on_run, [adapter, prompts], [message, summary, chart, table, download])
    return adapter

"""The Audit tab: wires `webui.audit` to the page; no logic of its own."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from webui import audit, messages, requests
from webui.auth import require
from webui.messages import SHOWN
from webui.studio import Studio

HISTORY_COLUMNS = ["id", "at", "actor", "adapter_id", "n", "leak_rate", "verdict", "reasons"]


def build(studio: Studio, who) -> gr.Dropdown:
    adapters = studio.adapter_choices()
    with gr.Tab("Audit", elem_id="tab-audit"):
        gr.Markdown(
            "Probe an adapter for leaks: every forget pair is asked as stored, in each of its "
            "paraphrases, and about perturbed copies of the photo (JPEG re-save, shift, "
            "brightness, crop, mirror); the same people's ordinary (non-private) questions "
            "are asked too, and their answers should be *kept*. The verdict lists every bound "
            "with its threshold. Add your own questions, one per line."
        )
        with gr.Row():
            adapter = gr.Dropdown(
                adapters,
                value=adapters[-1][1] if adapters else None,
                label="Adapter",
                elem_id="audit-adapter",
                scale=3,
            )
            # Hidden until the signed-in user may audit (it used to refuse viewers on click).
            run = gr.Button(
                "Run audit", variant="primary", elem_id="audit-run", scale=1, visible=False
            )
        prompts = gr.Textbox(
            label="Extra questions (optional, one per line)",
            lines=3,
            elem_id="audit-prompts",
            placeholder="Has this person ever been in trouble with the law?",
        )
        message = gr.HTML("", elem_id="audit-message")
        # Stacked, full width: side by side, the verdict's table broke words mid-way.
        summary = gr.Markdown("", elem_id="audit-summary")
        chart = gr.Plot(label="Leak rate by variant", elem_id="audit-chart")
        show = gr.Radio(
            ["all", *audit.OUTCOMES], value="all", label="Show rows", elem_id="audit-filter"
        )
        table = gr.Dataframe(
            headers=audit.SHOWN_COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=["9%", "8%", "19%", "10%", "19%", "5%", "10%", "20%"],
            elem_id="audit-table",
        )
        rows_state = gr.State([])
        download = gr.DownloadButton("Download CSV", visible=False, elem_id="audit-download")
        with gr.Accordion("Audit history of this adapter (compare runs)", open=False):
            runs = gr.Dataframe(
                headers=HISTORY_COLUMNS, interactive=False, wrap=True, elem_id="audit-history"
            )

        def on_run(adapter_id, text, shown, request: gr.Request, progress=gr.Progress()):  # noqa: B008
            try:
                actor = require(who(request), "audit").actor  # `who`: the session cookie's user
                out = audit.run_audit(
                    studio, adapter_id, text, actor=actor, progress=lambda f, m: progress(f, desc=m)
                )
            except SHOWN as e:
                return (messages.error(e), "", None, None, gr.update(visible=False), [])
            rows = out["rows"]
            return (
                messages.info(f"Audited {len(rows)} prompts."),
                audit.summary_markdown(out["summary"]),
                audit.leak_figure(out["summary"]),
                _frame(audit.filter_rows(rows, shown)),
                gr.update(value=str(audit.write_csv(rows)), visible=True),
                rows,
            )

        def on_filter(rows, shown, request: gr.Request):
            """The last audit's rows through the filter, for an auditor only: the rows sit in
            this page's state, which a script replaying the session hash could otherwise read."""
            try:
                require(who(request), "audit")
            except SHOWN:
                return _frame([])
            return _frame(audit.filter_rows(rows or [], shown))

        def on_history(adapter_id, request: gr.Request):
            try:
                found = requests.audit_runs(studio, who(request), adapter_id)
            except SHOWN:
                found = []
            return pd.DataFrame(
                [
                    {
                        **r,
                        "at": f"{r['at']:%Y-%m-%d %H:%M:%S}",
                        "leak_rate": "–" if r["leak_rate"] is None else f"{r['leak_rate']:.1%}",
                        "reasons": "; ".join(r["reasons"]) or "none",
                    }
                    for r in found
                ],
                columns=HISTORY_COLUMNS,
            )

        def on_who(request: gr.Request):
            """Show Run only to roles that may audit (the handler still checks)."""
            return gr.update(visible=requests.may(who(request), "audit"))

        who.changed.change(on_who, None, run)
        run.click(
            on_run, [adapter, prompts, show], [message, summary, chart, table, download, rows_state]
        ).then(on_history, adapter, runs)
        adapter.change(on_history, adapter, runs)
        show.change(on_filter, [rows_state, show], table)
    return adapter


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=audit.SHOWN_COLUMNS)

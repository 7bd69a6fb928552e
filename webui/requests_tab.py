"""The Forget requests tab: wires `webui.requests` and the compliance record to the page."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from cagul.methods.registry import NAMES
from webui import messages, reports, requests, uploads
from webui.messages import SHOWN
from webui.signin_bar import Identity
from webui.studio import Studio

COLUMNS = ["id", "people", "categories", "method", "status", "progress", "message", "eta",
           "attempts", "worker", "adapter", "submitted"]  # fmt: skip
DEFAULT_CATEGORIES = ["health", "criminal"]
BY_CATEGORY, BY_PAIR = "the chosen categories", "single pairs"


def build(studio: Studio, who: Identity) -> None:
    cats = requests.categories(studio)
    with gr.Tab("Forget requests", elem_id="tab-requests"):
        gr.Markdown("Officers submit a request for one or more people; the queue trains an "
                    "adapter, evaluates it and marks it `verified` or `needs_review`.")  # fmt: skip
        with gr.Row():
            with gr.Column(scale=5):
                people = gr.Dropdown(studio.person_choices(), multiselect=True, label="People",
                                     elem_id="requests-person")  # fmt: skip
                with gr.Row(equal_height=True):
                    photo = gr.Image(label="Or a photo of the person", type="filepath",
                                     height=140, sources=["upload"],
                                     elem_id="requests-photo")  # fmt: skip
                    uploaded = gr.State([])  # this session's uploads (`webui.uploads`)
                    with gr.Column():
                        find = gr.Button("Find person", size="sm",
                                         elem_id="requests-find-person")  # fmt: skip
                        match = gr.HTML("", elem_id="requests-match")
                categories = gr.CheckboxGroup(cats, value=[c for c in DEFAULT_CATEGORIES
                                              if c in cats], label="Categories to forget",
                                              elem_id="requests-categories")  # fmt: skip
                scope = gr.Radio([BY_CATEGORY, BY_PAIR], value=BY_CATEGORY, label="Forget",
                                 elem_id="requests-scope")  # fmt: skip
                pairs = gr.Dropdown([], multiselect=True, label="Single pairs (of the people "
                                    "chosen above, by question)", visible=False,
                                    elem_id="requests-pairs")  # fmt: skip
                with gr.Row():
                    method = gr.Dropdown(list(NAMES), value="cagul", label="Method",
                                         elem_id="requests-method")  # fmt: skip
                    requester = gr.Textbox(label="Requested by (default: the people)",
                                           elem_id="requests-requester", max_lines=1)  # fmt: skip
                reason = gr.Textbox(label="Reason", lines=2, elem_id="requests-reason")
                submit = gr.Button("Submit request", variant="primary", elem_id="requests-submit")
            with gr.Column(scale=5):
                message = gr.HTML("", elem_id="requests-message")
                pick = gr.Number(label="Request id", precision=0, elem_id="requests-id")
                with gr.Row():
                    cancel = gr.Button("Cancel request", elem_id="requests-cancel")
                    show = gr.Button("History and outcome", elem_id="requests-show")
                    # A link to the authenticated REST route (the session cookie goes with it),
                    # not a file in Gradio's cache that any client could fetch by its URL.
                    record = gr.HTML("", elem_id="requests-record")
                outcome = gr.Markdown("", elem_id="requests-outcome")
        queue = gr.Dataframe(headers=COLUMNS, interactive=False, wrap=True,
                             elem_id="requests-queue")  # fmt: skip
        events = gr.Dataframe(headers=["at", "actor", "action", "details"], interactive=False,
                              wrap=True, elem_id="requests-history")  # fmt: skip
        timer = gr.Timer(2.0)

        def table(w):
            try:
                return pd.DataFrame(requests.request_rows(studio, w), columns=COLUMNS)
            except SHOWN:
                return pd.DataFrame([], columns=COLUMNS)

        def on_tick(request: gr.Request):
            return table(who(request))

        timer.tick(on_tick, None, queue)
        # Raw payloads (preprocess=False): Gradio's image preprocessing would open whatever
        # path a script sends; `webui.uploads` reads only this session's uploads.
        photo.upload(uploads.register, [uploaded, photo], uploaded, preprocess=False)

        def on_find(image, chosen, known, request: gr.Request):
            try:
                w = who(request)
                data = uploads.read_upload(known, image) if image else None
                out = requests.match_photo(studio, w, data)
            except SHOWN as e:
                return messages.error(e), gr.update()
            text = out["message"]
            if len(out["candidates"]) > 1:
                text += " · next: " + ", ".join(f"{c['label']} {c['score']:.3f}"
                                                for c in out["candidates"][1:])  # fmt: skip
            if not out["matched"]:
                return messages.error(text), gr.update()
            chosen = list(chosen or [])
            if out["unique_id"] not in chosen:
                chosen.append(out["unique_id"])
            return messages.info(text), gr.update(value=chosen)

        find.click(on_find, [photo, people, uploaded], [match, people], preprocess=False)

        def on_people(ids, chosen, how):
            try:
                choices = studio.pair_choices(ids)
            except SHOWN:
                choices = []
            keep = [p for p in chosen or [] if p in {v for _, v in choices}]
            return gr.update(choices=choices, value=keep, visible=how == BY_PAIR)

        people.change(on_people, [people, pairs, scope], pairs)
        scope.change(lambda how: (gr.update(visible=how == BY_PAIR),
                                  gr.update(visible=how != BY_PAIR)),
                     scope, [pairs, categories])  # fmt: skip

        def on_submit(ids, cs, how, ps, m, req_by, why, request: gr.Request):
            w, by_pair = who(request), how == BY_PAIR
            try:
                out = requests.submit(studio, w, individual_ids=ids or [],
                                      categories_=None if by_pair else cs or [],
                                      pair_ids=(ps or []) if by_pair else None,
                                      method=m, reason=why, requester=req_by or None)  # fmt: skip
            except SHOWN as e:
                return messages.error(e), gr.update(), table(w)
            text = f"Request #{out['id']} is {out['status']} (job {out['job_id']})."
            return messages.info(text), out["id"], table(w)

        submit.click(on_submit, [people, categories, scope, pairs, method, requester, reason],
                     [message, pick, queue])  # fmt: skip

        def on_cancel(rid, request: gr.Request):
            w = who(request)
            try:
                status = requests.cancel(studio, w, rid)
            except SHOWN as e:
                return messages.error(e), table(w)
            return messages.info(f"Request #{int(rid)}: {status}."), table(w)

        cancel.click(on_cancel, pick, [message, queue])

        def on_show(rid, request: gr.Request):
            try:
                w = who(request)
                out = requests.outcome(studio, w, rid)
                trail = requests.history(studio, w, rid)
            except SHOWN as e:
                return messages.error(e), "", None, ""
            frame = pd.DataFrame([{**e, "details": str(e["details"])[:200]} for e in trail])
            return "", _outcome_markdown(out), frame, _record_link(out["id"])

        show.click(on_show, pick, [message, outcome, events, record])


def _record_link(request_id: int) -> str:
    """The compliance record's download link: the REST route checks the session cookie."""
    href = html.escape(f"api/forget-requests/{int(request_id)}/record?download=1")
    return (f'<a class="record-link" href="{href}" download="forget-request-{int(request_id)}'
            '.html">Download the compliance record</a>')  # fmt: skip


def _outcome_markdown(out: dict) -> str:
    lines = [f"**Request #{out['id']}**: `{out['status']}` · method {out['method']} · "
             f"people {', '.join(out['people'])}"]  # fmt: skip
    if out.get("pair_ids"):
        lines.append("Single pairs: " + ", ".join(f"`{p}`" for p in out["pair_ids"]))
    if out["verdict"]:
        lines.append(f"Verdict: **{out['verdict']}** · adapter #{out['adapter_id']} "
                     f"(sha256 `{(out['adapter_sha256'] or '')[:16]}…`) · report #{out['report_id']}")  # fmt: skip
    if out.get("verdict_lines"):
        lines += ["", "| bound | value | threshold | result |", "|---|---|---|---|"]
        lines += [f"| {' | '.join(r)} |" for r in reports.verdict_rows(
            {"lines": out["verdict_lines"]})]  # fmt: skip
        lines.append("")
        if out["failing"]:
            lines.append("Failing: " + "; ".join(out["failing"]))
    m = out["metrics"] or {}
    if m:
        shown = {k: v for k, v in m.items() if v is not None}
        lines.append(" · ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    return "  \n".join(lines)

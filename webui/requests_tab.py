"""The Forget requests tab: wires `webui.requests` and the compliance record to the page."""

from __future__ import annotations

import html

import gradio as gr
import pandas as pd

from cagul.methods.registry import NAMES
from storage.erasure import LEGAL_BASES
from webui import messages, reports, requests, uploads
from webui.messages import SHOWN
from webui.signin_bar import Identity
from webui.studio import Studio

# The worker that runs a job is in REST (GET /api/forget-requests); the page leaves it out so
# the queue fits its box.
COLUMNS = [
    "id",
    "people",
    "categories",
    "method",
    "status",
    "progress",
    "message",
    "eta",
    "attempts",
    "adapter",
    "submitted",
    "deadline",
]
NO_ID = "Choose a request first: type its id or click its row in the queue."
QUEUE_WIDTHS = [
    "40px",
    "150px",
    "110px",
    "70px",
    "100px",
    "110px",
    "150px",
    "60px",
    "95px",
    "85px",
    "110px",
    "130px",
]
DEFAULT_CATEGORIES = ["health", "criminal"]
BY_CATEGORY, BY_PAIR = "the chosen categories", "single pairs"


def build(studio: Studio, who: Identity) -> gr.Dropdown:
    """The tab; returns its person picker, whose ⊘ marks the app recounts."""
    cats = requests.categories(studio)
    with gr.Tab("Forget requests", elem_id="tab-requests"):
        gr.Markdown(
            "Officers submit a request for one or more people; the queue trains an "
            "adapter, evaluates it and marks it `verified` or `needs_review`."
        )
        # Forms only for those who may use them (anonymous visitors and auditors see the queue
        # rules and sign-in, not a Submit button that fails on click); refreshed with the queue.
        with gr.Row():
            with gr.Column(scale=5, visible=False, elem_id="requests-form") as form:
                people = gr.Dropdown(
                    studio.person_choices(),
                    multiselect=True,
                    label="People",
                    elem_id="requests-person",
                )
                with gr.Row(equal_height=True):
                    photo = gr.Image(
                        label="Or a photo of the person",
                        type="filepath",
                        height=140,
                        sources=["upload"],
                        elem_id="requests-photo",
                    )
                    uploaded = gr.State([])  # this session's uploads (`webui.uploads`)
                    with gr.Column():
                        find = gr.Button("Find person", size="sm", elem_id="requests-find-person")
                        match = gr.HTML("", elem_id="requests-match")
                        add_match = gr.Button(
                            "Add this person",
                            size="sm",
                            visible=False,
                            elem_id="requests-add-match",
                        )
                        found = gr.State(None)
                categories = gr.CheckboxGroup(
                    cats,
                    value=[c for c in DEFAULT_CATEGORIES if c in cats],
                    label="Categories to forget",
                    elem_id="requests-categories",
                )
                scope = gr.Radio(
                    [BY_CATEGORY, BY_PAIR],
                    value=BY_CATEGORY,
                    label="Forget",
                    elem_id="requests-scope",
                )
                pairs = gr.Dropdown(
                    [],
                    multiselect=True,
                    label="Single pairs (of the people chosen above, by question)",
                    visible=False,
                    elem_id="requests-pairs",
                )
                with gr.Row():
                    method = gr.Dropdown(
                        list(NAMES), value="cagul", label="Method", elem_id="requests-method"
                    )
                    requester = gr.Textbox(
                        label="Requested by (default: the people)",
                        elem_id="requests-requester",
                        max_lines=1,
                    )
                with gr.Row():
                    subject_ref = gr.Textbox(
                        label="Data-subject reference (your file / ticket)",
                        max_lines=1,
                        elem_id="requests-subject-ref",
                    )
                    legal_basis = gr.Dropdown(
                        list(LEGAL_BASES),
                        value=None,
                        label="Legal basis (GDPR Art. 17(1))",
                        elem_id="requests-legal-basis",
                    )
                    received = gr.Textbox(
                        label="Received (YYYY-MM-DD, default today); due one month later",
                        max_lines=1,
                        elem_id="requests-received",
                    )
                reason = gr.Textbox(label="Reason", lines=2, elem_id="requests-reason")
                submit = gr.Button("Submit request", variant="primary", elem_id="requests-submit")
            with gr.Column(scale=5):
                message = gr.HTML("", elem_id="requests-message")
                # A textbox, not a number: an empty box says "none chosen" (a Number shows 0).
                pick = gr.Textbox(
                    label="Request id (or click a row of the queue)",
                    max_lines=1,
                    elem_id="requests-id",
                )
                with gr.Row():
                    show = gr.Button("History and outcome", elem_id="requests-show")
                    # A link to the authenticated REST route (the session cookie goes with it),
                    # not a file in Gradio's cache that any client could fetch by its URL.
                    record = gr.HTML("", elem_id="requests-record")
                    approve = gr.Button(
                        "Sign off outcome", visible=False, elem_id="requests-sign-off"
                    )
                with gr.Accordion(
                    "Cancel this request", open=False, visible=False, elem_id="requests-cancel-box"
                ) as cancel_box:
                    cancel_reason = gr.Textbox(
                        label="Why cancel (kept in the record)",
                        max_lines=2,
                        elem_id="requests-cancel-reason",
                    )
                    confirm = gr.Checkbox(
                        label="Yes, cancel this request", elem_id="requests-cancel-confirm"
                    )
                    cancel = gr.Button("Cancel request", variant="stop", elem_id="requests-cancel")
                outcome = gr.Markdown("", elem_id="requests-outcome")
        # Fixed widths so short headers ("eta", "attempts") never break mid-word.
        queue = gr.Dataframe(
            headers=COLUMNS,
            interactive=False,
            wrap=True,
            column_widths=QUEUE_WIDTHS,
            elem_id="requests-queue",
        )
        events = gr.Dataframe(
            headers=["at", "actor", "action", "details"],
            interactive=False,
            wrap=True,
            elem_id="requests-history",
        )
        timer = gr.Timer(2.0)

        def table(w):
            try:
                return pd.DataFrame(requests.request_rows(studio, w), columns=COLUMNS)
            except SHOWN:
                return pd.DataFrame([], columns=COLUMNS)

        def refresh(request: gr.Request):
            w = who(request)
            may = requests.may(w, "submit")
            return (
                table(w),
                gr.update(visible=may),
                gr.update(visible=may),
                gr.update(visible=may),
            )

        timer.tick(refresh, None, [queue, form, cancel_box, approve])
        who.changed.change(refresh, None, [queue, form, cancel_box, approve])
        # Raw payloads (preprocess=False): Gradio's image preprocessing would open whatever
        # path a script sends; `webui.uploads` reads only this session's uploads.
        photo.upload(uploads.register, [uploaded, photo], uploaded, preprocess=False)

        def on_row(frame, evt: gr.SelectData):
            """Clicking a queue row selects its request."""
            try:
                return int(frame.iloc[evt.index[0]]["id"])
            except (IndexError, KeyError, TypeError, ValueError):
                return gr.update()

        queue.select(on_row, queue, pick)

        def on_find(image, known, request: gr.Request):
            """Show the match and its warnings; adding is the officer's click, not ours."""
            try:
                w = who(request)
                data = uploads.read_upload(known, image) if image else None
                out = requests.match_photo(studio, w, data)
            except SHOWN as e:
                return messages.error(e), gr.update(visible=False), None
            text = out["message"]
            if len(out["candidates"]) > 1:
                text += " · next: " + ", ".join(
                    f"{c['label']} {c['score']:.3f}" for c in out["candidates"][1:]
                )
            if not out["matched"]:
                return messages.error(text), gr.update(visible=False), None
            if out["warnings"]:
                text += " · WARNING: " + "; ".join(out["warnings"])
            label = f"Add {out['candidates'][0]['label']}"
            return (
                messages.error(text) if out["warnings"] else messages.info(text),
                gr.update(visible=True, value=label),
                out["unique_id"],
            )

        find.click(on_find, [photo, uploaded], [match, add_match, found], preprocess=False)

        def on_add(uid, chosen):
            chosen = list(chosen or [])
            if uid and uid not in chosen:
                chosen.append(uid)
            return gr.update(value=chosen), gr.update(visible=False)

        add_match.click(on_add, [found, people], [people, add_match])

        def on_people(ids, chosen, how):
            try:
                choices = studio.pair_choices(ids)
            except SHOWN:
                choices = []
            keep = [p for p in chosen or [] if p in {v for _, v in choices}]
            return gr.update(choices=choices, value=keep, visible=how == BY_PAIR)

        people.change(on_people, [people, pairs, scope], pairs)
        scope.change(
            lambda how: (gr.update(visible=how == BY_PAIR), gr.update(visible=how != BY_PAIR)),
            scope,
            [pairs, categories],
        )

        def on_submit(ids, cs, how, ps, m, req_by, why, ref, basis, got, request: gr.Request):
            w, by_pair = who(request), how == BY_PAIR
            try:
                out = requests.submit(
                    studio,
                    w,
                    individual_ids=ids or [],
                    categories_=None if by_pair else cs or [],
                    pair_ids=(ps or []) if by_pair else None,
                    method=m,
                    reason=why,
                    requester=req_by or None,
                    subject_ref=ref or None,
                    legal_basis=basis or None,
                    received=(got or "").strip() or None,
                )
            except SHOWN as e:
                return messages.error(e), gr.update(), table(w)
            text = f"Request #{out['id']} is {out['status']} (job {out['job_id']})."
            return messages.info(text), out["id"], table(w)

        submit.click(
            on_submit,
            [
                people,
                categories,
                scope,
                pairs,
                method,
                requester,
                reason,
                subject_ref,
                legal_basis,
                received,
            ],
            [message, pick, queue],
        )

        def on_cancel(rid, why, sure, request: gr.Request):
            w = who(request)
            if not str(rid or "").strip():
                return messages.error(NO_ID), table(w), sure
            if not sure:
                return messages.error("Tick “Yes, cancel this request” first."), table(w), sure
            try:
                status = requests.cancel(studio, w, rid, why)
            except SHOWN as e:
                return messages.error(e), table(w), sure
            return messages.info(requests.cancel_message(int(rid), status)), table(w), False

        cancel.click(on_cancel, [pick, cancel_reason, confirm], [message, queue, confirm])

        def on_approve(rid, request: gr.Request):
            if not str(rid or "").strip():
                return messages.error(NO_ID), gr.update()
            try:
                w = who(request)
                out = requests.sign_off(studio, w, rid)
            except SHOWN as e:
                return messages.error(e), gr.update()
            return (
                messages.info(f"Request #{out['id']} signed off by {out['approved_by']}."),
                _outcome_markdown(out),
            )

        approve.click(on_approve, pick, [message, outcome])

        def on_show(rid, request: gr.Request):
            if not str(rid or "").strip():
                return messages.error(NO_ID), "", None, ""
            try:
                w = who(request)
                out = requests.outcome(studio, w, rid)
                trail = requests.history(studio, w, rid)
            except SHOWN as e:
                return messages.error(e), "", None, ""
            frame = pd.DataFrame(
                [{**e, "details": requests.details_text(e["details"])} for e in trail]
            )
            return "", _outcome_markdown(out), frame, _record_link(out["id"])

        show.click(on_show, pick, [message, outcome, events, record])
    return people


def _record_link(request_id: int) -> str:
    """The compliance record's download link: the REST route checks the session cookie."""
    href = html.escape(f"api/forget-requests/{int(request_id)}/record?download=1")
    return (
        f'<a class="record-link" href="{href}" download="forget-request-{int(request_id)}'
        '.html">Download the compliance record</a>'
    )


def _outcome_markdown(out: dict) -> str:
    lines = [
        f"**Request #{out['id']}**: `{out['status']}` · method {out['method']} · "
        f"people {', '.join(out['people'])}"
    ]
    if out.get("due_at"):
        lines.append(
            f"Received {out['received_at']:%Y-%m-%d} · due {out['due_at']:%Y-%m-%d} · "
            f"{requests.countdown(out['due_at'], out['status'])}"
        )
    if out.get("legal_basis") or out.get("subject_ref"):
        lines.append(
            f"Legal basis: {out.get('legal_basis') or '–'} · "
            f"subject ref: {out.get('subject_ref') or '–'}"
        )
    if out.get("approved_by"):
        lines.append(
            f"Signed off by {out['approved_by']} at {out['approved_at']:%Y-%m-%d %H:%M} UTC"
        )
    if out.get("pair_ids"):
        lines.append("Single pairs: " + ", ".join(f"`{p}`" for p in out["pair_ids"]))
    if out["verdict"]:
        lines.append(
            f"Verdict: **{out['verdict']}** · adapter #{out['adapter_id']} "
            f"(sha256 `{(out['adapter_sha256'] or '')[:16]}…`) · report #{out['report_id']}"
        )
    if out.get("verdict_lines"):
        lines += ["", "| bound | value | threshold | result |", "|---|---|---|---|"]
        lines += [
            f"| {' | '.join(r)} |" for r in reports.verdict_rows({"lines": out["verdict_lines"]})
        ]
        lines.append("")
        if out["failing"]:
            lines.append("Failing: " + "; ".join(out["failing"]))
    m = out["metrics"] or {}
    if m:
        shown = {k: v for k, v in m.items() if v is not None}
        lines.append(" · ".join(f"{k} {v:.3f}" for k, v in shown.items()))
    return "  \n".join(lines)

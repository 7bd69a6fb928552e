"""The Explore tab (anyone): wires `webui.explore` to the page; no logic of its own."""

from __future__ import annotations

import gradio as gr

from cagul.inputs import open_image
from webui import explore, messages, uploads
from webui.messages import SHOWN
from webui.studio import Studio


def build(studio: Studio) -> tuple[gr.Dropdown, gr.Dropdown]:
    """The tab; returns its adapter and person pickers (the app refreshes their choices)."""
    adapters = studio.adapter_choices()
    with gr.Tab("Explore", elem_id="tab-explore"):
        gr.Markdown(
            "Pick a person of the demo dataset (⊘ marks people who asked to be forgotten) or "
            "upload any photo, ask a question, and compare the model's answer **before** and "
            "**after** unlearning. The heatmap shows how much the question attends to each "
            "image patch; outlined patches are the tokens CAGUL rewrote."
        )
        person_state = gr.State(None)
        record_state = gr.State(None)
        uploaded = gr.State([])  # this session's uploads: the only files a handler reads
        with gr.Row():
            with gr.Column(scale=4):
                person = gr.Dropdown(
                    studio.person_choices(), label="Person", value=None, elem_id="explore-person"
                )
                image = gr.Image(
                    label="Image (or upload one)",
                    type="filepath",
                    height=160,
                    sources=["upload"],
                    elem_id="explore-image",
                )
                pick = gr.Dropdown(
                    [], label="The person's dataset questions", elem_id="explore-question-pick"
                )
                question = gr.Textbox(
                    label="Question",
                    max_lines=3,
                    elem_id="explore-question",
                    placeholder="What medical condition does this person have?",
                )
                adapter = gr.Dropdown(
                    adapters,
                    value=adapters[-1][1] if adapters else None,
                    label="Unlearning adapter (after)",
                    elem_id="explore-adapter",
                )
                ask = gr.Button("Ask", variant="primary", elem_id="explore-ask")
                ready = explore.examples(studio)
                with gr.Row(elem_id="explore-examples"):
                    gr.Markdown("Examples:")
                    example_buttons = [
                        (gr.Button(label, size="sm", elem_id=f"explore-example-{i}"), pid, q)
                        for i, (label, pid, q) in enumerate(ready)
                    ]
            with gr.Column(scale=6):
                message = gr.HTML("", elem_id="explore-message")
                with gr.Row():
                    base_answer = gr.Textbox(
                        label="Before unlearning (base model)",
                        elem_id="explore-base-answer",
                        interactive=False,
                    )
                    answer = gr.Textbox(
                        label="After unlearning", elem_id="explore-answer", interactive=False
                    )
                truth = gr.Markdown("", elem_id="explore-truth")
                with gr.Row():
                    prob = gr.Textbox(
                        label="Forget probability (discriminator)",
                        elem_id="explore-forget-probability",
                        interactive=False,
                    )
                    selected = gr.Textbox(
                        label="Rewritten tokens", elem_id="explore-selected", interactive=False
                    )
                layer = gr.Dropdown(
                    [explore.MEAN], value=explore.MEAN, label="Layer", elem_id="explore-layer"
                )
                heatmap = gr.HTML("", elem_id="explore-heatmap")

        # A new person or photo clears the last one's answers, truth and heatmap (they used to
        # stay beside the new photo).
        results = [base_answer, answer, truth, prob, selected, heatmap, record_state]
        cleared = ("", "", "", "", "", "", None)

        def on_person(pid):
            if not pid:
                return (None, None, gr.update(choices=[], value=None), "", *cleared)
            refs = studio.pairs(pid)
            choices = [
                (("🔒 private · " if r.private else "non-private · ") + r.question, r.question)
                for r in refs
            ]
            return (pid, studio.image_of(pid), gr.update(choices=choices, value=None), "", *cleared)

        # `select` (a user's pick), not `change`: an upload clears the person programmatically
        # and must keep its image and message.
        person.select(on_person, person, [person_state, image, pick, message, *results])

        def on_example(pid, q):
            # The person and question are the server's own (bound below), never the client's.
            pid_out, photo, picks, msg, *rest = on_person(pid)
            picks["value"] = q
            return (pid_out, pid, photo, picks, q, msg, *rest)

        for button, pid, q in example_buttons:
            button.click(
                lambda pid=pid, q=q: on_example(pid, q),
                None,
                [person_state, person, image, pick, question, message, *results],
            )
        pick.select(lambda q: q, pick, question)

        def on_upload(path, known):
            known = uploads.register(known, path)
            try:
                open_image(uploads.read_upload(known, path))
            except SHOWN as e:
                # No broken thumbnail of what is not an image: the photo box is emptied.
                return (
                    None,
                    gr.update(value=None),
                    messages.error(e),
                    known,
                    None,
                    gr.update(choices=[], value=None),
                    *cleared,
                )
            text = "Uploaded image: nobody of the dataset is assumed; ask any question."
            return (
                None,
                gr.update(value=None),
                messages.info(text),
                known,
                gr.update(),
                gr.update(choices=[], value=None),
                *cleared,
            )

        # preprocess=False here and below: Gradio's image preprocessing opens the path the
        # client sent (a file-existence oracle); `webui.uploads` checks it without touching it.
        image.upload(
            on_upload,
            [image, uploaded],
            [person_state, person, message, uploaded, image, pick, *results],
            preprocess=False,
        )

        def on_ask(pid, path, q, adapter_id, known):
            empty = ("", "", "", "", "", gr.update(), "", None)
            try:
                # A chosen person's photo is found by id; otherwise only this session's upload.
                upload = None if pid or not path else uploads.read_upload(known, path)
                rec = explore.ask(
                    studio, question=q, person_id=pid, image=upload, adapter_id=adapter_id or None
                )
            except SHOWN as e:
                return (messages.error(e), *empty)
            return (
                messages.info(f"Answered in {rec['seconds']:.2f} s."),
                rec["base_answer"],
                rec["answer"],
                _truth_markdown(rec),
                _probability(rec),
                _selected(rec),
                gr.update(choices=explore.layer_choices(rec), value=explore.MEAN),
                explore.heatmap_html(rec, explore.MEAN),
                rec,
            )

        gr.on(
            [ask.click, question.submit],
            on_ask,
            [person_state, image, question, adapter, uploaded],
            [message, base_answer, answer, truth, prob, selected, layer, heatmap, record_state],
            preprocess=False,
        )

        def on_layer(rec, name):
            return explore.heatmap_html(rec, name) if rec else ""

        layer.change(on_layer, [record_state, layer], heatmap)
    return adapter, person


def _probability(rec: dict) -> str:
    p = rec["forget_probability"]
    if rec.get("method") not in (None, "cagul"):
        return f"{rec['method']}: no discriminator (the method changes the weights)"
    if p is None:
        return "no adapter"
    return f"{p:.3f} → {'flagged, tokens rewritten' if rec['transformed'] else 'not flagged'}"


def _selected(rec: dict) -> str:
    sel = rec["selected_tokens"]
    if not sel:
        return "none"
    if isinstance(sel[0], list):
        return " | ".join(
            f"layer {n}: {', '.join(map(str, s))}"
            for n, s in zip(rec["cross_modal_layers"], sel, strict=True)
        )
    return f"{len(sel)} of {sum(1 for _ in rec['grid_index'])}: " + ", ".join(map(str, sel))


def _truth_markdown(rec: dict) -> str:
    t = rec["truth"]
    if t is None:
        return "*Not one of this person's dataset questions: no ground truth to compare.*"
    kind = "🔒 private" if t["private"] else "non-private"
    return (
        f"**Ground truth** ({kind}, {t['category']}): {t['answer']}  \n"
        f"Keywords: {', '.join(t['keywords'])} · keyword EM before **{t['base_em']:.2f}**, "
        f"after **{t['em']:.2f}**"
    )

"""The sign-in bar above the tabs: one signed-in user per browser session, in server-side
state that every tab's actions receive and check."""

from __future__ import annotations

import gradio as gr

from webui import messages
from webui.auth import AuthError, sign_in
from webui.studio import Studio


def build(studio: Studio) -> gr.State:
    who = gr.State(None)
    with gr.Row(elem_id="signin-bar", equal_height=True):
        user = gr.Textbox(label="User", elem_id="login-user", scale=2, max_lines=1)
        password = gr.Textbox(label="Password", type="password", elem_id="login-password",
                              scale=2, max_lines=1)  # fmt: skip
        submit = gr.Button("Sign in", size="sm", elem_id="login-submit", scale=1)
        out = gr.Button("Sign out", size="sm", elem_id="login-signout", scale=1, visible=False)
        status = gr.HTML('<div class="msg msg-info">Not signed in: Explore is open to everyone; '
                         "the other tabs need a role.</div>", elem_id="login-status")  # fmt: skip

    def on_sign_in(name, pw):
        try:
            w = sign_in(studio.db, name, pw)
        except AuthError as e:
            return None, messages.error(e), "", gr.update(visible=False)
        return w, messages.info(f"Signed in as {w.name} ({w.role})."), "", gr.update(visible=True)

    submit.click(on_sign_in, [user, password], [who, status, password, out])
    password.submit(on_sign_in, [user, password], [who, status, password, out])
    out.click(lambda: (None, messages.info("Signed out."),
                       gr.update(visible=False)), None, [who, status, out])  # fmt: skip
    return who

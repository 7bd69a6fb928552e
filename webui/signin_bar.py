"""The sign-in bar above the tabs.

The password never goes through a Gradio event: the button's browser-side function posts it to
`/auth/sign-in` (`webui.session_routes`), whose answer sets the HttpOnly session cookie; a
server-side step then shows who the cookie belongs to. Every tab's handler resolves the user
the same way on each call (`Identity`), so a script that replays the page's session hash
without the cookie acts as nobody.
"""

from __future__ import annotations

import gradio as gr

from webui import messages
from webui.auth import SignedIn, from_request
from webui.studio import Studio

NOT_SIGNED_IN = "Not signed in: Explore is open to everyone; the other tabs need a role."

# Runs in the browser. `credentials: same-origin` lets the answer set the cookie; the password
# field is emptied whatever the outcome. Returns [note, password]: the error to show, or "".
SIGN_IN_JS = """
async (name, password) => {
  let note = "";
  try {
    const r = await fetch("auth/sign-in", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({name: name || "", password: password || ""})});
    if (!r.ok) {
      try { note = (await r.json()).error.message; } catch (e) { note = "sign-in failed"; }
    }
  } catch (e) { note = "the server cannot be reached"; }
  return [note || "", ""];
}
"""
SIGN_OUT_JS = """
async () => {
  try { await fetch("auth/sign-out", {method: "POST", credentials: "same-origin"}); }
  catch (e) {}
  return [];
}
"""


class Identity:
    """Who is calling, resolved from the request's session cookie on every call."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio
        # The bar's status line: its `.change` tells the tabs that the signed-in user changed,
        # so they show or hide the forms a role may use without waiting for a timer.
        self.changed: gr.HTML | None = None

    def __call__(self, request: gr.Request | None) -> SignedIn | None:
        return from_request(self.studio.db, request)


def build(studio: Studio, demo: gr.Blocks) -> Identity:
    who = Identity(studio)
    with gr.Row(elem_id="signin-bar", equal_height=True):
        user = gr.Textbox(label="User", elem_id="login-user", scale=2, max_lines=1)
        password = gr.Textbox(
            label="Password", type="password", elem_id="login-password", scale=2, max_lines=1
        )
        submit = gr.Button("Sign in", size="sm", elem_id="login-submit", scale=1)
        out = gr.Button("Sign out", size="sm", elem_id="login-signout", scale=1, visible=False)
        status = gr.HTML(messages.info(NOT_SIGNED_IN), elem_id="login-status")
        who.changed = status
        note = gr.Textbox(visible=False, elem_id="login-note")

    def show(note_text: str, request: gr.Request):
        """The bar for the cookie's user; `note_text` is the sign-in route's refusal, if any."""
        w = who(request)
        if note_text:
            return messages.error(note_text), gr.update(visible=w is not None)
        if w is None:
            return messages.info(NOT_SIGNED_IN), gr.update(visible=False)
        return messages.info(f"Signed in as {w.name} ({w.role})."), gr.update(visible=True)

    def signed_out(request: gr.Request):
        if who(request) is not None:  # the revocation did not reach the server
            return messages.error("sign-out failed: try again"), gr.update(visible=True)
        return messages.info("Signed out."), gr.update(visible=False)

    for trigger in (submit.click, password.submit):
        trigger(None, [user, password], [note, password], js=SIGN_IN_JS).then(
            show, note, [status, out]
        )
    out.click(None, None, None, js=SIGN_OUT_JS).then(signed_out, None, [status, out])

    def on_load(request: gr.Request):
        return show("", request)

    demo.load(on_load, None, [status, out])  # signed in across a reload: the cookie stays
    return who

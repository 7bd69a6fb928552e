"""Calling the page's event handlers the way a script would: straight through Gradio's queue
(`POST /gradio_api/queue/join`, then the event stream `/gradio_api/queue/data`), with a session
hash the caller chooses and only the cookies the caller sends, bypassing the page."""

from __future__ import annotations

import json
import uuid


def fn_index(app, name: str) -> int:
    """The index of the page's event handler whose Python function is called `name`."""
    blocks = gradio_blocks(app)
    found = [i for i, fn in blocks.fns.items() if getattr(fn.fn, "__name__", None) == name]
    if len(found) != 1:
        raise LookupError(f"{len(found)} handlers named {name!r}")
    return found[0]


def gradio_blocks(app):
    for route in app.routes:
        sub = getattr(route, "app", None)
        if sub is not None and hasattr(sub, "get_blocks"):
            return sub.get_blocks()
    raise LookupError("no Gradio app mounted")


def call(
    client,
    app,
    name: str,
    data: list,
    *,
    session_hash: str | None = None,
    cookies: dict | None = None,
) -> dict:
    """Run handler `name` with raw `data` (one value per input, None for state) and return
    the final queue message: {"success": bool, "output": {"data": [...]}, ...}."""
    session_hash = session_hash or uuid.uuid4().hex[:11]
    client.cookies.clear()
    for k, v in (cookies or {}).items():
        client.cookies.set(k, v)
    body = {
        "fn_index": fn_index(app, name),
        "session_hash": session_hash,
        "data": data,
        "event_data": None,
        "trigger_id": None,
    }
    joined = client.post("/gradio_api/queue/join", json=body)
    if joined.status_code != 200:
        raise RuntimeError(f"queue/join answered {joined.status_code}: {joined.text}")
    with client.stream(
        "GET", "/gradio_api/queue/data", params={"session_hash": session_hash}
    ) as stream:
        done = None
        for line in stream.iter_lines():  # read to the end: the stream closes itself
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    done = msg
                if msg.get("msg") == "close_stream":
                    break
    if done is None:
        raise RuntimeError("the event stream ended without a result")
    return done

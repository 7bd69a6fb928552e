"""cagul-studio web app: FastAPI with the Gradio UI at / and the REST API under /api.

`python app.py` serves the demo bundle's model and data with the SQLite file on
127.0.0.1:7860, applies migrations, registers the shipped demo adapter and starts one job
worker in a subprocess (so training never blocks a page); `--no-worker` leaves the queue to
`python -m jobs.worker` processes on other hosts. This module only composes and launches: the
logic lives in `webui/` and `cagul/`.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import subprocess
import sys
import time

log = logging.getLogger("cagul.app")


def model_info(model_dir: str | None) -> str:
    """The `info` record of the model at `model_dir` (default: the demo bundle) as JSON text."""
    from cagul.models import VLMError, load_vlm
    from cagul.paths import default_model_dir

    try:
        return json.dumps(load_vlm(model_dir or default_model_dir(), device="cpu").info(), indent=2)
    except (VLMError, FileNotFoundError) as e:
        return json.dumps({"error": str(e)}, indent=2)


CSS = """
.msg { padding: 8px 12px; border-radius: 6px; margin: 4px 0; font-size: 14px; }
.msg-error { background: #fde8e8; color: #9b1c1c; border: 1px solid #f8b4b4; }
.msg-info { background: #e8f1fd; color: #1c4f9b; border: 1px solid #b4cdf8; }
"""


def header_markdown(studio) -> str:
    """The page's header, counted now (adapters trained since start included)."""
    return (
        "# cagul-studio\nMake a vision-language model **forget** private facts about people, "
        "**prove** it forgot, and **keep** everything else. "
        f"Model: `{studio.vlm.family}` · {len(studio.dataset)} people · "
        f"{len(studio.adapter_choices())} adapter(s)."
    )


def build_ui(studio):
    """The Gradio Blocks of the app over a loaded `webui.studio.Studio`."""
    import gradio as gr

    from webui import audit_tab, explore_tab, public, reports_tab, requests_tab, signin_bar

    with gr.Blocks(title="cagul-studio") as demo:
        header = gr.Markdown(header_markdown(studio), elem_id="app-header")
        who = signin_bar.build(studio, demo)
        explore_adapter, explore_person = explore_tab.build(studio)
        pickers = [explore_adapter]
        requests_person = requests_tab.build(studio, who)
        pickers.append(audit_tab.build(studio, who))
        pickers.append(reports_tab.build(studio, who))
        with gr.Tab("Model", elem_id="tab-model"):
            info = public.scrub(studio.vlm.info())  # the model's path relative to the repository
            gr.Code(json.dumps(info, indent=2), language="json", elem_id="model-info")
        # Counted again on load and every 30 s: the header, the ⊘ marks and the adapter pickers
        # used to show the start's state until a restart.
        people = [explore_person, requests_person]
        live = [header, *people, *pickers]

        def recount():
            return live_updates(studio, len(pickers), len(people))

        demo.load(recount, None, live)
        gr.Timer(30.0).tick(recount, None, live)
    return demo


def live_updates(studio, n_adapter_pickers: int, n_person_pickers: int = 1) -> list:
    """The header, `n_person_pickers` person pickers' choices (⊘ marks of people an adapter
    forgets) and `n_adapter_pickers` adapter pickers' choices, counted now; a picker keeps its
    value."""
    import gradio as gr

    adapters, people = studio.adapter_choices(), studio.person_choices()
    return [
        header_markdown(studio),
        *[gr.update(choices=people) for _ in range(n_person_pickers)],
        *[gr.update(choices=adapters) for _ in range(n_adapter_pickers)],
    ]


def create_app(studio):
    """The FastAPI app: REST under /api, Gradio at /."""
    import gradio as gr
    from fastapi import FastAPI

    from cagul.inputs import MAX_IMAGE_BYTES
    from webui import http_guards, session_routes
    from webui.api import install_error_handlers, router
    from webui.api_docs import install_docs
    from webui.explore import HEATMAP_CSS

    app = FastAPI(title="cagul-studio", docs_url=None, openapi_url="/api/openapi.json")
    install_docs(app)  # Swagger UI from local files: /api/docs works offline
    install_error_handlers(app)
    app.include_router(router(studio))
    app.include_router(session_routes.router(studio))
    # Outermost first: refuse foreign origins, bound bodies, then shape every error.
    for guard in (http_guards.ErrorShape, http_guards.BodyLimit, http_guards.OriginGuard):
        app.add_middleware(guard)
    demo = build_ui(studio)
    # show_error=False: an unexpected exception reaches the page as a bare "error", never with
    # its text (paths, reprs); the handlers show their own refusals.
    app = gr.mount_gradio_app(
        app,
        demo,
        path="/",
        css=CSS + HEATMAP_CSS,
        footer_links=[],
        ssr_mode=False,
        show_error=False,
        max_file_size=MAX_IMAGE_BYTES,
    )
    # Gradio checks that a file an event names lies in its upload folder only once the Blocks
    # "has launched", which `launch()` marks and mounting does not: unmarked, it copies any
    # server file a script names into its cache. Mounted is launched here.
    demo.has_launched = True
    return app


def start_worker(args: argparse.Namespace) -> subprocess.Popen:
    """One `python -m jobs.worker` beside the app, stopped with it. A job it was running when
    the app was killed is re-queued by the next worker's reaper: nothing is lost."""
    env = dict(os.environ)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    if args.model:
        env["CAGUL_MODEL_DIR"] = args.model
    if args.data:
        env["CAGUL_DATA_DIR"] = args.data
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.worker"], env=env, preexec_fn=_die_with_parent
    )
    atexit.register(lambda: proc.poll() is None and proc.terminate())
    return proc


def _die_with_parent() -> None:
    """In the worker child (Linux): SIGKILL when the app dies, however it dies, so no orphan
    keeps a claim; its job is re-queued by the next worker's reaper after the stale timeout."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the cagul-studio app.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--model", help="local VLM checkpoint (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    p.add_argument("--database-url", help="default: DATABASE_URL, else .cagul/cagul.sqlite")
    p.add_argument("--no-worker", action="store_true", help="run no job worker in this process")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from webui.auth import ensure_admin
    from webui.studio import Studio

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    started = time.perf_counter()
    studio = Studio(model_dir=args.model, data_dir=args.data, database_url=args.database_url)
    password = ensure_admin(studio.db)
    if password:  # printed once; only its hash is stored
        print(f"First run: created user 'admin' with password {password}", flush=True)
    app = create_app(studio)
    if not args.no_worker:
        start_worker(args)
    log.info(
        "ready in %.1f s: http://%s:%d (REST under /api)",
        time.perf_counter() - started,
        args.host,
        args.port,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

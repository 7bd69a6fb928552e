"""cagul-studio web app: wires the UI to importable functions in `cagul/`, nothing more.

This first page shows the loaded model's geometry (DESIGN §8 `info`); the Explore, Forget
requests, Audit and Reports tabs arrive with the issues that build their logic.
"""

from __future__ import annotations

import argparse
import json


def model_info(model_dir: str | None) -> str:
    """The `info` record of the model at `model_dir` (default: the demo bundle) as JSON text."""
    from cagul.models import VLMError, load_vlm
    from cagul.paths import default_model_dir

    try:
        return json.dumps(load_vlm(model_dir or default_model_dir(), device="cpu").info(), indent=2)
    except (VLMError, FileNotFoundError) as e:
        return json.dumps({"error": str(e)}, indent=2)


def build_ui():
    import gradio as gr

    with gr.Blocks(title="cagul-studio") as demo:
        gr.Markdown("# cagul-studio\nMake a vision-language model forget private facts.")
        with gr.Tab("Model", elem_id="tab-model"):
            path = gr.Textbox(
                label="Model directory (empty: demo bundle)", elem_id="model-dir", value=""
            )
            show = gr.Button("Show model info", elem_id="model-info-btn")
            out = gr.Code(label="info", language="json", elem_id="model-info")
            show.click(model_info, inputs=path, outputs=out)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the cagul-studio app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    args = parser.parse_args()
    build_ui().launch(server_name=args.host, server_port=args.port)


if __name__ == "__main__":
    main()

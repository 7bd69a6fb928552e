"""`python -m cagul COMMAND`: the command-line contract of DESIGN §8.

Every command prints machine-readable JSON to stdout (or `--out`), progress to stderr, and
exits non-zero with a one-line message on bad input instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cagul.paths import default_model_dir


def _emit(obj: dict, out: str | None) -> None:
    text = json.dumps(obj, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    else:
        print(text)


def cmd_info(args: argparse.Namespace) -> dict:
    from cagul.models import load_vlm

    return load_vlm(args.model or default_model_dir(), device=args.device).info()


def cmd_tiny(args: argparse.Namespace) -> dict:
    from cagul.models.tiny import build_tiny_vlm

    out = build_tiny_vlm(
        args.family, args.out, hidden=args.hidden, layers=args.layers, seed=args.seed
    )
    return {"family": args.family, "path": str(out)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cagul", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="family, attention kind, visual-token count and grid of a VLM")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("tiny-model", help="build an untrained tiny VLM of a family (fixtures)")
    p.add_argument("--family", required=True, choices=["qwen2_5_vl", "mllama", "llava"])
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny, out_is_dir=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cagul.models import VLMError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (VLMError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _emit(result, None if getattr(args, "out_is_dir", False) else getattr(args, "out", None))
    return 0

"""`python -m cagul COMMAND`: the command-line contract of DESIGN §8.

Every command prints machine-readable JSON to stdout (or `--out`), progress to stderr, and
exits non-zero with a one-line message on bad input instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cagul.paths import DEMO_DIR, default_model_dir


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


def cmd_demo_bundle(args: argparse.Namespace) -> dict:
    from dataclasses import fields

    from cagul.bundle import BundleConfig, build_demo_bundle

    overrides = {f.name: getattr(args, f.name) for f in fields(BundleConfig)
                 if getattr(args, f.name, None) is not None}  # fmt: skip
    bundle = build_demo_bundle(args.out, BundleConfig(**overrides))
    return {"out": str(args.out), "acceptance": bundle["acceptance"],
            "stage_seconds": bundle["stage_seconds"]}  # fmt: skip


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from cagul.data import load_dataset, load_probes, make_split
    from cagul.evaluate import append_csv_row, evaluate
    from cagul.models import load_vlm
    from cagul.paths import default_data_dir

    if args.adapter:
        raise ValueError(
            "--adapter: unlearning adapters are not implemented yet (CAGUL issue); "
            "evaluate the base model without --adapter"
        )
    data_dir = Path(args.data) if args.data else default_data_dir()
    ds = load_dataset(data_dir)
    split = make_split(ds, args.split, setting=args.setting)
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    check_model_data(vlm, ds)
    probes = load_probes(data_dir / "probes") if (data_dir / "probes").is_dir() else None
    retrain_x = None
    if args.retrain_report:
        retrain_x = json.loads(Path(args.retrain_report).read_text())["values"][
            "forget_truth_ratio_x"
        ]
    report = evaluate(
        vlm,
        split,
        probes,
        retrain_truth_x=retrain_x,
        max_retain=args.max_retain,
        batch_size=args.batch_size,
        meta={"data": str(data_dir), "adapter": None, "method": "base"},
    )
    if args.csv or args.out:
        append_csv_row(report, args.csv or Path(args.out).with_suffix(".csv"))
    return report


def check_model_data(vlm, ds) -> None:
    """Refuse data the model cannot read: answers whose words its tokenizer does not know."""
    unk = vlm.tokenizer.unk_token_id
    if unk is None:
        return  # byte-level tokenizers represent every text
    words = {w for ind in ds for qa in ind.qa_list for w in qa.answer.split()}
    unknown = [w for w in words if unk in vlm.tokenizer(w, add_special_tokens=False)["input_ids"]]
    if len(unknown) > 0.05 * max(1, len(words)):
        raise ValueError(
            f"model/data mismatch: the tokenizer of {vlm.path} does not know "
            f"{len(unknown)} of {len(words)} answer words (e.g. {unknown[:3]})"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m cagul", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="family, attention kind, visual-token count and grid of a VLM")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("evaluate", help="FIUBench metrics of a model (+ adapter) on a split")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    p.add_argument("--adapter", help="unlearning adapter directory")
    p.add_argument("--split", default="forget10", help="split name in split.json, or ids")
    p.add_argument("--setting", default="private", choices=["private", "identity"])
    p.add_argument("--retrain-report", help="a Retrain model's report, for forget quality (KS)")
    p.add_argument("--max-retain", type=int, default=None, help="evaluate at most N retain pairs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--csv", help="append a row here (default: next to --out)")
    p.add_argument("--out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("demo-bundle", help="generate the demo data and train its tiny VLMs")
    p.add_argument("--out", default=str(DEMO_DIR), help="bundle directory (default: %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="data and training seed (default 0)")
    p.add_argument("--bio-epochs", dest="bio_epochs", type=int, default=None)
    p.add_argument("--vqa-epochs", dest="vqa_epochs", type=int, default=None)
    p.add_argument("--n-individuals", dest="n_individuals", type=int, default=None)
    p.set_defaults(func=cmd_demo_bundle, out_is_dir=True)

    p = sub.add_parser("tiny-model", help="build an untrained tiny VLM of a family (fixtures)")
    p.add_argument("--family", required=True, choices=["qwen2_5_vl", "mllama", "llava"])
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny, out_is_dir=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cagul.data import DataError
    from cagul.models import VLMError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (VLMError, DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _emit(result, None if getattr(args, "out_is_dir", False) else getattr(args, "out", None))
    return 0

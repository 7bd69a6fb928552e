"""`python -m cagul COMMAND`: the command-line contract of DESIGN §8.

Every command prints machine-readable JSON to stdout (or `--out`), progress to stderr, and
exits non-zero with a one-line message on bad input instead of a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import MISSING, fields
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


def bundle_config(args: argparse.Namespace):
    """The `BundleConfig` a parsed `demo-bundle` command asks for (unset options: defaults)."""
    from cagul.bundle import BundleConfig

    return BundleConfig(**{f.name: getattr(args, f.name) for f in fields(BundleConfig)
                           if getattr(args, f.name, None) is not None})  # fmt: skip


def cmd_demo_bundle(args: argparse.Namespace) -> dict:
    from cagul.bundle import build_demo_bundle

    bundle = build_demo_bundle(args.out, bundle_config(args), resume=args.resume)
    return {"out": str(args.out), "acceptance": bundle["acceptance"],
            "stage_seconds": bundle["stage_seconds"]}  # fmt: skip


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from cagul.data import load_dataset, load_probes, make_split
    from cagul.evaluate import append_csv_row, evaluate, evaluate_adapters
    from cagul.inference import load_adapters
    from cagul.models import load_vlm
    from cagul.paths import default_data_dir

    data_dir = Path(args.data) if args.data else default_data_dir()
    ds = load_dataset(data_dir)
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    check_model_data(vlm, ds)
    adapters = load_adapters(vlm, args.adapter)
    setting, forget = args.setting, args.split
    if adapters and args.split is None:
        # An adapter knows whom it forgets: evaluate on exactly that split by default.
        cfg = adapters[0].config
        forget = sorted({i for a in adapters for i in a.config.forget_ids})
        setting = cfg.setting
    split = make_split(ds, forget or "forget10", setting=setting)
    probes = load_probes(data_dir / "probes") if (data_dir / "probes").is_dir() else None
    retrain_x = None
    if args.retrain_report:
        retrain_x = json.loads(Path(args.retrain_report).read_text())["values"][
            "forget_truth_ratio_x"
        ]
    common = dict(retrain_truth_x=retrain_x, max_retain=args.max_retain,
                  batch_size=args.batch_size)  # fmt: skip
    if adapters:
        meta = {"data": str(data_dir), "adapter": ",".join(args.adapter), "method": "cagul"}
        report = evaluate_adapters(vlm, adapters, split, probes, meta=meta, **common)
    else:
        meta = {"data": str(data_dir), "adapter": None, "method": "base"}
        report = evaluate(vlm, split, probes, meta=meta, **common)
    if args.csv or args.out:
        append_csv_row(report, args.csv or Path(args.out).with_suffix(".csv"))
    return report


class _Bar:
    """A tqdm bar on stderr fed with (fraction, message) progress callbacks."""

    def __init__(self, desc: str):
        from tqdm import tqdm

        self.bar = tqdm(
            total=1000, desc=desc, file=sys.stderr, bar_format="{l_bar}{bar}| {postfix}"
        )

    def __call__(self, frac: float, msg: str = "") -> None:
        self.bar.n = int(1000 * min(1.0, max(0.0, frac)))
        self.bar.set_postfix_str(msg, refresh=True)

    def close(self) -> None:
        self.bar.close()


def cmd_unlearn(args: argparse.Namespace) -> dict:
    from cagul.data import PRIVATE_CATEGORIES, load_dataset, resolve_forget_ids
    from cagul.paths import default_data_dir
    from cagul.pipeline import run_unlearning
    from cagul.train_cagul import CagulTrainingArguments

    data_dir = Path(args.data) if args.data else default_data_dir()
    ds = load_dataset(data_dir)
    if args.forget:
        ids = [i.strip() for i in args.forget.split(",") if i.strip()]
    else:
        ids = resolve_forget_ids(ds, args.split or "forget10", 0)[1]
    training = CagulTrainingArguments()
    for name in (
        "epochs",
        "disc_epochs",
        "lr",
        "forget_weight",
        "encoder_views",
        "hard_weight",
        "wordings",
        "seed",
    ):
        if getattr(args, name) is not None:
            setattr(training, name, getattr(args, name))
    options = {}
    if args.selection:
        options["selection"] = args.selection
    if args.no_discriminator:
        options["use_discriminator"] = False
    if args.no_encoder:
        options["use_encoder"] = False
    if args.objective:
        options["objective"] = args.objective
    bar = _Bar("unlearn")
    try:
        out = run_unlearning(
            model_dir=args.model or default_model_dir(),
            data_dir=data_dir,
            forget_ids=ids,
            categories=list(PRIVATE_CATEGORIES) if args.setting == "private" else None,
            method=args.method,
            out_dir=args.out,
            progress=bar,
            k=args.k,
            training=training,
            device=args.device,
            max_retain=args.max_retain,
            adapter_options=options,
        )
    finally:
        bar.close()
    report = out["report"]
    if args.report:  # beside, never inside, the adapter dir: it holds config + weights only
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return {"adapter": str(args.out), "base_fingerprint": out["base_fingerprint"],
            "report": report}  # fmt: skip


def cmd_consolidate(args: argparse.Namespace) -> dict:
    from cagul.paths import default_data_dir
    from cagul.pipeline import consolidate

    bar = _Bar("consolidate")
    try:
        out = consolidate(
            model_dir=args.model or default_model_dir(),
            data_dir=Path(args.data) if args.data else default_data_dir(),
            adapter_dirs=args.adapter,
            out_dir=args.out,
            progress=bar,
            device=args.device,
        )
    finally:
        bar.close()
    return {"adapter": str(args.out), "base_fingerprint": out["base_fingerprint"],
            "report": out["report"]}  # fmt: skip


def cmd_answer(args: argparse.Namespace) -> dict:
    from cagul.inference import answer_one, load_adapters
    from cagul.models import load_vlm

    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    return answer_one(vlm, load_adapters(vlm, args.adapter), args.image, args.question)


def cmd_audit(args: argparse.Namespace) -> dict:
    from cagul.data import load_dataset
    from cagul.inference import audit, load_adapters, read_prompts
    from cagul.models import load_vlm
    from cagul.paths import default_data_dir

    prompts = read_prompts(args.prompts)
    data_dir = Path(args.data) if args.data else default_data_dir()
    ids = {ind.unique_id: str(ind.image_file) for ind in load_dataset(data_dir)}
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    rows = audit(vlm, load_adapters(vlm, args.adapter), prompts, ids)
    return {"rows": rows, "n": len(rows), "leaks": sum(r["leaked"] for r in rows),
            "base_leaks": sum(r["base_em"] > 0 for r in rows)}  # fmt: skip


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
    p.add_argument("--adapter", action="append", help="adapter directory (repeat to stack)")
    p.add_argument(
        "--split",
        default=None,
        help="split name in split.json, or ids (default: the adapter's, or forget10)",
    )
    p.add_argument("--setting", default="private", choices=["private", "identity"])
    p.add_argument("--retrain-report", help="a Retrain model's report, for forget quality (KS)")
    p.add_argument("--max-retain", type=int, default=None, help="evaluate at most N retain pairs")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--csv", help="append a row here (default: next to --out)")
    p.add_argument("--out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("unlearn", help="train an unlearning adapter for a forget request")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    p.add_argument("--method", default="cagul", choices=["cagul"])
    p.add_argument("--forget", help="comma-separated individual ids")
    p.add_argument("--split", help="split name in split.json (default forget10)")
    p.add_argument("--setting", default="private", choices=["private", "identity"])
    p.add_argument(
        "--k",
        type=int,
        help="tokens rewritten per sample (default: 1.5%%, or half a small grid up to 8)",
    )
    p.add_argument("--epochs", type=int, help="joint epochs")
    p.add_argument("--disc-epochs", dest="disc_epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--forget-weight", dest="forget_weight", type=float, help="PO/GA weight")
    p.add_argument("--encoder-views", dest="encoder_views", type=int,
                   help="perturbed copies per forget pair for the encoder (default 8; 0: "
                        "faster, but a re-saved or shifted photo leaks more)")  # fmt: skip
    p.add_argument("--hard-weight", dest="hard_weight", type=float,
                   help="weight samples by last loss / role mean to this power (default 1; "
                        "0: uniform)")  # fmt: skip
    p.add_argument("--wordings", type=int,
                   help="also train each forget / non-private pair in up to N other training "
                        "templates of its field (default 0)")  # fmt: skip
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    p.add_argument("--selection", choices=["least_attended", "random"])
    p.add_argument("--objective", choices=["po_gd", "ga_gd", "ga_kl"])
    p.add_argument("--no-discriminator", action="store_true", help="ablation: transform all")
    p.add_argument("--no-encoder", action="store_true", help="ablation: uniform noise")
    p.add_argument("--max-retain", type=int, default=200, help="retain pairs evaluated")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="adapter directory to write")
    p.add_argument("--report", help="also write the evaluation report here")
    p.set_defaults(func=cmd_unlearn, out_is_dir=True)

    p = sub.add_parser("consolidate", help="merge stacked adapters into one (retrains)")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    p.add_argument("--adapter", action="append", required=True, help="adapter dir (repeat)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="adapter directory to write")
    p.set_defaults(func=cmd_consolidate, out_is_dir=True)

    p = sub.add_parser("answer", help="answer one question, before and after unlearning")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--adapter", action="append", help="adapter directory (repeat to stack)")
    p.add_argument("--image", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_answer)

    p = sub.add_parser("audit", help="probe for leaks with prompts from a JSONL file")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="dataset, to resolve individual ids (default: the bundle's)")
    p.add_argument("--adapter", action="append", help="adapter directory (repeat to stack)")
    p.add_argument("--prompts", required=True, help="JSONL: image, question, keywords")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("demo-bundle", help="generate the demo data and train its tiny VLMs")
    p.add_argument("--out", default=str(DEMO_DIR), help="bundle directory (default: %(default)s)")
    p.add_argument("--resume", action="store_true",
                   help="keep the Pretrain model an earlier build of the same recipe left in "
                   "--out (only the biography options may differ) and run the later stages")  # fmt: skip
    from cagul.bundle import BundleConfig  # its fields are the options (imports torch)

    # Every recipe field is an option, so the command bundle.json records always parses.
    for f in fields(BundleConfig):
        default = f.default if f.default is not MISSING else None
        p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, type=type(default),
                       default=None, help=f"{f.metadata.get('help', '')} (default {default})".replace("%", "%%"))  # fmt: skip
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
    from cagul.adapter import AdapterError
    from cagul.data import DataError
    from cagul.models import VLMError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (VLMError, DataError, AdapterError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _emit(result, None if getattr(args, "out_is_dir", False) else getattr(args, "out", None))
    return 0

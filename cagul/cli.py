"""`python -m cagul COMMAND`: the command-line contract (docs/architecture.md).

Every command prints machine-readable JSON to stdout (or `--out`), progress to stderr, and
exits non-zero with a one-line message on bad input instead of a traceback.

Bad input fails before any work (exit 2, `error: ...` on one line): numbers are range-checked
as they are parsed, output paths are checked before a model is loaded (an `--out` file must
not be a directory and its folder must exist; an adapter `--out` must be an empty or new
directory, or `--overwrite` is needed), images and questions go through `cagul.inputs`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import MISSING, fields
from pathlib import Path

from cagul.paths import DEMO_DIR, default_model_dir
from cagul.progress import Bar


class BadArgumentError(ValueError):
    """A command-line argument cannot be used; raised before any model or data work."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (its default prints the usage block first)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see --help)\n")


def int_at_least(low: int):
    """An argparse type: an integer ≥ `low` (so `--k 0` is refused, not read as "default")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def float_at_least(low: float, *, strict: bool = False):
    """An argparse type: a finite float ≥ `low` (> `low` when `strict`)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (strict and value == low):
            bound = f"> {low}" if strict else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be a finite number {bound}, got {text}")
        return value

    return parse


def non_blank(text: str) -> str:
    """An argparse type: text that is not empty or blank (`--data ""` is not "the default")."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


# Options whose blank value gets its own, more specific message later.
_BLANK_CHECKED_LATER = {"--forget", "--question"}


def refuse_blank_values(parser: argparse.ArgumentParser) -> None:
    """Give every untyped value option of every command the `non_blank` type.

    `args.data or default` turned an empty `--data ""`, `--model ""` or `--split ""` into the
    default silently; one pass over the built parser closes that for all options at once.
    """
    commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for sub in (p for group in commands for p in group.choices.values()):
        for action in sub._actions:
            value_option = isinstance(action, argparse._StoreAction | argparse._AppendAction)
            later = set(action.option_strings) & _BLANK_CHECKED_LATER
            if value_option and action.type is None and action.choices is None and not later:
                action.type = non_blank


def check_out_file(path: str | None, option: str = "--out") -> None:
    """Refuse, before any work, an output file that could not be written afterwards."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise BadArgumentError(f"{option} {p} is a directory; give a file path")
    if not p.parent.is_dir():
        raise BadArgumentError(f"{option} {p}: the folder {p.parent} does not exist")


def check_adapter_out(
    path: str, overwrite: bool, option: str = "--out", inputs: tuple = ()
) -> Path:
    """Refuse, before training, an adapter directory that cannot or must not be written.

    New or empty: fine. A file, a symlink, or a path under a file: refused. Holding files (an
    earlier adapter or anything else): refused unless `overwrite`, and even then only when
    it holds plain files, never folders (so `--out ~ --overwrite` cannot wipe a home), is
    none of the command's `inputs` (its model, data or adapter directories) and holds no
    model (`config.json`) or dataset (`full.json`).
    """
    p = Path(path)
    if p.is_symlink():
        raise BadArgumentError(f"{option} {p} is a symbolic link; give a real directory")
    if p.exists() and not p.is_dir():
        raise BadArgumentError(f"{option} {p} is a file, not a directory")
    ancestor = next(a for a in p.absolute().parents if a.exists())
    if not p.exists() and not ancestor.is_dir():
        raise BadArgumentError(f"{option} {p}: {ancestor} is a file, not a directory")
    entries = sorted(p.iterdir()) if p.is_dir() else []
    if not entries:
        return p
    held = "another adapter" if (p / "adapter_config.json").exists() else f"{len(entries)} files"
    if not overwrite:
        raise BadArgumentError(f"{option} {p} already holds {held}; pass --overwrite to replace it")
    folders = [e.name for e in entries if e.is_dir() and not e.is_symlink()]
    if folders:
        raise BadArgumentError(
            f"{option} {p} holds folders ({', '.join(folders[:3])}); not replacing it"
        )
    _refuse_replacing_inputs(p, option, inputs)
    return p


def _refuse_replacing_inputs(p: Path, option: str, inputs: tuple) -> None:
    """`--overwrite` must never delete what the command reads (or any model or dataset)."""
    here = p.resolve()
    for given in inputs:
        if given and Path(given).resolve() == here:
            raise BadArgumentError(
                f"{option} {p} is also an input of this command; not replacing it"
            )
    for marker, what in (("config.json", "a model"), ("full.json", "a dataset")):
        if (p / marker).exists():
            raise BadArgumentError(f"{option} {p} holds {what} ({marker}); not replacing it")


def clear_adapter_out(path: Path) -> None:
    """Empty a directory `check_adapter_out` accepted with --overwrite (files only)."""
    if path.is_dir():
        for entry in path.iterdir():
            entry.unlink()


def _emit(obj: dict, out: str | None) -> None:
    text = json.dumps(obj, indent=2)
    if out:
        Path(out).write_text(text + "\n")
    else:
        print(text)


def cmd_info(args: argparse.Namespace) -> dict:
    from cagul.models import load_vlm

    check_out_file(args.out)
    return load_vlm(args.model or default_model_dir(), device=args.device).info()


def cmd_tiny(args: argparse.Namespace) -> dict:
    from cagul.demo.tiny import build_tiny_vlm

    out = build_tiny_vlm(
        args.family, args.out, hidden=args.hidden, layers=args.layers, seed=args.seed
    )
    return {"family": args.family, "path": str(out)}


def cmd_benchmark(args: argparse.Namespace) -> dict:
    """The paper's tables and sweeps on the bundle (cagul/benchmark/)."""
    from dataclasses import replace

    from cagul.benchmark import QUICK, Settings, run_benchmark
    from cagul.paths import default_data_dir

    settings = QUICK if args.quick else Settings()
    if args.seeds:
        settings = replace(settings, seeds=tuple(int(s) for s in args.seeds.split(",")))
    if args.sweep_epochs:
        settings = replace(settings, sweep_epochs=args.sweep_epochs)
    return run_benchmark(
        args.out,
        settings,
        model_dir=args.model or default_model_dir(),
        data_dir=args.data or default_data_dir(),
        jobs=args.jobs,
        threads=args.threads,
        device=args.device,
        command="python -m cagul " + " ".join(sys.argv[1:]),
    )


def bundle_config(args: argparse.Namespace):
    """The `BundleConfig` a parsed `demo-bundle` command asks for (unset options: defaults)."""
    from cagul.demo.bundle import BundleConfig

    return BundleConfig(
        **{
            f.name: getattr(args, f.name)
            for f in fields(BundleConfig)
            if getattr(args, f.name, None) is not None
        }
    )


def cmd_demo_bundle(args: argparse.Namespace) -> dict:
    from cagul.demo.bundle import build_demo_bundle

    bundle = build_demo_bundle(args.out, bundle_config(args), resume=args.resume)
    return {
        "out": str(args.out),
        "acceptance": bundle["acceptance"],
        "stage_seconds": bundle["stage_seconds"],
    }


def cmd_evaluate(args: argparse.Namespace) -> dict:
    from cagul.data import load_dataset, load_probes, make_split
    from cagul.evaluate import append_csv_row, evaluate, evaluate_unlearned
    from cagul.inference import load_adapters
    from cagul.methods.cagul.method import CagulUnlearned
    from cagul.models import load_vlm
    from cagul.paths import default_data_dir

    check_out_file(args.out)
    check_out_file(args.csv, "--csv")
    retrain_x = read_retrain_report(args.retrain_report)
    data_dir = Path(args.data) if args.data else default_data_dir()
    ds = load_dataset(data_dir)
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    check_model_data(vlm, ds)
    unlearned = load_other_method(vlm, args.adapter)
    adapters = [] if unlearned else load_adapters(vlm, args.adapter)
    setting, forget = args.setting, args.split
    if adapters and args.split is None:
        # An adapter knows whom it forgets: evaluate on exactly that split by default.
        cfg = adapters[0].config
        forget = sorted({i for a in adapters for i in a.config.forget_ids})
        setting = cfg.setting
    elif unlearned and args.split is None:
        forget, setting = unlearned.config["forget_ids"], unlearned.config["setting"]
    split = make_split(ds, forget or "forget10", setting=setting)
    probes = load_probes(data_dir / "probes") if (data_dir / "probes").is_dir() else None
    common = dict(retrain_truth_x=retrain_x, max_retain=args.max_retain, batch_size=args.batch_size)
    if unlearned:
        from cagul.evaluate import evaluate_unlearned

        meta = {"data": str(data_dir), "adapter": args.adapter[0], "method": unlearned.method}
        report = evaluate_unlearned(vlm, unlearned, split, probes, meta=meta, **common)
    elif adapters:
        meta = {"data": str(data_dir), "adapter": ",".join(args.adapter), "method": "cagul"}
        report = evaluate_unlearned(
            vlm, CagulUnlearned(vlm, adapters), split, probes, meta=meta, **common
        )
    else:
        meta = {"data": str(data_dir), "adapter": None, "method": "base"}
        report = evaluate(vlm, split, probes, meta=meta, **common)
    if args.csv or args.out:
        append_csv_row(report, args.csv or Path(args.out).with_suffix(".csv"))
    return report


def load_other_method(vlm, dirs: list[str] | None):
    """The unlearned model of a non-CAGUL artifact (`--adapter DIR` of any registered method),
    or None when every dir is a CAGUL adapter (those stack; the others do not)."""
    from cagul.methods import ArtifactError, artifact_method, load_unlearned

    def method_of(d: str) -> str:
        try:
            return artifact_method(d)
        except ArtifactError:  # not readable: CAGUL's loader (the default) says why
            return "cagul"

    methods = [method_of(d) for d in dirs or []]
    if not methods or set(methods) == {"cagul"}:
        return None
    if len(methods) > 1:
        raise ValueError(f"only CAGUL adapters stack; got {', '.join(methods)}")
    return load_unlearned(vlm, dirs[0])


def read_retrain_report(path: str | None) -> list | None:
    """The Retrain report's forget truth ratios, read before any evaluation starts."""
    if not path:
        return None
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))["values"]
        ratios = values["forget_truth_ratio_x"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BadArgumentError(f"--retrain-report {path}: not a readable report ({e!r})") from e
    if not isinstance(ratios, list):
        raise BadArgumentError(f"--retrain-report {path}: forget_truth_ratio_x is not a list")
    return ratios


#: `unlearn` options that set CAGUL's config (besides the shared --epochs, --lr, --seed).
CAGUL_OPTIONS = (
    "k",
    "disc_epochs",
    "forget_weight",
    "encoder_views",
    "hard_weight",
    "selection",
    "objective",
)


def cmd_unlearn(args: argparse.Namespace) -> dict:
    from cagul.data import PRIVATE_CATEGORIES, load_dataset, resolve_forget_ids
    from cagul.paths import default_data_dir
    from cagul.pipeline import method_config, run_unlearning

    out_dir = check_adapter_out(args.out, args.overwrite, inputs=(args.model, args.data))
    check_out_file(args.report, "--report")
    if args.report and Path(args.report).absolute().is_relative_to(out_dir.absolute()):
        raise BadArgumentError("--report must lie beside --out, not inside the adapter directory")
    data_dir = Path(args.data) if args.data else default_data_dir()
    ds = load_dataset(data_dir)
    if args.forget is not None:
        ids = forget_ids_from(args.forget, ds)
    else:
        ids = resolve_forget_ids(ds, args.split or "forget10", 0)[1]
    shared = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed}
    # The other training options are CAGUL's (--method's help says so): they reach no other
    # method, even one with a field of the same name (LoRA's forget_weight).
    own = {name: getattr(args, name) for name in CAGUL_OPTIONS} if args.method == "cagul" else {}
    if own:
        own["use_discriminator"] = False if args.no_discriminator else None
        own["use_encoder"] = False if args.no_encoder else None
    config = method_config(args.method, **shared, **own)
    clear_adapter_out(out_dir)  # every check passed: --overwrite may now replace it
    bar = Bar("unlearn")
    try:
        out = run_unlearning(
            model_dir=args.model or default_model_dir(),
            data_dir=data_dir,
            forget_ids=ids,
            categories=list(PRIVATE_CATEGORIES) if args.setting == "private" else None,
            method=args.method,
            out_dir=args.out,
            progress=bar,
            device=args.device,
            max_retain=args.max_retain,
            config=config,
        )
    finally:
        bar.close()
    report = out["report"]
    if args.report:  # beside, never inside, the adapter dir: it holds config + weights only
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    return {"adapter": str(args.out), "base_fingerprint": out["base_fingerprint"], "report": report}


def forget_ids_from(text: str, ds) -> list[str]:
    """The ids of `--forget a,b`: an empty list is refused, never read as "the default"."""
    from cagul.data import UnknownIdError

    ids = list(dict.fromkeys(i.strip() for i in text.split(",") if i.strip()))
    if not ids:
        raise BadArgumentError("--forget is empty: give comma-separated individual ids")
    known = set(ds.ids)
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise UnknownIdError(f"--forget names unknown individual(s): {', '.join(unknown[:5])}")
    return ids


def cmd_consolidate(args: argparse.Namespace) -> dict:
    from cagul.methods.cagul.consolidate import consolidate
    from cagul.paths import default_data_dir

    inputs = (args.model, args.data, *args.adapter)
    out_dir = check_adapter_out(args.out, args.overwrite, inputs=inputs)
    clear_adapter_out(out_dir)
    bar = Bar("consolidate")
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
    return {
        "adapter": str(args.out),
        "base_fingerprint": out["base_fingerprint"],
        "report": out["report"],
    }


def load_model(vlm, dirs: list[str] | None):
    """The unlearned model `--adapter DIR` names: one artifact of any registered method, or
    stacked CAGUL adapters (repeat --adapter); None without --adapter."""
    from cagul.inference import load_adapters
    from cagul.methods.cagul.method import CagulUnlearned

    other = load_other_method(vlm, dirs)
    if other is not None:
        return other
    adapters = load_adapters(vlm, dirs)
    return CagulUnlearned(vlm, adapters) if adapters else None


def cmd_answer(args: argparse.Namespace) -> dict:
    from cagul.inference import answer_record
    from cagul.inputs import clean_question, open_image
    from cagul.models import load_vlm

    check_out_file(args.out)
    question = clean_question(args.question)
    open_image(args.image)  # a bomb or a corrupt file fails here, before the model loads
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    return answer_record(vlm, load_model(vlm, args.adapter), args.image, question)


def cmd_audit(args: argparse.Namespace) -> dict:
    from cagul.attacks.audit import attack_budgets, audit_worst_case
    from cagul.attacks.outcome import outcome_rates
    from cagul.data import load_dataset
    from cagul.inference import audit, check_prompt_images, read_prompts
    from cagul.models import load_vlm
    from cagul.paths import default_data_dir

    check_out_file(args.out)
    budgets = attack_budgets(args.attack, args.eps)  # a bad --eps fails before any work
    prompts = read_prompts(args.prompts)
    data_dir = Path(args.data) if args.data else default_data_dir()
    ids = {ind.unique_id: str(ind.image_file) for ind in load_dataset(data_dir)}
    root = Path(args.image_root) if args.image_root else Path(args.prompts).parent
    images = check_prompt_images(prompts, ids, root)  # every image, before the model loads
    vlm = load_vlm(args.model or default_model_dir(), device=args.device)
    model = load_model(vlm, args.adapter)
    rows = audit(vlm, model, prompts, ids, images=images)
    result = {
        "rows": rows,
        "n": len(rows),
        "leaks": sum(r["leaked"] for r in rows),
        "base_leaks": sum(r["base_em"] > 0 for r in rows),
        "outcomes": outcome_rates([r["outcome"] for r in rows]),
        "base_outcomes": outcome_rates([r["base_outcome"] for r in rows]),
        "method": model.method if model is not None else None,
    }
    if budgets:
        result["worst_case"] = audit_worst_case(
            vlm, model, rows, images, budgets, steps=args.steps, seed=args.seed
        )
    return result


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
    parser = _Parser(prog="python -m cagul", description=__doc__)
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
    p.add_argument(
        "--max-retain", type=int_at_least(1), default=None, help="evaluate at most N retain pairs"
    )
    p.add_argument("--batch-size", type=int_at_least(1), default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--csv", help="append a row here (default: next to --out)")
    p.add_argument("--out")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("unlearn", help="train an unlearning adapter for a forget request")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    from cagul.methods.registry import NAMES as METHOD_NAMES  # torch-free: the one list

    p.add_argument(
        "--method",
        default="cagul",
        choices=METHOD_NAMES,
        help="unlearning method; --epochs, --lr and --seed also apply to the "
        "non-CAGUL ones, the other training options are CAGUL's",
    )
    p.add_argument("--forget", help="comma-separated individual ids")
    p.add_argument("--split", help="split name in split.json (default forget10)")
    p.add_argument("--setting", default="private", choices=["private", "identity"])
    p.add_argument(
        "--k",
        type=int_at_least(1),
        help="tokens rewritten per sample (default: 1.5%%, or half a small grid up to 8)",
    )
    p.add_argument("--epochs", type=int_at_least(1), help="joint epochs (CAGUL: at most)")
    p.add_argument("--disc-epochs", dest="disc_epochs", type=int_at_least(0))
    p.add_argument("--lr", type=float_at_least(0.0, strict=True))
    p.add_argument(
        "--forget-weight", dest="forget_weight", type=float_at_least(0.0), help="PO/GA weight"
    )
    p.add_argument(
        "--encoder-views",
        dest="encoder_views",
        type=int_at_least(0),
        help="perturbed copies per forget pair for the encoder (default 8; 0: "
        "faster, but a re-saved or shifted photo leaks more)",
    )
    p.add_argument(
        "--hard-weight",
        dest="hard_weight",
        type=float_at_least(0.0),
        help="weight samples by last loss / role mean to this power (default 1; 0: uniform)",
    )
    p.add_argument("--seed", type=int, help="training seed (default 0)")
    p.add_argument("--selection", choices=["least_attended", "random"])
    p.add_argument("--objective", choices=["po_gd", "ga_gd", "ga_kl"])
    p.add_argument("--no-discriminator", action="store_true", help="ablation: transform all")
    p.add_argument("--no-encoder", action="store_true", help="ablation: uniform noise")
    p.add_argument("--max-retain", type=int_at_least(1), default=200, help="retain pairs evaluated")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="adapter directory to write")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace what --out holds (an earlier adapter); refused without it",
    )
    p.add_argument("--report", help="also write the evaluation report here")
    p.set_defaults(func=cmd_unlearn, out_is_dir=True)

    p = sub.add_parser("consolidate", help="merge stacked adapters into one (retrains)")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="FIUBench-format directory (default: the demo bundle's)")
    p.add_argument("--adapter", action="append", required=True, help="adapter dir (repeat)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True, help="adapter directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace what --out holds")
    p.set_defaults(func=cmd_consolidate, out_is_dir=True)

    p = sub.add_parser("answer", help="answer one question, before and after unlearning")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument(
        "--adapter",
        action="append",
        help="artifact directory of any method (repeat to stack CAGUL adapters)",
    )
    p.add_argument("--image", required=True)
    p.add_argument("--question", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_answer)

    p = sub.add_parser("audit", help="probe for leaks with prompts from a JSONL file")
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="dataset, to resolve individual ids (default: the bundle's)")
    p.add_argument(
        "--adapter",
        action="append",
        help="artifact directory of any method (repeat to stack CAGUL adapters)",
    )
    p.add_argument("--prompts", required=True, help="JSONL: image, question, keywords")
    p.add_argument(
        "--image-root",
        dest="image_root",
        help="folder that prompt image paths resolve in and must stay inside "
        "(default: the prompts file's folder)",
    )
    p.add_argument(
        "--attack",
        choices=["pgd"],
        help="also attack every prompt's photo (gate evasion, answer recovery)",
    )
    p.add_argument("--eps", help="L-inf budgets of --attack, e.g. 4/255,8/255 (default 4/255)")
    p.add_argument("--steps", type=int_at_least(1), default=10, help="PGD steps per attack")
    p.add_argument("--seed", type=int, default=0, help="PGD random-start seed")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out")
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser("demo-bundle", help="generate the demo data and train its tiny VLMs")
    p.add_argument("--out", default=str(DEMO_DIR), help="bundle directory (default: %(default)s)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the Pretrain model an earlier build of the same recipe left in "
        "--out (only the biography options may differ) and run the later stages",
    )
    from cagul.demo.bundle import BundleConfig  # its fields are the options (imports torch)

    # Every recipe field is an option, so the command bundle.json records always parses.
    for f in fields(BundleConfig):
        default = f.default if f.default is not MISSING else None
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            dest=f.name,
            type=type(default),
            default=None,
            help=f"{f.metadata.get('help', '')} (default {default})".replace("%", "%%"),
        )
    p.set_defaults(func=cmd_demo_bundle, out_is_dir=True)

    p = sub.add_parser(
        "benchmark",
        help="the paper's main, efficiency and ablation tables and "
        "its k and forget-size sweeps, every method in one run",
    )
    p.add_argument("--out", required=True, help="results folder (an earlier run there resumes)")
    p.add_argument(
        "--quick",
        action="store_true",
        help="one seed, short CAGUL schedules, two points per sweep (minutes)",
    )
    p.add_argument("--model", help="local checkpoint directory (default: the demo bundle's)")
    p.add_argument("--data", help="dataset directory (default: the demo bundle's)")
    p.add_argument("--seeds", help="comma-separated seeds of CAGUL and the strongest baseline")
    p.add_argument(
        "--sweep-epochs",
        dest="sweep_epochs",
        type=int_at_least(1),
        help="CAGUL joint epochs of the ablation and sweep runs",
    )
    p.add_argument("--jobs", type=int_at_least(1), default=1, help="runs at once")
    p.add_argument("--threads", type=int_at_least(1), help="torch threads per run")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_benchmark, out_is_dir=True)

    p = sub.add_parser("tiny-model", help="build an untrained tiny VLM of a family (fixtures)")
    from cagul.models import FAMILIES

    p.add_argument("--family", required=True, choices=sorted(FAMILIES))
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int_at_least(8), default=128)
    p.add_argument("--layers", type=int_at_least(1), default=2)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tiny, out_is_dir=True)
    refuse_blank_values(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cagul.artifacts import ArtifactError
    from cagul.data import DataError
    from cagul.models import VLMError

    args = build_parser().parse_args(argv)
    try:
        result = args.func(args)
    except (
        VLMError,
        DataError,
        ArtifactError,
        ValueError,
        FileNotFoundError,
        PermissionError,
        IsADirectoryError,
        NotADirectoryError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _emit(result, None if getattr(args, "out_is_dir", False) else getattr(args, "out", None))
    return 0

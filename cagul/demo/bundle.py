"""The embedded demo bundle: a tiny Qwen2.5-VL that really memorised private facts.

`python -m cagul demo-bundle` generates the synthetic dataset and probes and trains, in stages
as real VLMs are trained, three models of the real `Qwen2_5_VLForConditionalGeneration` class:

1. **Pretrain**: vision tower pre-trained on face identity (so *who* is readable from the visual
   tokens; end to end from faces a tiny model ignores the image) and on scenes, each scene
   token pulled onto the language model's own word embeddings of what lies under it (so the
   language model reads the tokens as words), then general VQA on the probe training scenes
   and procedural ones. It knows nothing of the biographies.
2. **Finetune** (the base model unlearning starts from): Pretrain fully fine-tuned on every
   biography pair, each epoch asking it with a fresh training template of its field, with VQA
   replay so general ability stays.
3. **Retrain**: Pretrain fine-tuned the same way on the default split's retain set only: the
   ideal an unlearning method is measured against (its truth-ratio values feed forget quality).

Everything is written under `out/` (fp16 weights) with `bundle.json`: the command, seed, wall
time of each stage, the evaluation numbers and whether each acceptance bound holds.
"""

from __future__ import annotations

import json
import platform
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from cagul import metrics
from cagul.answering import answer_all
from cagul.data import REFUSALS, generate_dataset, load_dataset, load_probes, make_split
from cagul.data.probes import write_probes
from cagul.data.scenes import COLOURS, GRID, SHAPES, token_classes
from cagul.data.templates import FIELD_OF_TRAIN_QUESTION, FIELDS
from cagul.demo.finetune import FinetuneConfig, finetune, pretrain_vision
from cagul.demo.tiny import build_tiny_vlm
from cagul.evaluate import evaluate
from cagul.models import VLM, load_vlm

FAMILY = "qwen2_5_vl"

#: Acceptance bounds of the bundle; `bundle.json` records each check.
ACCEPTANCE = {
    "finetune.train_em": (">=", 0.90),
    "finetune.paraphrase_em": (">=", 0.50),
    "finetune.general_acc": (">=", 0.85),
    "pretrain.train_em": ("<=", 0.10),
    "pretrain.general_acc": (">=", 0.85),
    "retrain.forget_em": ("<=", 0.15),
    "retrain.retain_em": (">=", 0.85),
}


@dataclass
class BundleConfig:
    seed: int = field(default=0, metadata={"help": "seeds data, initialisation and training"})
    n_individuals: int = field(default=30, metadata={"help": "synthetic people (20 pairs each)"})
    split: str = field(default="forget10", metadata={"help": "the default split (Retrain)"})
    hidden: int = field(default=256, metadata={"help": "language model width"})
    layers: int = field(default=4, metadata={"help": "language model depth"})
    image_size: int = field(default=112, metadata={"help": "pixels per side (16 visual tokens)"})
    vocab_size: int = field(default=2000, metadata={"help": "byte-level BPE vocabulary"})
    vision_width: int = field(default=128, metadata={"help": "vision tower width"})
    vision_depth: int = field(default=4, metadata={"help": "vision tower blocks"})
    vision_steps: int = field(default=1400, metadata={"help": "max vision pre-training steps"})
    vision_lr: float = field(default=2e-3, metadata={"help": "vision pre-training learning rate"})
    align_scale: float = field(
        default=20.0,
        metadata={
            "help": "the vision stage regresses each scene token onto the language model's "
            "own word embeddings of what lies under it (shape + colour; background: 'image'), "
            "× this (0: classify the tokens with a fresh head instead). benchmarks/"
            "scene_reading: such tokens are read by a fresh LM (held-out existence 0.85 at "
            "400 steps), tokens of a classification head were not (0.72 = blank image)"
        },
    )
    token_contrast: float = field(
        default=1.0,
        metadata={
            "help": "with align_scale: weight of a cross-entropy over the negative distances "
            "from each scene token to every class's target, beside the regression, so a token "
            "is pulled onto its own words and away from the others"
        },
    )
    vqa_epochs: int = field(default=60, metadata={"help": "general VQA epochs (Pretrain)"})
    vqa_per_epoch: int = field(
        default=2560,
        metadata={"help": "VQA items per epoch, drawn afresh from the pool (0: every item)"},
    )
    vqa_lr: float = field(
        default=1e-3,
        metadata={
            "help": "peak learning rate of the VQA stage. benchmarks/text_membership's fresh "
            "language model learns 'is X among these' from text to 1.00 in 300 steps at 1e-3 "
            "and stays at the question prior at 3e-3"
        },
    )
    extra_scenes: int = field(
        default=4000,
        metadata={
            "help": "procedural training scenes (drawn with seed + 2, not shipped) for the "
            "vision stage's scene targets and the VQA items, any identical to a held-out "
            "test scene left out (0: the 200 shipped training scenes only)"
        },
    )
    bio_epochs: int = field(
        default=70,
        metadata={
            "help": "biography epochs (Finetune/Retrain); with the other population's 400 pairs, "
            "70 show every pair as often as benchmarks/paraphrase_prior's 60 did (EM 0.99)"
        },
    )
    replay: int = field(default=512, metadata={"help": "VQA probes replayed per biography epoch"})
    extra_individuals: int = field(
        default=20,
        metadata={
            "help": "a second, disjoint population (drawn with seed + 1, not shipped) whose "
            "biographies are asked in every wording, training and paraphrase, in the "
            "biography stages: the language prior a real LM brings, so a reworded question "
            "reaches the same fact (0: none; the bundle built so had paraphrase EM 0.04, "
            "0.80 with 20)"
        },
    )
    lr: float = field(
        default=2e-3,
        metadata={
            "help": "peak learning rate of the biography stages. At 3e-3 (with 256 replayed VQA "
            "probes per epoch) Finetune lost the general ability Pretrain had (POPE 0.964 -> "
            "0.709, MME 0.750 -> 0.717) while its vision tower barely moved (Pretrain's tower "
            "under Finetune's language model answered the same): the language model forgot"
        },
    )
    bio_vision_lr_scale: float = field(
        default=0.0,
        metadata={
            "help": "vision tower learning rate in the biography stages, × lr (0: frozen, its "
            "tokens computed once per image; at 0.1 the tower moved by at most 0.04 per weight "
            "over 70 epochs)"
        },
    )
    batch_size: int = field(default=64, metadata={"help": "samples per step"})
    log_every: int = field(default=10, metadata={"help": "epochs between progress evaluations"})


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _corpus(ds, probes, extra=None) -> list[str]:
    texts = [q for f in FIELDS for q in f.train_questions + f.paraphrase_questions]
    for ind in [*ds, *(extra or ())]:
        for qa in ind.qa_list:
            texts += [qa.answer, qa.paraphrased_answer, *qa.perturbed_answer]
    texts += [p.question for p in probes.train[:500]] + list(REFUSALS)
    return texts


def _save(vlm: VLM, out: Path) -> None:
    """fp16 weights (the bundle's size budget), tokenizer and image processor."""
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16) for k, v in vlm.model.state_dict().items()}
    vlm.model.save_pretrained(out, state_dict=state)
    vlm.tokenizer.save_pretrained(out)
    vlm.image_processor.save_pretrained(out)


def _vqa_answer(answer: str) -> str:
    return answer.capitalize() + "."


def vqa_samples(probes, seed: int, refusals: int | None = None) -> list[tuple[str, str, str]]:
    """The VQA training items; half the yes/no questions carry MME's "Please answer yes or
    no." as instruction-tuned VLMs have seen it, so the evaluation wording is not new.

    Plus `refusals` (default: one per nine probes, at least 300) questions about a person
    asked of a scene with nobody in it, answered with a refusal: an instruction-tuned VLM knows how to decline, and so must ours, or PO (which
    trains towards refusals) would ask the frozen model for text it has never produced. No
    biography is involved: the questions are the templates, the images have no one in them.
    """
    rng = random.Random(seed)
    refusals = max(300, len(probes) // 9) if refusals is None else refusals
    out = []
    for p in probes:
        q = p.question
        if p.answer in ("yes", "no") and rng.random() < 0.5:
            q += " Please answer yes or no."
        out.append((p.image_path, q, _vqa_answer(p.answer)))
    scenes = sorted({p.image_path for p in probes})
    questions = [q for f in FIELDS for q in f.train_questions]
    for _ in range(refusals):
        out.append((rng.choice(scenes), rng.choice(questions), rng.choice(REFUSALS)))
    return out


def _scene_key(scene: dict) -> tuple:
    return tuple(sorted((o["shape"], o["colour"], o["row"], o["col"]) for o in scene["objects"]))


def _scene_image(probes_dir: Path, scene_id: str) -> str:
    """The absolute image path `write_probes` gives a scene: how probes name their images."""
    return str((probes_dir / "images" / f"scene_{scene_id}.png").resolve())


def draw_extra_scenes(out: Path, shipped: Path, cfg: BundleConfig) -> set[str]:
    """Draw `cfg.extra_scenes` procedural training scenes and their VQA items under `out`
    (seed + 2, never shipped); returns the image paths of the scenes to leave out because
    they are identical to a held-out test scene of `shipped` (one-object scenes recur)."""
    write_probes(
        out,
        seed=cfg.seed + 2,
        n_train_scenes=cfg.extra_scenes,
        n_test_scenes=0,
        image_size=cfg.image_size,
    )
    test = {
        _scene_key(sc)
        for sc in json.loads((shipped / "scenes.json").read_text())
        if sc["scene_id"].startswith("test")
    }
    return {
        _scene_image(out, sc["scene_id"])
        for sc in json.loads((out / "scenes.json").read_text())
        if _scene_key(sc) in test
    }


def scene_attributes(
    probes_dir: Path, tokens_per_side: int = 4, exclude: set[str] = frozenset()
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Train scenes (but `exclude`d image paths), their 0/1 attribute vectors (shape, colour,
    shape+colour, count of each shape, rows and columns each shape is in) and, per visual token, the class of the object
    under the token's centre (0: background, else 1 + shape * colours + colour): the vision
    stage's targets, so that what the VQA questions ask about is readable from the tokens."""
    scenes = [
        s
        for s in json.loads((probes_dir / "scenes.json").read_text())
        if s["scene_id"].startswith("train")
        and _scene_image(probes_dir, s["scene_id"]) not in exclude
    ]
    colours = list(COLOURS)
    rows, token_rows = [], []
    for sc in scenes:
        token_rows.append(
            token_classes(
                [(o["shape"], o["colour"], o["row"], o["col"]) for o in sc["objects"]],
                tokens_per_side,
            )
        )
        v: list[float] = []
        objs = sc["objects"]
        for shape in SHAPES:
            mine = [o for o in objs if o["shape"] == shape]
            v.append(float(bool(mine)))
            v += [float(len(mine) == n) for n in (1, 2)] + [float(len(mine) >= 3)]
            v += [float(any(o["colour"] == c for o in mine)) for c in colours]
            v += [float(any(o["row"] == r for o in mine)) for r in range(GRID)]
            v += [float(any(o["col"] == c for o in mine)) for c in range(GRID)]
        v += [float(any(o["colour"] == c for o in objs)) for c in colours]
        rows.append(v)
    paths = [_scene_image(probes_dir, sc["scene_id"]) for sc in scenes]
    return paths, torch.tensor(rows), torch.tensor(token_rows)


def word_targets(vlm: VLM, scale: float = 20.0) -> torch.Tensor:
    """Per token class (0: background, else 1 + shape × colours + colour, as
    `scenes.token_classes` labels tokens), the language model's input embedding of the words
    for it, × `scale`: "image" for the background, the shape's plus the colour's for an
    object (each a single token in the bundle's vocabulary; several: their mean). What the
    vision stage aligns the scene tokens to, so the language model reads them as words."""
    emb = vlm.model.get_input_embeddings().weight.detach()

    def word(w: str) -> torch.Tensor:
        return emb[vlm.tokenizer.encode(" " + w, add_special_tokens=False)].mean(0)

    rows = [word("image")] + [word(s) + word(c) for s in SHAPES for c in COLOURS]
    return scale * torch.stack(rows).float()


def _general(report: dict) -> dict:
    """POPE and MME accuracy from an evaluation report, and their mean as the one 'general'
    number (taken from the report: asking every probe a second time doubled the build's
    evaluation for the same numbers)."""
    g = report["general"]
    return {
        "pope_acc": g["pope_acc"],
        "mme_acc": g["mme_acc"],
        "general_acc": (g["pope_acc"] + g["mme_acc"]) / 2,
    }


def pair_em(vlm: VLM, samples, paraphrase: bool = False) -> float:
    """Keyword exact match of `vlm`'s greedy answers to `samples` (or to their paraphrases)."""
    if paraphrase:
        imgs = [s.image_path for s in samples for _ in s.paraphrased_questions]
        qs = [q for s in samples for q in s.paraphrased_questions]
        kws = [list(s.keywords) for s in samples for _ in s.paraphrased_questions]
    else:
        imgs, qs = [s.image_path for s in samples], [s.question for s in samples]
        kws = [list(s.keywords) for s in samples]
    return metrics.mean_em(answer_all(vlm, imgs, qs, max_new_tokens=24), kws)


def epoch_sampler(items: list, per_epoch: int, seed: int):
    """Per epoch a fresh, seeded draw of `per_epoch` of `items` (all of them if fewer, or if
    `per_epoch` is 0)."""

    n = len(items) if per_epoch <= 0 else min(per_epoch, len(items))

    def draw(epoch: int) -> list:
        return random.Random(seed * 1000 + epoch).sample(items, n)

    return draw


def _probe_acc(vlm: VLM, items) -> float:
    """Share of `items` answered right (the answer starts with the expected word): a progress
    reading during VQA."""
    answers = answer_all(
        vlm, [p.image_path for p in items], [p.question for p in items], max_new_tokens=3
    )
    return sum(
        a.strip().lower().startswith(p.answer) for a, p in zip(answers, items, strict=True)
    ) / len(items)


def template_drawer(samples, vqa, replay: int, seed: int, extra=()):
    """Per epoch: every pair once, asked with a random training template of its field, plus
    `replay` VQA probes, so the model learns the fact rather than one phrasing. `extra` pairs
    (another population's) are asked with any template of their field, paraphrase ones too:
    the paraphrases of `samples` themselves are never trained on (they are the evaluation)."""
    by_question = {q: f.train_questions for q, f in FIELD_OF_TRAIN_QUESTION.items()}
    any_wording = {
        q: f.train_questions + f.paraphrase_questions for q, f in FIELD_OF_TRAIN_QUESTION.items()
    }

    def draw(epoch: int):
        rng = random.Random(seed * 1000 + epoch)
        out = [
            (s.image_path, rng.choice(by_question.get(s.question, (s.question,))), s.answer)
            for s in samples
        ]
        if extra:
            out += [
                (s.image_path, rng.choice(any_wording.get(s.question, (s.question,))), s.answer)
                for s in extra
            ]
        out += rng.sample(vqa, replay)
        return out

    return draw


def _train_biographies(vlm: VLM, samples, vqa, cfg: BundleConfig, name: str, extra=()) -> dict:
    watch = samples[:: max(1, len(samples) // 96)]

    def on_epoch(epoch: int) -> None:
        if (epoch + 1) % cfg.log_every == 0:
            _log(f"{name}: epoch {epoch + 1}/{cfg.bio_epochs} EM {pair_em(vlm, watch):.3f}")

    fcfg = FinetuneConfig(
        epochs=cfg.bio_epochs,
        lr=cfg.lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        train_vision=cfg.bio_vision_lr_scale > 0,
        vision_lr_scale=cfg.bio_vision_lr_scale,
    )
    draw = template_drawer(samples, vqa, cfg.replay, cfg.seed, extra)
    return finetune(vlm, draw, fcfg, on_epoch=on_epoch)


def _check(results: dict) -> dict:
    checks = {}
    for key, (op, bound) in ACCEPTANCE.items():
        model, metric = key.split(".")
        value = results[model][metric]
        ok = value >= bound if op == ">=" else value <= bound
        checks[key] = {"value": round(value, 4), "bound": f"{op} {bound}", "ok": ok}
    return checks


#: The fields the biography stages alone read: a build may resume after Pretrain when only
#: these differ from the run that made it.
BIOGRAPHY_FIELDS = ("bio_epochs", "replay", "lr", "bio_vision_lr_scale", "log_every")
PRETRAIN_RECORD = "pretrain_stage.json"


class ResumeError(ValueError):
    """`--resume` was asked of a bundle directory whose Pretrain another recipe made."""


def _resumable(out: Path, cfg: BundleConfig) -> dict:
    path = out / PRETRAIN_RECORD
    if not path.is_file() or not (out / "models" / "pretrain" / "config.json").is_file():
        raise ResumeError(
            f"nothing to resume in {out}: it needs {PRETRAIN_RECORD} and "
            "models/pretrain from an earlier build"
        )
    record = json.loads(path.read_text())
    mine = {k: v for k, v in asdict(cfg).items() if k not in BIOGRAPHY_FIELDS}
    theirs = {k: v for k, v in record["config"].items() if k not in BIOGRAPHY_FIELDS}
    if mine != theirs:
        diff = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        raise ResumeError(f"{out}'s Pretrain was built with other settings: {', '.join(diff)}")
    return record


def vision_stage(out: Path, cfg: BundleConfig, ds, probes, extra, scene_dirs, clash):
    """A fresh tiny model of `cfg` with its vision tower pre-trained on the faces (of `ds` and
    `extra`) and the training scenes of `scene_dirs` (but `clash`); returns (vlm, stats)."""
    init = build_tiny_vlm(
        FAMILY,
        out / "models" / "_init",
        corpus=_corpus(ds, probes, extra),
        hidden=cfg.hidden,
        layers=cfg.layers,
        image_size=cfg.image_size,
        vocab_size=cfg.vocab_size,
        seed=cfg.seed,
        vision=(cfg.vision_width, cfg.vision_depth),
    )
    vlm = load_vlm(init)
    shutil.rmtree(init)
    faces = [str(ind.image_file) for ind in [*ds.individuals, *(extra or ())]]
    parts = [scene_attributes(d, exclude=clash) for d in scene_dirs]
    scene_paths = [p for paths, _, _ in parts for p in paths]
    attributes = torch.cat([a for _, a, _ in parts])
    token_labels = torch.cat([t for _, _, t in parts])
    vision = pretrain_vision(
        vlm,
        faces,
        list(range(len(faces))),
        scene_paths,
        attributes,
        token_labels,
        token_targets=word_targets(vlm, cfg.align_scale) if cfg.align_scale else None,
        steps=cfg.vision_steps,
        lr=cfg.vision_lr,
        seed=cfg.seed,
        token_contrast=cfg.token_contrast,
    )
    return vlm, vision


def _pretrain(
    out: Path, cfg: BundleConfig, ds, probes, extra, scene_dirs, clash, vqa, times: dict
) -> tuple[dict, dict]:
    """The vision and VQA stages; saves `models/pretrain` and returns their statistics."""
    t = time.time()
    vlm, vision = vision_stage(out, cfg, ds, probes, extra, scene_dirs, clash)
    times["pretrain_vision"] = time.time() - t
    _log(f"vision identity: {vision}")

    t = time.time()

    def on_vqa_epoch(epoch: int) -> None:
        if (epoch + 1) % cfg.log_every == 0:
            pope, mme = _probe_acc(vlm, probes.pope[:120]), _probe_acc(vlm, probes.mme[:120])
            _log(f"vqa: epoch {epoch + 1}/{cfg.vqa_epochs} POPE {pope:.3f} MME {mme:.3f}")

    # The vision tower keeps what its stage made: the language model learns to read it.
    fcfg = FinetuneConfig(
        epochs=cfg.vqa_epochs,
        lr=cfg.vqa_lr,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
    )
    vqa_stats = finetune(
        vlm, epoch_sampler(vqa, cfg.vqa_per_epoch, cfg.seed), fcfg, on_epoch=on_vqa_epoch
    )
    times["pretrain_vqa"] = time.time() - t
    _save(vlm, out / "models" / "pretrain")
    return vision, vqa_stats


def build_demo_bundle(
    out: str | Path, cfg: BundleConfig | None = None, resume: bool = False
) -> dict:
    """Build the whole bundle into `out` and return its `bundle.json` content.

    With `resume`, the vision and VQA stages are not run again: the Pretrain model that an
    earlier build of the same recipe (all but `BIOGRAPHY_FIELDS`) left in `out`, with its
    `pretrain_stage.json`, is taken as it is (its stage times come from that record), and the
    biography stages run. The stages are seeded, so this gives what the full command gives."""
    cfg = cfg or BundleConfig()
    out = Path(out)
    t_all = time.time()
    times: dict[str, float] = {}
    torch.manual_seed(cfg.seed)

    record = _resumable(out, cfg) if resume else None
    t = time.time()
    for sub in ("data", "_extra", "_scenes") if resume else ("data", "models", "_extra", "_scenes"):
        shutil.rmtree(out / sub, ignore_errors=True)
    if not resume:
        (out / PRETRAIN_RECORD).unlink(missing_ok=True)
    generate_dataset(out / "data", cfg.n_individuals, cfg.seed, image_size=cfg.image_size)
    ds = load_dataset(out / "data")
    probes = load_probes(out / "data" / "probes")
    split = make_split(ds, cfg.split)
    all_pairs = split.forget_set + split.retain_set
    extra, extra_pairs = None, []
    if cfg.extra_individuals:
        # Rebuilt from the seed each time, never shipped: only the models carry what it taught.
        extra = generate_dataset(
            out / "_extra",
            cfg.extra_individuals,
            cfg.seed + 1,
            image_size=cfg.image_size,
            probes=False,
        )
        extra_split = make_split(extra, cfg.split)
        extra_pairs = extra_split.forget_set + extra_split.retain_set
    scene_dirs, clash, vqa_probes = [out / "data" / "probes"], set(), list(probes.train)
    if cfg.extra_scenes:
        extra_dir = out / "_scenes"
        clash = draw_extra_scenes(extra_dir, out / "data" / "probes", cfg)
        scene_dirs.append(extra_dir)
        vqa_probes += [p for p in load_probes(extra_dir).train if p.image_path not in clash]
    vqa = vqa_samples(vqa_probes, cfg.seed)
    times["data"] = time.time() - t
    _log(
        f"data: {len(ds.individuals)} individuals, {len(all_pairs)} pairs, "
        f"{len(vqa_probes)} VQA training probes ({len(clash)} extra scenes left out: "
        "identical to a test scene)"
    )

    if record is None:
        vision, vqa_stats = _pretrain(out, cfg, ds, probes, extra, scene_dirs, clash, vqa, times)
        (out / PRETRAIN_RECORD).write_text(
            json.dumps(
                {
                    "config": asdict(cfg),
                    "stage_seconds": {k: times[k] for k in ("pretrain_vision", "pretrain_vqa")},
                    "vision_identity": vision,
                    "vqa": vqa_stats,
                },
                indent=2,
            )
            + "\n"
        )
    else:
        vision, vqa_stats = record["vision_identity"], record["vqa"]
        times.update(record["stage_seconds"])
        _log(f"resumed after Pretrain ({out / PRETRAIN_RECORD})")
    vlm = load_vlm(out / "models" / "pretrain")  # measure what is shipped: the fp16 weights
    reports = {
        "pretrain": evaluate(vlm, split, probes, progress=False, meta={"bundle": "pretrain"})
    }
    results = {"pretrain": {**_general(reports["pretrain"]), "train_em": pair_em(vlm, all_pairs)}}
    _log(f"pretrain: {results['pretrain']} ({vqa_stats})")

    stages = {"finetune": all_pairs, "retrain": split.retain_set}
    for name, samples in stages.items():
        t = time.time()
        vlm = load_vlm(out / "models" / "pretrain")
        stats = _train_biographies(vlm, samples, vqa, cfg, name, extra_pairs)
        times[name] = time.time() - t
        _save(vlm, out / "models" / name)
        vlm = load_vlm(out / "models" / name)  # measure what is shipped: the fp16 weights
        reports[name] = evaluate(vlm, split, probes, progress=False, meta={"bundle": name})
        results[name] = {
            **_general(reports[name]),
            "train_em": pair_em(vlm, samples),
            "paraphrase_em": pair_em(vlm, all_pairs, paraphrase=True),
            "final_loss": stats["final_loss"],
        }
        results[name]["forget_em"] = reports[name]["forget"]["em"]
        results[name]["retain_em"] = reports[name]["retain"]["em"]
        _log(f"{name}: {results[name]}")

    retrain_x = reports["retrain"]["values"]["forget_truth_ratio_x"]
    for name in ("pretrain", "finetune"):
        reports[name]["forget"]["forget_quality"] = metrics.forget_quality(
            reports[name]["values"]["forget_truth_ratio_x"], retrain_x
        )
    reports_dir = out / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    for name, rep in reports.items():
        (reports_dir / f"{name}.json").write_text(json.dumps(rep, indent=2) + "\n")

    t = time.time()
    vlm = load_vlm(out / "models" / "finetune")
    s = split.forget_set[0]
    answer_all(vlm, [s.image_path], [s.question])
    load_answer_s = time.time() - t

    bundle = {
        "command": build_command(out, cfg),
        "family": FAMILY,
        "config": asdict(cfg),
        "split": split.summary(),
        "stage_seconds": {k: round(v, 1) for k, v in times.items()},
        # A resumed build also took the recorded Pretrain stages' time.
        "total_seconds": round(
            time.time() - t_all + (sum(record["stage_seconds"].values()) if record else 0.0), 1
        ),
        "load_and_answer_seconds": round(load_answer_s, 2),
        "vision_identity": vision,
        "results": results,
        "table": {
            name: {
                "forget_em": rep["forget"]["em"],
                "nonprivate_em": rep["nonprivate"]["em"],
                "retain_em": rep["retain"]["em"],
                "pope_acc": rep["general"].get("pope_acc"),
                "mme_acc": rep["general"].get("mme_acc"),
                "forget_truth_ratio": rep["forget"]["truth_ratio"],
                "forget_quality": rep["forget"].get("forget_quality"),
            }
            for name, rep in reports.items()
        },
        "acceptance": _check(results),
        "machine": {
            "platform": platform.platform(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    shutil.rmtree(out / "_extra", ignore_errors=True)
    shutil.rmtree(out / "_scenes", ignore_errors=True)
    (out / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
    (out / "README.md").write_text(render_readme(bundle))
    return bundle


def build_command(out: Path, cfg: BundleConfig) -> str:
    """The command that rebuilds this bundle: every option that differs from the default."""
    default = BundleConfig()
    opts = [
        f"--{k.replace('_', '-')} {v}"
        for k, v in asdict(cfg).items()
        if k != "seed" and v != getattr(default, k)
    ]
    return " ".join(["python -m cagul demo-bundle", f"--out {out}", f"--seed {cfg.seed}", *opts])


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def bundle_table(bundle: dict) -> str:
    """The Pretrain / Finetune / Retrain × forget / non-private / retain / general table."""
    lines = [
        "| model | forget EM | non-private EM | retain EM | POPE acc | MME acc | "
        "all-pairs EM | paraphrase EM |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in ("pretrain", "finetune", "retrain"):
        t, r = bundle["table"][name], bundle["results"].get(name, {})
        lines.append(
            f"| {name.capitalize()} | {_fmt(t['forget_em'])} | {_fmt(t['nonprivate_em'])} | "
            f"{_fmt(t['retain_em'])} | {_fmt(t['pope_acc'])} | {_fmt(t['mme_acc'])} | "
            f"{_fmt(r.get('train_em'))} | {_fmt(r.get('paraphrase_em'))} |"
        )
    return "\n".join(lines) + "\n"


def render_readme(bundle: dict) -> str:
    checks = "\n".join(
        f"- `{k}` = {v['value']} ({v['bound']}): {'ok' if v['ok'] else '**not met**'}"
        for k, v in bundle["acceptance"].items()
    )
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in bundle["stage_seconds"].items())
    n_extra = bundle["config"].get("extra_individuals", 0)
    extra = (
        f" Both also learned a second population ({n_extra} people drawn with seed + 1, not "
        "shipped) asked in every wording, training and paraphrase: a tiny model trained from "
        "scratch has no language prior, and this gives it one, so an unseen wording of a "
        "shipped person's question still reaches the fact."
        if n_extra
        else ""
    )
    n_scenes = bundle["config"].get("extra_scenes", 0)
    scenes = (
        f" The vision stage and the VQA items also drew on {n_scenes} procedural training "
        "scenes (seed + 2, not shipped; any identical to a held-out test scene left out)."
        if n_scenes
        else ""
    )
    aligned = (
        ", each scene token regressed onto the language model's own word embeddings of what "
        "lies under it (shape + colour), so the language model reads the tokens as words"
        if bundle["config"].get("align_scale")
        else ""
    )
    return f"""# The embedded demo bundle

Built by `{bundle["command"]}` ({bundle["total_seconds"] / 60:.0f} min on
{bundle["machine"]["threads"]} CPU threads; stages: {stages}). Everything here is measured by
that command and recorded in `bundle.json`; `reports/*.json` are the full evaluation reports of
each model on the default split ({bundle["split"]["name"]}: {bundle["split"]["forget_individuals"]}
people, {bundle["split"]["forget"]} forget pairs, {bundle["split"]["nonprivate"]} non-private,
{bundle["split"]["retain"]} retain).

**Why Qwen2.5-VL.** Its visual tokens are one block of merged patch embeddings placed in the
prompt, so what CAGUL rewrites is exactly what the language model reads; joint self-attention
gives the cross-modal scores from the ordinary attention maps; and its processor's patch grid
maps tokens back onto the image for the demo's heatmap. It is also the family the paper reports
its best Qwen numbers on (k = 20 of 1369 tokens). Mllama and LLaVA work through the same
interface (tested on tiny models).

**Models** (`models/`, fp16, real `Qwen2_5_VLForConditionalGeneration` checkpoints):
`pretrain` (vision tower pre-trained on face identity and scene attributes{aligned}, then
general VQA: knows no biography), `finetune` (the base model for unlearning: Pretrain fully fine-tuned on
every pair, a fresh training template per pair each epoch, with VQA replay), `retrain`
(Pretrain fine-tuned the same way on the retain set only: the ideal).{extra}{scenes}

{bundle_table(bundle)}
General = POPE and MME accuracy on held-out scenes. Paraphrase EM uses question templates never
asked about these people in training{" (only about the other population)" if n_extra else ""}. Loading the base model and answering one question took
{bundle["load_and_answer_seconds"]:.1f} s.

## Acceptance

{checks}
"""

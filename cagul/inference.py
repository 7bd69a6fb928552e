"""Answering before and after unlearning, as the demo, the `answer` and `audit` commands and
auditors use it: the answer with and without unlearning, and why (forget probability, the
selected tokens, the cross-modal scores on the patch grid).

`answer_record` takes the unlearned model of any registered method (`cagul.methods`). CAGUL
explains itself (`answer_one` over its stacked adapters); another method answers with its own
weights and explains nothing, so its record has `explains: false`, no forget probability, no
selected tokens, and the base model's scores on the patch grid.

Audit prompts are checked whole before any model work (`read_prompts`, then
`check_prompt_images`): a bad line, a non-UTF-8 file, a keyword that is not text, an image
that is a list, missing, unreadable, a decompression bomb, or a path outside the image root
fails with one `InputError` naming the file and line. The image root is the folder prompt
image paths are resolved in and must stay inside (symlinks followed): the CLI's
`--image-root`, by default the prompts file's folder. Individual ids resolve to the dataset's
own images, which the dataset loader already keeps inside the dataset.
"""

from __future__ import annotations

import json
from pathlib import Path

from cagul import metrics
from cagul.answering import cut_answer
from cagul.attacks.outcome import classify
from cagul.methods.cagul.adapter import CagulAdapter, plan
from cagul.models import VLM, InputError, TokenReplacement


def load_adapters(vlm: VLM, dirs: list[str | Path] | None) -> list[CagulAdapter]:
    return [CagulAdapter.from_pretrained(vlm, d) for d in dirs or []]


def answer_record(vlm: VLM, model, image, question: str) -> dict:
    """The `answer` record (docs/architecture.md, section 7) of `model`, an `UnlearnedModel` of any method over the
    base `vlm` (None: the base model alone).

    CAGUL's record is its own explanation (`UnlearnedModel.explain`, i.e. `answer_one`). For
    a method without one, `answer` is the unlearned model's and `base_answer` the base
    model's; `forget_probability` is None, `transformed` False, `selected_tokens` empty and
    `scores` / `grid` are the base model's attention. `method` names the method (None for
    the base model) and `explains` says whether the record explains the answer.
    """
    record = model.explain(image, question) if model is not None else None
    explains = record is not None
    if record is None:
        record = answer_one(vlm, [], image, question)
        if model is not None:
            record["answer"] = model.generate([image], [question])[0]
    record["method"] = model.method if model is not None else None
    record["explains"] = explains
    return record


def answer_one(vlm: VLM, adapters: list[CagulAdapter], image, question: str) -> dict:
    """Answer one question about one image, before and after unlearning.

    `scores` are the cross-modal attention scores (one row per cross-modal layer, over the
    visual tokens) and `grid` the patch grid they lie on; `selected_tokens` are the indices the
    flagging adapter rewrote (per layer for cross-attention models), empty when not flagged.
    """
    batch = vlm.prepare([image], [question])
    decided = plan(vlm, adapters, batch, with_scores=True) if adapters else None
    if decided is not None and decided.replacement is not None:
        base, answer = _before_and_after(vlm, image, question, decided.replacement)
    else:
        base = answer = cut_answer(vlm.generate(batch, None, 50, stop_at_period=True)[0])
    scores = decided.scores[0] if decided else vlm.cross_modal_scores(batch)[0]
    idx = decided.indices[0] if decided else None
    layout = batch.layouts[0]
    return {
        "answer": answer,
        "base_answer": base,
        "forget_probability": decided.probabilities[0] if decided else None,
        "transformed": bool(decided and decided.flagged[0]),
        "adapter_index": decided.adapter_index[0] if decided else None,
        "selected_tokens": [] if idx is None else idx.tolist(),
        "scores": scores.tolist(),
        "grid": list(layout.grid),
        "grid_index": layout.grid_index.tolist(),
        "cross_modal_layers": vlm.cross_modal_layers,
    }


def _before_and_after(vlm: VLM, image, question: str, rewrite: TokenReplacement):
    """Both answers in one batched generation: the same prompt twice, the second copy with its
    tokens rewritten (a batch of two costs about one generation, not two)."""
    pair = vlm.prepare([image, image], [question, question])
    both = TokenReplacement(
        module=None, indices=[None, rewrite.indices[0]], modules=[None, rewrite.module_for(0)]
    )
    base, after = vlm.generate(pair, both, 50, stop_at_period=True)
    return cut_answer(base), cut_answer(after)


# An audit is a batch a person reviews; more prompts than this belong in several files.
MAX_PROMPTS = 1000
MAX_KEYWORD_CHARS = 200


def _prompt_text(path: str | Path) -> str:
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such prompts file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read the prompts file ({e.strerror})") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def _check_prompt(obj, where: str) -> dict:
    """One prompt with its question cleaned, or InputError saying which field is wrong."""
    from cagul.inputs import clean_question

    if not isinstance(obj, dict) or not {"image", "question", "keywords"} <= set(obj):
        raise InputError(f"{where}: needs image, question and keywords")
    image = obj["image"]
    if isinstance(image, bool) or not isinstance(image, (str, int)) or not str(image).strip():
        raise InputError(
            f"{where}: image must be a path or an individual id (text), got {type(image).__name__}"
        )
    try:
        question = clean_question(obj["question"])
    except InputError as e:
        raise InputError(f"{where}: {e}") from None
    keywords = obj["keywords"]
    if not isinstance(keywords, list) or not keywords:
        raise InputError(f"{where}: keywords must be a non-empty list")
    for k in keywords:
        if not isinstance(k, str) or not k.strip():
            raise InputError(f"{where}: every keyword must be non-empty text, got {k!r}")
        if len(k) > MAX_KEYWORD_CHARS:
            raise InputError(f"{where}: a keyword is longer than {MAX_KEYWORD_CHARS} characters")
    return {**obj, "image": str(image), "question": question}


def read_prompts(path: str | Path) -> list[dict]:
    """Audit prompts: one JSON object per line with image, question and keywords."""
    rows = []
    for n, line in enumerate(_prompt_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise InputError(f"{path}:{n}: not JSON ({e})") from e
        rows.append(_check_prompt(obj, f"{path}:{n}"))
        if len(rows) > MAX_PROMPTS:
            raise InputError(f"{path} holds more than {MAX_PROMPTS} prompts; split it")
    if not rows:
        raise InputError(f"{path} holds no prompts")
    return rows


def check_prompt_images(
    prompts: list[dict], images_by_id: dict[str, str], root: str | Path
) -> list[str]:
    """The image file of every prompt, each opened once, before any model work.

    An individual id gives the dataset's image; any other value is a path resolved in `root`
    that must stay inside it (see the module docstring).
    """
    from cagul.inputs import open_image

    base = Path(root).resolve()
    files = []
    for p in prompts:
        name = str(p["image"])
        if name in images_by_id:
            files.append(images_by_id[name])
            continue
        candidate = Path(name).expanduser()
        resolved = (candidate if candidate.is_absolute() else base / candidate).resolve()
        if not resolved.is_file():
            raise InputError(f"image {name!r} is neither a file nor a known individual id")
        if not resolved.is_relative_to(base):
            raise InputError(f"image {name!r} lies outside the image root {base}")
        open_image(resolved)
        files.append(str(resolved))
    return files


def audit(
    vlm: VLM,
    model,
    prompts: list[dict],
    images_by_id: dict[str, str],
    *,
    images: list[str] | None = None,
    image_root: str | Path | None = None,
) -> list[dict]:
    """Leak rows: each prompt answered by the base `vlm` and by `model` (an `UnlearnedModel`
    of any method, or None; see `answer_record`); `leaked` when the unlearned answer still
    contains the keywords (EM > 0); `outcome` / `base_outcome` say what each answer is
    (truth, refusal or other: `cagul.attacks.outcome`). `image` may be an individual id.

    `images` are the files `check_prompt_images` found; without them they are found here
    first (in `image_root`, default the working directory), before any prompt is answered.
    """
    if images is None:
        images = check_prompt_images(prompts, images_by_id, image_root or Path.cwd())
    out = []
    for p, image in zip(prompts, images, strict=True):
        r = answer_record(vlm, model, image, p["question"])
        em = metrics.keyword_em(r["answer"], p["keywords"])
        base_em = metrics.keyword_em(r["base_answer"], p["keywords"])
        out.append(
            {
                **p,
                "answer": r["answer"],
                "base_answer": r["base_answer"],
                "em": em,
                "base_em": base_em,
                "leaked": em > 0,
                "outcome": classify(r["answer"], p["keywords"]),
                "base_outcome": classify(r["base_answer"], p["keywords"]),
                "forget_probability": r["forget_probability"],
                "transformed": r["transformed"],
            }
        )
    return out

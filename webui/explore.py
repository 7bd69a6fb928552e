"""The Explore tab's logic: one question about one image, answered before and after
unlearning, and the cross-modal attention scores drawn over the image.

`ask` returns a plain dict (the `answer` record plus ground truth when the question is one of
the person's dataset questions); `heatmap_html` draws the scores on the model's own patch grid
with the rewritten tokens outlined. Nothing is drawn that was not computed: when the scores
cannot be extracted, `ask` raises and the page says why.
"""

from __future__ import annotations

import base64
import html
import io
import time

from PIL import Image

from cagul import metrics
from cagul.inference import answer_record
from cagul.inputs import clean_question, open_image
from webui.studio import Studio, StudioError

MEAN = "mean of layers"
HEATMAP_WIDTH = 480  # px on the page; the grid's cells (and their numbers) scale with it


def ask(
    studio: Studio,
    *,
    question,
    person_id: str | None = None,
    image=None,
    adapter_id=None,
) -> dict:
    """Answer `question` about `image` (a path, bytes or PIL image) or, when no image is
    given, about the photo of `person_id`; with the stored adapter `adapter_id` as "after"."""
    q = clean_question(question)
    if image is None and not person_id:
        raise StudioError("choose a person or upload an image first")
    source = image if image is not None else studio.image_of(person_id)
    picture = open_image(source)
    model = studio.unlearned(adapter_id) if adapter_id not in (None, "") else None
    adapters = list(getattr(model, "adapters", []))
    started = time.perf_counter()
    with studio.model_lock:
        # A method without CAGUL's gate answers with its own weights and explains nothing:
        # the map stays the base model's attention, and the page says so.
        record = answer_record(studio.vlm, model, picture, q)
    record["seconds"] = round(time.perf_counter() - started, 3)
    record["question"] = q
    record["k"] = adapters[0].config.k if adapters else None
    record["per_layer"] = bool(adapters and adapters[0].config.per_layer)
    # How the outlined set was chosen, so the caption can name the score that chose it.
    record["score_layers"] = adapters[0].config.score_layers if adapters else None
    record["selection"] = adapters[0].config.selection if adapters else None
    pair = studio.find_pair(person_id, q) if image is None else None
    record["truth"] = None
    if pair is not None:
        record["truth"] = {
            "answer": pair.answer,
            "keywords": list(pair.keywords),
            "category": pair.category,
            "private": pair.private,
            "base_em": metrics.keyword_em(record["base_answer"], list(pair.keywords)),
            "em": metrics.keyword_em(record["answer"], list(pair.keywords)),
        }
    record["image"] = picture
    return record


def examples(studio: Studio) -> list[tuple[str, str, str]]:
    """Ready examples as (button label, person id, question): a private and a non-private
    question of the first person an adapter forgets, and a private question of the first person
    none forgets. A button names a person by id (the server finds the photo), never a file path
    a client could change (see `webui.uploads`)."""
    forgotten = studio.forgotten_ids()
    people = [p.unique_id for p in studio.dataset.individuals]
    picks = []
    for pid in [p for p in people if p in forgotten][:1]:
        picks += [(pid, True), (pid, False)]
    picks += [(pid, True) for pid in [p for p in people if p not in forgotten][:1]]
    out = []
    for pid, private in picks:
        ref = next((r for r in studio.pairs(pid) if r.private == private), None)
        if ref is None:
            continue
        mark = "⊘ " if pid in forgotten else ""
        kind = "🔒 " + ref.category if private else ref.category
        out.append((f"{mark}{studio.person(pid).name}: {kind}", pid, ref.question))
    return out


def layer_choices(record: dict) -> list[str]:
    """The layer selector's options: the mean, then each cross-modal layer."""
    return [MEAN] + [f"layer {layer}" for layer in record["cross_modal_layers"]]


def layer_scores(record: dict, layer: str) -> tuple[list[float], list[int]]:
    """Scores over the visual tokens for the chosen view, and the tokens outlined in it.

    For one token set (joint attention) the outlined set is the same in every view; for one set
    per cross-attention layer, a layer shows its own set and the mean view their union.
    """
    rows = record["scores"]
    selected = record["selected_tokens"]
    per_layer = bool(selected) and isinstance(selected[0], list)
    if layer in (None, "", MEAN):
        scores = [sum(col) / len(col) for col in zip(*rows, strict=True)]
        chosen = sorted({i for s in selected for i in s}) if per_layer else list(selected)
        return scores, chosen
    names = layer_choices(record)[1:]
    if layer not in names:
        raise StudioError(f"unknown layer {layer!r}; choose one of {', '.join(names)}")
    i = names.index(layer)
    return list(rows[i]), (list(selected[i]) if per_layer else list(selected))


def _color(t: float) -> tuple[int, int, int]:
    """Viridis at t in [0, 1] (five stops, linearly interpolated)."""
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    return tuple(round(a + (b - a) * f) for a, b in zip(stops[i], stops[i + 1], strict=True))


def _data_uri(image: Image.Image, width: int) -> tuple[str, int]:
    height = max(1, round(image.height * width / image.width))
    buf = io.BytesIO()
    image.convert("RGB").resize((width, height)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), height


def heatmap_html(record: dict, layer: str = MEAN) -> str:
    """The scores of `layer` over the image on the model's patch grid, as HTML: one cell per
    patch token (colour = score, low → dark), the rewritten tokens outlined."""
    scores, selected = layer_scores(record, layer)
    rows, cols = record["grid"]
    index = record["grid_index"]
    cell_scores = [scores[t] for t in index]
    lo, hi = min(cell_scores), max(cell_scores)
    span = (hi - lo) or 1.0
    uri, height = _data_uri(record["image"], HEATMAP_WIDTH)
    chosen = set(selected)
    # Each cell carries its score; the number shrinks with the cell so a fine grid stays legible
    # as colour, the exact value staying in the tooltip.
    font = max(6.0, min(12.0, HEATMAP_WIDTH / cols / 4.5))
    cells = []
    for pos, token in enumerate(index):
        r, g, b = _color((scores[token] - lo) / span)
        cls = "hm-cell hm-selected" if token in chosen else "hm-cell"
        cells.append(
            f'<div class="{cls}" data-token="{token}" data-row="{pos // cols}" '
            f'data-col="{pos % cols}" data-score="{scores[token]:.6g}" '
            f'title="token {token} · score {scores[token]:.4g}" '
            f'style="background: rgba({r},{g},{b},0.55)">'
            f'<span class="hm-num">{_short(scores[token])}</span></div>'
        )
    n_outside = len(set(selected) - set(index))
    caption = _caption(record, layer, len(chosen), n_outside)
    return (
        f'<div class="hm-wrap"><div class="hm-figure" data-rows="{rows}" data-cols="{cols}" '
        f'style="width:{HEATMAP_WIDTH}px;height:{height}px;font-size:{font:.1f}px;'
        f"background-image:url({uri});"
        f'grid-template-columns:repeat({cols},1fr);grid-template-rows:repeat({rows},1fr)">'
        + "".join(cells)
        + '</div><div class="hm-legend"><span>least attended</span><div class="hm-bar"></div>'
        f'<span>most attended</span></div><p class="hm-caption">{html.escape(caption)}</p></div>'
    )


def _caption(record: dict, layer: str, n_selected: int, n_outside: int) -> str:
    view = "mean of cross-modal layers" if layer in (None, "", MEAN) else layer
    grid = "×".join(str(x) for x in record["grid"])
    text = f"Cross-modal attention of the question over the {grid} patch grid ({view}). "
    if record["transformed"]:
        text += _chosen_by(record, layer, n_selected)
        if n_outside:
            text += f" ({n_outside} of them are not patches and are not drawn.)"
    elif record.get("method") not in (None, "cagul"):
        text += (
            f"The {record['method']} method changes the model's weights and explains "
            "nothing: this is the base model's attention, no token is rewritten."
        )
    elif record["forget_probability"] is None:
        text += "No adapter chosen: nothing rewritten."
    else:
        text += "The discriminator did not flag this image: no token was rewritten."
    return text


def _short(score: float) -> str:
    """A cell's score in at most about five characters (two significant digits)."""
    return f"{score:.2g}"


def _chosen_by(record: dict, layer: str, n_selected: int) -> str:
    """Which score chose the outlined tokens, and whether the view shown is that score: on
    another view the outlined cells need not be its lowest (the caption used to say they were)."""
    mean_view = layer in (None, "", MEAN)
    if record.get("selection") == "random":
        return (
            f"Outlined: the {n_selected} tokens the adapter rewrote, drawn at random "
            "(the random-selection ablation): no score chose them."
        )
    if record.get("per_layer"):
        if mean_view:
            return (
                f"Outlined: the union of the tokens the adapter rewrote in each layer, each "
                f"layer's {record['k']} chosen as the least attended by that layer's own score, "
                "not by this mean."
            )
        return (
            f"Outlined: the {n_selected} tokens the adapter rewrote in {layer}, the least "
            "attended by this layer's score."
        )
    names = record["cross_modal_layers"]
    positions = record.get("score_layers")
    used = list(range(len(names))) if positions is None else sorted(positions)
    if len(used) == len(names):
        source = "the mean score of all cross-modal layers"
    else:
        source = "the mean score of layer(s) " + ", ".join(str(names[i]) for i in used)
    text = f"Outlined: the {n_selected} tokens the adapter rewrote, the least attended by {source}."
    shown = list(range(len(names))) if mean_view else [layer_choices(record)[1:].index(layer)]
    if shown != used:
        text += (
            f" This view ({'mean of cross-modal layers' if mean_view else layer}) is another "
            "score: the outlined cells need not be its lowest."
        )
    return text


HEATMAP_CSS = """
.hm-wrap { display: flex; flex-direction: column; gap: 6px; align-items: flex-start; }
.hm-figure { display: grid; background-size: 100% 100%; border-radius: 6px; overflow: hidden;
  box-shadow: 0 1px 4px rgba(0,0,0,.25); }
.hm-cell { box-sizing: border-box; border: 1px solid rgba(255,255,255,.18); display: flex;
  align-items: center; justify-content: center; overflow: hidden; }
.hm-num { color: #fff; text-shadow: 0 0 2px #000, 0 0 2px #000; line-height: 1;
  font-variant-numeric: tabular-nums; pointer-events: none; }
.hm-selected { border: 3px solid #ff2d55; box-shadow: inset 0 0 0 1px #fff; }
.hm-legend { display: flex; align-items: center; gap: 8px; font-size: 12px; opacity: .8; }
.hm-bar { width: 160px; height: 10px; border-radius: 3px;
  background: linear-gradient(90deg, #440154, #3b528b, #21918c, #5ec962, #fde725); }
.hm-caption { font-size: 13px; margin: 0; max-width: 520px; }
"""

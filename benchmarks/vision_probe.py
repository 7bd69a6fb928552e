"""Does a model's vision tower describe scenes it has never seen? (issue #4's gate)

The demo bundle's language model answers POPE at chance. Linear probes on the visual tokens
tell whether the vision tower is to blame: trained on the probe set's training scenes, tested
on its held-out ones, for the tower as shipped and for the same tower re-initialised at
random (a tower that learned nothing must not beat a trained one). Two probes: which shapes a
scene holds (from the mean of its tokens) and which shape lies under each token's centre
(object tokens only). Usage::

    python -m benchmarks.vision_probe [--model assets/demo/models/pretrain]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cagul.data.scenes import SHAPES, token_cells
from cagul.models import load_vlm

_QUESTION = "What is shown in the image?"


def _labels(scene: dict, per_side: int) -> tuple[list[float], list[int]]:
    present = [float(any(o["shape"] == s for o in scene["objects"])) for s in SHAPES]
    cells = {(o["row"], o["col"]): o for o in scene["objects"]}
    under = [
        0 if (o := cells.get(cell)) is None else 1 + SHAPES.index(o["shape"])
        for cell in token_cells(per_side)
    ]
    return present, under


@torch.no_grad()
def _tokens(vlm, paths: list[str], bs: int = 32) -> torch.Tensor:
    out = []
    for i in range(0, len(paths), bs):
        chunk = paths[i : i + bs]
        out += [t.float() for t in vlm.visual_tokens(vlm.prepare(chunk, [_QUESTION] * len(chunk)))]
    return torch.stack(out)


def _fit(x: torch.Tensor, y: torch.Tensor, train: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """A linear probe (Adam, 500 full-batch steps, standardised inputs); test predictions."""
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-5
    x = (x - mu) / sd
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], y.shape[1] if multilabel else int(y.max()) + 1)
    opt = torch.optim.Adam(lin.parameters(), lr=1e-2, weight_decay=1e-3)
    loss_fn = (
        torch.nn.functional.binary_cross_entropy_with_logits
        if multilabel
        else (torch.nn.functional.cross_entropy)
    )
    for _ in range(500):
        loss = loss_fn(lin(x[train]), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = lin(x[~train])
    return (logits > 0).float() if multilabel else logits.argmax(-1)


def probe(vlm, probes_dir: Path) -> dict:
    scenes = json.loads((probes_dir / "scenes.json").read_text())
    paths = [str(probes_dir / "images" / f"scene_{s['scene_id']}.png") for s in scenes]
    tokens = _tokens(vlm, paths)
    per_side = int(round(tokens.shape[1] ** 0.5))
    labels = [_labels(s, per_side) for s in scenes]
    present = torch.tensor([p for p, _ in labels])
    under = torch.tensor([u for _, u in labels])
    train = torch.tensor([s["scene_id"].startswith("train") for s in scenes])
    pred = _fit(tokens.mean(1), present, train, multilabel=True)
    flat_train = train[:, None].expand(-1, tokens.shape[1]).reshape(-1)
    flat_under = under.reshape(-1)
    tok_pred = _fit(tokens.reshape(-1, tokens.shape[-1]), flat_under, flat_train, multilabel=False)
    objects = flat_under[~flat_train] > 0
    majority = (present[~train] == (present[train].mean(0) > 0.5).float()).float().mean()
    return {
        "test_scenes": int((~train).sum()),
        "shape_present_acc": float((pred == present[~train]).float().mean()),
        "shape_present_majority": float(majority),
        "shape_under_token_acc": float(
            (tok_pred[objects] == flat_under[~flat_train][objects]).float().mean()
        ),
        "shape_under_token_chance": 1 / len(SHAPES),
    }


def _reinitialise(vlm, seed: int = 0) -> None:
    torch.manual_seed(seed)
    # Qwen2.5-VL (the bundle's family): the tower with its patch merger.
    tower = vlm.model.model.visual
    for m in tower.modules():
        if m is not tower and hasattr(m, "reset_parameters"):
            m.reset_parameters()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="assets/demo/models/pretrain")
    ap.add_argument("--data", default="assets/demo/data")
    ap.add_argument("--out", default="benchmarks/results/vision_probe.json")
    args = ap.parse_args()
    probes_dir = Path(args.data) / "probes"
    vlm = load_vlm(args.model)
    rows = {"trained tower": probe(vlm, probes_dir)}
    _reinitialise(vlm)
    rows["re-initialised tower"] = probe(vlm, probes_dir)
    keys = ["shape_present_acc", "shape_present_majority", "shape_under_token_acc"]
    print(f"{'tower':<22}" + "".join(f"{k:>24}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<22}" + "".join(f"{r[k]:>24.3f}" for k in keys))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": args.model, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

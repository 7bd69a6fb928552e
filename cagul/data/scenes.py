"""Drawn scenes of simple coloured shapes: the images behind the synthetic POPE/MME probes.

A scene puts 1-5 objects (shape + colour) into distinct cells of a 4x4 grid on a pale
background. The grid is the demo model's visual-token grid (112 px, 28 px per merged token),
so each token sees one whole object or nothing: on a 3x3 grid tokens straddled objects, and
the tower's held-out per-token accuracy stopped at 0.80, too noisy for a fresh language model
to read (benchmarks/scene_reading; 0.97 on this grid, and read). Shapes have unequal base
frequencies and two "themes" make some shapes co-occur, so POPE's *popular* (frequent
objects) and *adversarial* (co-occurring objects) negatives differ from *random* ones, as they
do on COCO. Rendering is supersampled like the faces and is a pure function of the scene, so
images are reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "diamond",
    "cross",
    "hexagon",
)
#: Base frequency weights: "popular" negatives come from the top of this list.
SHAPE_WEIGHTS: dict[str, float] = {
    "circle": 5,
    "square": 4,
    "triangle": 3,
    "star": 3,
    "heart": 2,
    "diamond": 2,
    "cross": 1,
    "hexagon": 1,
}
#: Scene themes: most objects of a scene come from its theme, so shapes co-occur.
THEMES: tuple[tuple[str, ...], ...] = (
    ("square", "triangle", "hexagon", "diamond"),
    ("circle", "star", "heart", "cross"),
)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 210),
    "yellow": (235, 200, 30),
    "purple": (135, 60, 170),
    "orange": (240, 130, 20),
    "black": (25, 25, 25),
}
GRID = 4


@dataclass(frozen=True)
class SceneObject:
    """One shape in a grid cell (row 0 is the top, col 0 the left)."""

    shape: str
    colour: str
    row: int
    col: int


@dataclass(frozen=True)
class Scene:
    """A scene id and its objects."""

    scene_id: str
    objects: tuple[SceneObject, ...]

    @property
    def shapes(self) -> set[str]:
        """The set of shapes present."""
        return {o.shape for o in self.objects}

    def count(self, shape: str) -> int:
        """How many objects have ``shape``."""
        return sum(o.shape == shape for o in self.objects)

    def to_json(self) -> dict:
        """Plain dict for ``scenes.json``."""
        return {"scene_id": self.scene_id, "objects": [asdict(o) for o in self.objects]}


def token_cells(per_side: int) -> list[tuple[int, int]]:
    """The scene cell (row, col) under the centre of each visual token of a `per_side` ×
    `per_side` token grid, row-major: what a token is expected to see."""
    return [
        (int((r + 0.5) / per_side * GRID), int((c + 0.5) / per_side * GRID))
        for r in range(per_side)
        for c in range(per_side)
    ]


def token_classes(objects, per_side: int = 4) -> list[int]:
    """Per visual token (row-major, `token_cells`), the class of the object under its centre:
    0 for background, else 1 + shape index × len(COLOURS) + colour index. `objects` are
    (shape, colour, row, col) tuples."""
    at = {(r, c): (shape, colour) for shape, colour, r, c in objects}
    colours = list(COLOURS)
    return [
        0
        if (o := at.get(cell)) is None
        else 1 + SHAPES.index(o[0]) * len(colours) + colours.index(o[1])
        for cell in token_cells(per_side)
    ]


def sample_scene(rng: random.Random, scene_id: str) -> Scene:
    """Draw one scene: 1-5 objects, mostly from one theme, in distinct cells."""
    n = rng.choices((1, 2, 3, 4, 5), weights=(1, 3, 3, 2, 1))[0]
    theme = rng.choice(THEMES)
    cells = rng.sample([(r, c) for r in range(GRID) for c in range(GRID)], n)
    objects = []
    for row, col in cells:
        pool = theme if rng.random() < 0.8 else SHAPES
        shape = rng.choices(pool, weights=[SHAPE_WEIGHTS[s] for s in pool])[0]
        objects.append(SceneObject(shape, rng.choice(list(COLOURS)), row, col))
    objects.sort(key=lambda o: (o.row, o.col))
    return Scene(scene_id, tuple(objects))


def _polygon(cx: float, cy: float, r: float, shape: str) -> list[tuple[float, float]]:
    def ring(n: int, radius: float, phase: float) -> list[tuple[float, float]]:
        return [
            (
                cx + radius * math.cos(phase + 2 * math.pi * i / n),
                cy + radius * math.sin(phase + 2 * math.pi * i / n),
            )
            for i in range(n)
        ]

    if shape == "triangle":
        return ring(3, r, -math.pi / 2)
    if shape == "diamond":
        return [(cx, cy - r), (cx + 0.7 * r, cy), (cx, cy + r), (cx - 0.7 * r, cy)]
    if shape == "hexagon":
        return ring(6, r, 0)
    if shape == "star":
        outer, inner = ring(5, r, -math.pi / 2), ring(5, 0.42 * r, -math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a = 0.33 * r
        return [
            (cx - a, cy - r),
            (cx + a, cy - r),
            (cx + a, cy - a),
            (cx + r, cy - a),
            (cx + r, cy + a),
            (cx + a, cy + a),
            (cx + a, cy + r),
            (cx - a, cy + r),
            (cx - a, cy + a),
            (cx - r, cy + a),
            (cx - r, cy - a),
            (cx - a, cy - a),
        ]
    raise ValueError(f"no polygon for shape {shape!r}")


def render_scene(scene: Scene, size: int = 112) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size`` px (4x supersampled)."""
    big = size * 4
    img = Image.new("RGB", (big, big), (246, 244, 236))
    draw = ImageDraw.Draw(img)
    cell = big / GRID
    r = cell * 0.40
    for obj in scene.objects:
        cx, cy = (obj.col + 0.5) * cell, (obj.row + 0.5) * cell
        fill = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif obj.shape == "square":
            s = 0.8 * r
            draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
        elif obj.shape == "heart":
            lobe = 0.5 * r
            draw.ellipse([cx - r, cy - r * 0.8, cx, cy - r * 0.8 + 2 * lobe], fill=fill)
            draw.ellipse([cx, cy - r * 0.8, cx + r, cy - r * 0.8 + 2 * lobe], fill=fill)
            draw.polygon(
                [(cx - r * 0.98, cy - r * 0.2), (cx + r * 0.98, cy - r * 0.2), (cx, cy + r)],
                fill=fill,
            )
        else:
            draw.polygon(_polygon(cx, cy, r, obj.shape), fill=fill)
    return img.resize((size, size), Image.Resampling.LANCZOS)

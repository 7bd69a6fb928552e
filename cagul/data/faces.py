"""Procedurally drawn cartoon faces: the synthetic stand-in for FIUBench's SFHQ portraits.

A face is a :class:`FaceAttributes` record (face shape, skin tone, hair style and colour, eye
colour, glasses, facial hair, mouth, shirt and background colour) rendered with PIL. Drawing
happens at 4x the target size and is downsampled with a Lanczos filter, so even 112x112 px
images keep recognisable features. Everything is a function of the attributes (and of
``variant`` for jittered copies), so images are byte-identical for the same seed.

Identities are kept visually apart by :func:`sample_distinct_faces`: every new face differs
from every earlier one in at least ``min_salient_diff`` of the large-area attributes
(background, skin, hair style, hair colour, face shape, shirt, glasses).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields

from PIL import Image, ImageDraw, ImageEnhance

RGB = tuple[int, int, int]

BACKGROUNDS: dict[str, RGB] = {
    "sky": (135, 196, 235),
    "mint": (170, 226, 190),
    "peach": (250, 200, 160),
    "lavender": (200, 180, 235),
    "lemon": (245, 235, 140),
    "salmon": (240, 150, 140),
    "silver": (200, 200, 205),
    "teal": (90, 170, 170),
    "pink": (245, 175, 210),
    "sand": (215, 195, 150),
    "navy": (60, 70, 130),
    "olive": (150, 160, 80),
}
SKIN_TONES: dict[str, RGB] = {
    "porcelain": (255, 224, 205),
    "light": (241, 200, 170),
    "beige": (224, 178, 140),
    "tan": (198, 146, 104),
    "olive": (176, 132, 90),
    "brown": (141, 95, 62),
    "dark": (101, 66, 43),
    "deep": (70, 45, 30),
}
HAIR_COLOURS: dict[str, RGB] = {
    "black": (25, 22, 22),
    "dark brown": (70, 45, 25),
    "brown": (120, 80, 45),
    "auburn": (150, 60, 35),
    "blonde": (235, 205, 110),
    "ginger": (215, 110, 40),
    "grey": (150, 150, 150),
    "white": (240, 240, 235),
    "blue": (50, 90, 210),
    "pink": (230, 90, 170),
}
EYE_COLOURS: dict[str, RGB] = {
    "brown": (100, 60, 30),
    "blue": (60, 120, 210),
    "green": (60, 150, 80),
    "grey": (120, 130, 140),
    "hazel": (150, 120, 50),
}
SHIRT_COLOURS: dict[str, RGB] = {
    "red": (200, 40, 40),
    "green": (40, 140, 60),
    "blue": (40, 70, 180),
    "yellow": (230, 200, 40),
    "purple": (120, 50, 150),
    "orange": (235, 130, 30),
    "black": (30, 30, 30),
    "white": (245, 245, 245),
}
FACE_SHAPES = ("oval", "round", "long", "square", "heart")
HAIR_STYLES = (
    "bald",
    "buzz",
    "short",
    "side part",
    "long",
    "bob",
    "bun",
    "curly",
    "mohawk",
    "ponytail",
)
GLASSES = ("none", "round", "square", "sunglasses")
FACIAL_HAIR = ("none", "moustache", "beard", "goatee")
MOUTHS = ("smile", "neutral", "open")

#: Attributes that cover many pixels; distinctness is counted on these.
SALIENT = ("background", "skin", "hair_style", "hair_colour", "face_shape", "shirt", "glasses")


@dataclass(frozen=True)
class FaceAttributes:
    """Everything that determines a drawn face (names index the palettes above)."""

    face_shape: str
    skin: str
    hair_style: str
    hair_colour: str
    eye_colour: str
    glasses: str
    facial_hair: str
    mouth: str
    shirt: str
    background: str

    def to_json(self) -> dict[str, str]:
        """Plain dict, stored under ``face`` in ``full.json`` (handy for attribute training)."""
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, str]) -> FaceAttributes:
        """Inverse of :meth:`to_json`."""
        return cls(**{f.name: obj[f.name] for f in fields(cls)})

    def salient_difference(self, other: FaceAttributes) -> int:
        """How many salient attributes differ."""
        return sum(getattr(self, a) != getattr(other, a) for a in SALIENT)

    def caption(self) -> str:
        """A short description (FIUBench ships a ``caption`` per individual too)."""
        hair = (
            "a bald head"
            if self.hair_style == "bald"
            else (f"{self.hair_colour} {self.hair_style} hair")
        )
        parts = [f"{self.face_shape} face", f"{self.skin} skin", hair, f"{self.eye_colour} eyes"]
        if self.glasses != "none":
            parts.append(
                f"{self.glasses} glasses" if self.glasses != "sunglasses" else "sunglasses"
            )
        if self.facial_hair != "none":
            parts.append(f"a {self.facial_hair}")
        body = ", ".join(parts[:-1]) + " and " + parts[-1]
        return f"A person with a {body}, wearing a {self.shirt} shirt on a {self.background} background"


def sample_face(rng: random.Random, gender: str = "female") -> FaceAttributes:
    """Draw one attribute set; facial hair only for ``gender == "male"`` (half of them)."""
    facial = "none"
    if gender == "male" and rng.random() < 0.5:
        facial = rng.choice(FACIAL_HAIR[1:])
    return FaceAttributes(
        face_shape=rng.choice(FACE_SHAPES),
        skin=rng.choice(list(SKIN_TONES)),
        hair_style=rng.choice(HAIR_STYLES),
        hair_colour=rng.choice(list(HAIR_COLOURS)),
        eye_colour=rng.choice(list(EYE_COLOURS)),
        glasses=rng.choice(GLASSES) if rng.random() < 0.6 else "none",
        facial_hair=facial,
        mouth=rng.choice(MOUTHS),
        shirt=rng.choice(list(SHIRT_COLOURS)),
        background=rng.choice(list(BACKGROUNDS)),
    )


def sample_distinct_faces(
    rng: random.Random, genders: list[str], min_salient_diff: int = 3, max_tries: int = 2000
) -> list[FaceAttributes]:
    """One face per gender entry, each differing from all earlier ones in >= ``min_salient_diff``
    salient attributes. The bound relaxes by one if a draw keeps failing (very large sets), so
    the function always returns; identical salient tuples are never accepted.
    """
    faces: list[FaceAttributes] = []
    for gender in genders:
        need = min_salient_diff
        tries = 0
        while True:
            cand = sample_face(rng, gender)
            if all(cand.salient_difference(f) >= need for f in faces):
                faces.append(cand)
                break
            tries += 1
            if tries >= max_tries and need > 1:
                need, tries = need - 1, 0
    return faces


# ----------------------------------------------------------------------------- drawing

_SCALE = 4  # supersampling factor


class _Pen:
    """Draws in a 100x100 unit square mapped onto the (supersampled) canvas."""

    def __init__(self, img: Image.Image):
        self.draw = ImageDraw.Draw(img)
        self.k = img.width / 100.0

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * self.k, y0 * self.k, x1 * self.k, y1 * self.k]

    def pts(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.k, y * self.k) for x, y in points]

    def ellipse(self, cx, cy, rx, ry, fill=None, outline=None, width=0.0):
        self.draw.ellipse(
            self.box(cx - rx, cy - ry, cx + rx, cy + ry),
            fill=fill,
            outline=outline,
            width=max(1, round(width * self.k)) if outline else 0,
        )

    def rect(self, x0, y0, x1, y1, fill=None, outline=None, width=0.0, radius=0.0):
        self.draw.rounded_rectangle(
            self.box(x0, y0, x1, y1),
            radius=radius * self.k,
            fill=fill,
            outline=outline,
            width=max(1, round(width * self.k)) if outline else 0,
        )

    def poly(self, points, fill):
        self.draw.polygon(self.pts(points), fill=fill)

    def line(self, points, fill, width):
        self.draw.line(self.pts(points), fill=fill, width=max(1, round(width * self.k)))

    def chord(self, cx, cy, rx, ry, start, end, fill):
        self.draw.chord(self.box(cx - rx, cy - ry, cx + rx, cy + ry), start, end, fill=fill)

    def arc(self, cx, cy, rx, ry, start, end, fill, width):
        self.draw.arc(
            self.box(cx - rx, cy - ry, cx + rx, cy + ry),
            start,
            end,
            fill=fill,
            width=max(1, round(width * self.k)),
        )


def _shade(c: RGB, f: float) -> RGB:
    return tuple(max(0, min(255, round(v * f))) for v in c)  # type: ignore[return-value]


_HEAD = {  # face shape -> (half width, half height) of the head around (50, 46)
    "oval": (21, 27),
    "round": (25, 25),
    "long": (19, 29),
    "square": (23, 26),
    "heart": (23, 26),
}


def _draw_hair_back(p: _Pen, a: FaceAttributes, hair: RGB, rx: float, ry: float) -> None:
    # Hair that hangs behind the head is drawn before it.
    if a.hair_style == "long":
        p.rect(50 - rx - 5, 30, 50 + rx + 5, 84, fill=hair, radius=8)
    elif a.hair_style == "bob":
        p.rect(50 - rx - 4, 28, 50 + rx + 4, 66, fill=hair, radius=8)
    elif a.hair_style == "ponytail":
        p.ellipse(50 + rx + 4, 50, 6, 16, fill=hair)


def _draw_head(p: _Pen, a: FaceAttributes, skin: RGB, rx: float, ry: float) -> None:
    cy = 46
    p.ellipse(50 - rx, cy + 2, 4, 6, fill=_shade(skin, 0.92))  # ears
    p.ellipse(50 + rx, cy + 2, 4, 6, fill=_shade(skin, 0.92))
    if a.face_shape == "square":
        p.rect(50 - rx, cy - ry, 50 + rx, cy + ry, fill=skin, radius=9)
    elif a.face_shape == "heart":
        p.ellipse(50, cy - 6, rx, ry - 6, fill=skin)
        p.poly([(50 - rx + 1, cy - 2), (50 + rx - 1, cy - 2), (50, cy + ry + 1)], fill=skin)
        p.ellipse(50, cy + ry - 9, 8, 8, fill=skin)
    else:
        p.ellipse(50, cy, rx, ry, fill=skin)


def _draw_hair_front(p: _Pen, a: FaceAttributes, hair: RGB, rx: float, ry: float) -> None:
    top = 46 - ry
    style = a.hair_style
    if style == "bald":
        return
    if style == "buzz":
        p.chord(50, 46, rx + 0.5, ry + 0.5, 190, 350, fill=hair)
        return
    if style == "mohawk":
        p.rect(46, top - 12, 54, top + 8, fill=hair, radius=3)
        return
    if style == "curly":
        for i in range(9):
            ang = math.pi + i * math.pi / 8
            p.ellipse(50 + (rx + 1) * math.cos(ang), 40 + (ry - 2) * math.sin(ang), 7, 7, fill=hair)
        return
    # short, side part, long, bob, bun, ponytail share a cap
    # The cap is a bit wider than the head so square jaws do not poke out at the top.
    p.chord(50, 44, rx + 3, ry + 4, 180, 360, fill=hair)
    p.rect(50 - rx - 2, 40, 50 - rx + 3, 50, fill=hair)
    p.rect(50 + rx - 3, 40, 50 + rx + 2, 50, fill=hair)
    if style == "side part":
        p.poly([(50 - rx, top + 10), (56, top - 1), (50 + rx + 2, top + 14)], fill=hair)
    elif style == "bun":
        p.ellipse(50, top - 6, 8, 7, fill=hair)
    elif style in ("long", "bob"):
        p.rect(50 - rx - 3, 36, 50 - rx + 4, 62 if style == "bob" else 78, fill=hair, radius=3)
        p.rect(50 + rx - 4, 36, 50 + rx + 3, 62 if style == "bob" else 78, fill=hair, radius=3)


def _draw_features(p: _Pen, a: FaceAttributes, skin: RGB, hair: RGB, ry: float) -> None:
    eye = EYE_COLOURS[a.eye_colour]
    brow = hair if a.hair_style != "bald" else (60, 50, 45)
    for x in (41, 59):
        p.ellipse(x, 45, 4.5, 3, fill=(250, 250, 250))
        p.ellipse(x, 45, 2.4, 2.4, fill=eye)
        p.ellipse(x, 45, 1.1, 1.1, fill=(15, 15, 15))
        p.line([(x - 5, 39.5), (x + 5, 39)], fill=brow, width=1.6)
    p.line([(50, 47), (48, 55), (51.5, 55.5)], fill=_shade(skin, 0.7), width=1.2)  # nose
    mouth_y = 46 + ry * 0.55
    lip = (170, 60, 70)
    if a.mouth == "smile":
        p.arc(50, mouth_y - 3, 7, 5, 20, 160, fill=lip, width=1.6)
    elif a.mouth == "open":
        p.ellipse(50, mouth_y, 5, 3, fill=(110, 30, 40))
    else:
        p.line([(44, mouth_y), (56, mouth_y)], fill=lip, width=1.6)
    beard = hair if a.hair_style != "bald" else (60, 50, 45)
    if a.facial_hair == "moustache":
        p.poly([(43, mouth_y - 2), (50, mouth_y - 5), (57, mouth_y - 2), (50, mouth_y - 3)], beard)
    elif a.facial_hair == "beard":
        p.chord(50, 46, 20, ry + 1, 20, 160, fill=beard)
        p.ellipse(50, mouth_y, 5, 2.5, fill=(110, 30, 40))
    elif a.facial_hair == "goatee":
        p.ellipse(50, 46 + ry - 4, 5, 5, fill=beard)


def _draw_glasses(p: _Pen, a: FaceAttributes) -> None:
    frame = (25, 25, 25)
    if a.glasses == "round":
        for x in (41, 59):
            p.ellipse(x, 45, 7, 6, outline=frame, width=1.3)
        p.line([(48, 45), (52, 45)], fill=frame, width=1.3)
    elif a.glasses == "square":
        for x in (41, 59):
            p.rect(x - 7, 40, x + 7, 50, outline=frame, width=1.3)
        p.line([(48, 45), (52, 45)], fill=frame, width=1.3)
    elif a.glasses == "sunglasses":
        for x in (41, 59):
            p.rect(x - 7, 40, x + 7, 50, fill=(20, 20, 30), radius=3)
        p.line([(48, 44), (52, 44)], fill=frame, width=1.5)


def render_face(attrs: FaceAttributes, size: int = 112, variant: int = 0) -> Image.Image:
    """Draw ``attrs`` as an RGB image of ``size`` px. ``variant > 0`` adds a small seeded
    shift, rotation and brightness change (for augmentation); ``variant == 0`` is canonical.
    """
    big = size * _SCALE
    bg = BACKGROUNDS[attrs.background]
    img = Image.new("RGB", (big, big), bg)
    p = _Pen(img)
    skin = SKIN_TONES[attrs.skin]
    hair = HAIR_COLOURS[attrs.hair_colour]
    rx, ry = _HEAD[attrs.face_shape]
    shirt = SHIRT_COLOURS[attrs.shirt]
    _draw_hair_back(p, attrs, hair, rx, ry)
    p.rect(44, 62, 56, 82, fill=_shade(skin, 0.9))  # neck
    p.ellipse(50, 104, 38, 26, fill=shirt)  # shoulders
    p.chord(50, 80, 7, 6, 0, 180, fill=_shade(skin, 0.9))  # neckline
    _draw_head(p, attrs, skin, rx, ry)
    _draw_hair_front(p, attrs, hair, rx, ry)
    _draw_features(p, attrs, skin, hair, ry)
    _draw_glasses(p, attrs)
    if variant:
        rng = random.Random(f"face-variant:{variant}:{sorted(attrs.to_json().items())}")
        img = img.rotate(
            rng.uniform(-6, 6),
            resample=Image.Resampling.BICUBIC,
            translate=(rng.uniform(-0.04, 0.04) * big, rng.uniform(-0.04, 0.04) * big),
            fillcolor=bg,
        )
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.88, 1.12))
    return img.resize((size, size), Image.Resampling.LANCZOS)

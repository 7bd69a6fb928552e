"""Match an uploaded photo to a known person of the dataset, or say that nobody matches.

The frozen VLM's visual tokens of an image, mean-pooled and L2-normalised, are its embedding.
Each person's gallery is their dataset image plus eight copies shifted by about 3 % of the
width (a re-framed photo moves the content under the patch grid, which the pooled tokens of
the single dataset image follow poorly); a photo's score for a person is the best cosine
similarity over that person's gallery, and the photo matches the best-scoring person when
that score reaches :data:`MATCH_THRESHOLD`.

The threshold was measured on the shipped demo bundle (30 people, 260 probe scenes): every
perturbed copy of a person's photo scored its own person first, with at least 0.848 (330
copies by cagul.perturb's fixed and audit perturbations, min 0.848; 120 seeded random ones, min
0.940; 90 of the face renderer's re-posed variants, min 0.966); no probe scene scored above
0.432 (mean 0.357). With the single dataset image as the gallery, 4.5 % of the perturbed
copies (4 px shifts) matched someone else, hence the shifted copies. 0.80 lies between, nearer the people so that fewer look-alikes pass:
faces drawn from the same generator but of nobody in the dataset still score a best match of
0.80 or more in about 65 % of cases (median 0.84), so the score is a pointer for an officer to
confirm, not an identification.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from cagul.data.format import FiuDataset
from cagul.inputs import UserInputError, open_image
from cagul.models import VLM
from cagul.perturb import shift

#: Best cosine similarity a photo needs to count as a known person (see the module docstring).
MATCH_THRESHOLD = 0.80
#: The question the images are prepared with (the visual tokens do not depend on it for
#: joint-attention families; cross-attention families' tokens do not either).
QUESTION = "Who is this person?"
#: Shift of the gallery copies, as a fraction of the image width (3 px of the bundle's 112).
SHIFT_FRACTION = 0.027
BATCH = 32


class MatchError(UserInputError):
    """The photo cannot be matched (unreadable, or the dataset has no person to match)."""


@dataclass(frozen=True)
class Candidate:
    unique_id: str
    name: str
    score: float


@dataclass(frozen=True)
class Match:
    """The outcome of one photo: the best candidates, and the person when one is close enough."""

    threshold: float
    candidates: list[Candidate] = field(default_factory=list)  # best first

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def matched(self) -> bool:
        return self.best is not None and self.best.score >= self.threshold

    @property
    def unique_id(self) -> str | None:
        return self.best.unique_id if self.matched else None

    def message(self) -> str:
        b = self.best
        if b is None:
            return "nobody to match against"
        if self.matched:
            return (
                f"matched {b.unique_id} · {b.name}: similarity {b.score:.3f} "
                f"(threshold {self.threshold:.2f})"
            )
        return (
            f"nobody matches: the most similar person is {b.unique_id} · {b.name} at "
            f"{b.score:.3f}, below the threshold {self.threshold:.2f}; nobody was selected"
        )

    def to_json(self) -> dict:
        return {
            "matched": self.matched,
            "unique_id": self.unique_id,
            "score": self.best.score if self.best else None,
            "threshold": self.threshold,
            "candidates": [c.__dict__ for c in self.candidates],
            "message": self.message(),
        }


def gallery_images(img: Image.Image) -> list[Image.Image]:
    """A person's reference photos: the image and eight shifted copies."""
    img = img.convert("RGB")
    d = max(1, round(SHIFT_FRACTION * img.width))
    moves = [(d, 0), (-d, 0), (0, d), (0, -d), (d, d), (-d, -d), (d, -d), (-d, d)]
    return [img] + [shift(img, dx, dy) for dx, dy in moves]


class PersonMatcher:
    """Photo → most similar person of `dataset`, over the frozen `vlm` (one per Studio: the
    gallery is embedded once, on first use)."""

    def __init__(
        self,
        vlm: VLM,
        dataset: FiuDataset,
        *,
        threshold: float = MATCH_THRESHOLD,
        lock: threading.Lock | None = None,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must lie in (0, 1], got {threshold}")
        self.vlm, self.dataset, self.threshold = vlm, dataset, threshold
        self._lock = lock
        self._gallery: tuple[torch.Tensor, torch.Tensor] | None = None
        self._build = threading.Lock()

    def embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """[n, d] unit vectors: each image's visual tokens, mean-pooled."""
        out = []
        for i in range(0, len(images), BATCH):
            chunk = list(images[i : i + BATCH])
            with self._lock or nullcontext(), torch.no_grad():
                tokens = self.vlm.visual_tokens(self.vlm.prepare(chunk, [QUESTION] * len(chunk)))
            out += [t.float().mean(0) for t in tokens]
        return F.normalize(torch.stack(out), dim=1).cpu()

    def gallery(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(embeddings [m, d], owner index per row [m]), built once."""
        with self._build:
            if self._gallery is None:
                images, owners = [], []
                for j, ind in enumerate(self.dataset.individuals):
                    path = ind.image_file or (self.dataset.root / ind.image_path)
                    g = gallery_images(open_image(path))
                    images += g
                    owners += [j] * len(g)
                if not images:
                    raise MatchError("the dataset has no person images to match against")
                self._gallery = (self.embed(images), torch.tensor(owners))
            return self._gallery

    def scores(self, image) -> list[Candidate]:
        """Every person with a photo, best first (`image`: a path, bytes or a PIL image)."""
        if image is None:
            raise MatchError("upload a photo first")
        img = open_image(image)  # UserInputError on a corrupt, empty or huge file
        emb, owners = self.gallery()
        sims = (self.embed([img]) @ emb.T)[0]
        people = self.dataset.individuals
        best: dict[int, float] = {}
        for s, j in zip(sims.tolist(), owners.tolist(), strict=True):
            best[j] = max(s, best.get(j, -1.0))
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        return [Candidate(people[j].unique_id, people[j].name, round(s, 4)) for j, s in ranked]

    def match(self, image, top: int = 3) -> Match:
        return Match(self.threshold, self.scores(image)[:top])

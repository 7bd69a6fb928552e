"""One entry point that writes a complete synthetic dataset directory.

``generate_dataset(out_dir)`` writes, deterministically for a given seed::

    full.json         FIUBench-format individuals (see cagul.data.format)
    split.json        nested named forget splits forget1, forget5, forget10, forget15, forget20
    images/*.png      one drawn face per individual
    probes/           synthetic POPE / MME probes and general VQA training items
    generator.json    the parameters used (so a bundle can be regenerated)

Files it writes are overwritten; nothing else in ``out_dir`` is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from .format import FiuDataset, save_dataset
from .probes import write_probes
from .splits import DEFAULT_SPLIT_PERCENTS, make_named_splits
from .synthetic import make_individuals, write_faces

GENERATOR_VERSION = 1


def generate_dataset(
    out_dir: str | Path,
    n_individuals: int = 30,
    seed: int = 0,
    *,
    image_size: int = 112,
    split_percents: Iterable[int] = DEFAULT_SPLIT_PERCENTS,
    probes: bool = True,
    n_train_scenes: int = 200,
    n_test_scenes: int = 60,
) -> FiuDataset:
    """Write a synthetic FIUBench-format dataset (plus probes) and return it loaded."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    individuals = make_individuals(n_individuals, seed)
    write_faces(individuals, out, image_size)
    percents = tuple(split_percents)
    splits = make_named_splits([i.unique_id for i in individuals], percents, seed)
    ds = FiuDataset(out, individuals, splits)
    save_dataset(ds, out)
    if probes:
        write_probes(out / "probes", seed, n_train_scenes, n_test_scenes, image_size)
    params = {
        "generator_version": GENERATOR_VERSION,
        "n_individuals": n_individuals,
        "seed": seed,
        "image_size": image_size,
        "split_percents": list(percents),
        "probes": probes,
        "n_train_scenes": n_train_scenes,
        "n_test_scenes": n_test_scenes,
    }
    (out / "generator.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    return ds

"""Data for CAGUL: the FIUBench format, forget/retain splits, the synthetic generator, probes.

Typical use::

    from cagul.data import generate_dataset, load_dataset, make_split
    generate_dataset("assets/demo/data", n_individuals=30, seed=0)
    ds = load_dataset("assets/demo/data")
    split = make_split(ds, "forget10", setting="private")
    split.forget_set[0].question, split.forget_set[0].keywords
"""

from .categories import CATEGORIES, PRIVATE_CATEGORIES, derive_category
from .errors import (
    DataError,
    DatasetFileError,
    DuplicateIdError,
    EmptyKeywordsError,
    MissingImageError,
    ParaphraseCountError,
    SchemaError,
    SplitSizeError,
    UnknownIdError,
    UnknownPairError,
    UnknownSplitError,
    UnreadableImageError,
    UnsafePathError,
)
from .format import FiuDataset, Individual, QAPair, load_dataset, save_dataset
from .generate import generate_dataset
from .probe_loaders import load_mme, load_pope
from .probes import MME_SUBSETS, POPE_SUBSETS, Probe, ProbeSet, load_probe_file, load_probes
from .refusals import REFUSALS
from .splits import (
    DEFAULT_SPLIT_PERCENTS,
    SETTINGS,
    Sample,
    Split,
    choose_forget_ids,
    make_named_splits,
    make_split,
    pair_id,
    parse_pair_id,
    resolve_forget_ids,
    resolve_pair_ids,
)

__all__ = [
    "CATEGORIES",
    "DEFAULT_SPLIT_PERCENTS",
    "MME_SUBSETS",
    "POPE_SUBSETS",
    "PRIVATE_CATEGORIES",
    "REFUSALS",
    "SETTINGS",
    "DataError",
    "DatasetFileError",
    "DuplicateIdError",
    "EmptyKeywordsError",
    "FiuDataset",
    "Individual",
    "MissingImageError",
    "ParaphraseCountError",
    "Probe",
    "ProbeSet",
    "QAPair",
    "Sample",
    "SchemaError",
    "Split",
    "SplitSizeError",
    "UnknownIdError",
    "UnknownPairError",
    "UnknownSplitError",
    "UnreadableImageError",
    "UnsafePathError",
    "choose_forget_ids",
    "derive_category",
    "generate_dataset",
    "load_dataset",
    "load_mme",
    "load_pope",
    "load_probe_file",
    "load_probes",
    "make_named_splits",
    "make_split",
    "pair_id",
    "parse_pair_id",
    "resolve_forget_ids",
    "resolve_pair_ids",
    "save_dataset",
]

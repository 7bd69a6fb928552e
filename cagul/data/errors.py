"""Typed errors raised while reading, validating or splitting a FIUBench-format dataset.

Every error derives from :class:`DataError`, so callers (the CLI, the job worker) can catch
one class and report the message, while tests and the app can tell the causes apart.
"""

from __future__ import annotations


class DataError(Exception):
    """Base class of every dataset problem."""


class DatasetFileError(DataError):
    """``full.json`` or ``split.json`` is missing or is not valid JSON of the expected shape."""


class SchemaError(DataError):
    """A record lacks a required field or a field has the wrong type."""


class MissingImageError(DataError):
    """An individual's image file does not exist."""


class UnreadableImageError(DataError):
    """An individual's image file exists but PIL cannot decode it."""


class EmptyKeywordsError(DataError):
    """A QA pair has no keywords (EM and APE would be undefined)."""


class DuplicateIdError(DataError):
    """Two individuals share a ``unique_id``."""


class UnknownIdError(DataError):
    """A split (or an explicit forget list) names an id that is not in the dataset."""


class UnknownPairError(DataError):
    """A pair id is malformed, names no pair of the dataset, or a pair of someone the request
    does not name."""


class UnknownSplitError(DataError):
    """A named split is not in ``split.json``."""


class ParaphraseCountError(DataError):
    """A QA pair has the wrong number of paraphrased questions or too few perturbed answers."""


class SplitSizeError(DataError):
    """A requested number or fraction of forget individuals cannot be satisfied."""


class UnsafePathError(DataError):
    """A path in a data file leaves its root (``..``, an absolute path elsewhere), or an id
    that must name a file holds a path separator."""

"""The errors about models and their inputs, apart from both: `cagul.models` raises them
while building a batch, and `cagul.inputs` (which checks user input for the models) raises
`InputError`; neither has to import the other for them.
"""

from __future__ import annotations


class VLMError(Exception):
    """Base class for errors about models and their inputs."""


class UnsupportedModelError(VLMError):
    """The directory is not a VLM of a supported family."""


class AttentionUnavailableError(VLMError):
    """Cross-modal attention could not be extracted; no scores are made up in its place."""


class InputError(VLMError):
    """A question or image the model cannot take (empty, too long, unreadable)."""

"""The one-line messages every tab shows above its results, and which errors they show.

The text is escaped: an error message may quote what a user typed (an id, a question), and the
page must show it, not run it.
"""

from __future__ import annotations

import html

from cagul.inputs import UserInputError
from cagul.models import VLMError
from storage import StorageError
from webui.auth import AuthError
from webui.public import scrub_text
from webui.studio import StudioError

# What a user did wrong, or may not do: shown in the page. Anything else is a bug and is left
# to Gradio's error handling.
SHOWN = (AuthError, UserInputError, StudioError, StorageError, VLMError)


def info(text: str) -> str:
    return f'<div class="msg msg-info">{html.escape(scrub_text(text))}</div>'


def error(text: str | Exception) -> str:
    """An error line; server paths and object reprs in it are rewritten (`webui.public`)."""
    return f'<div class="msg msg-error">{html.escape(scrub_text(str(text)))}</div>'

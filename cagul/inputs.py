"""Checks on what users type and upload, done at the edge before any model work.

The app's forms, the REST API and the CLI all pass user images and questions through
`open_image` and `clean_question`, so a corrupt file, a decompression bomb, an empty or
over-long question fail with one typed `UserInputError` and a one-line message, never a
traceback, and before anything is computed or stored.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image

from cagul.errors import InputError

# Images above this are refused, not downscaled: a downscaled face is a different input than
# the one the user asked about, and silently answering about it would hide that. 40 M pixels
# is far above any camera photo a VLM processor would take (they resize to ~1 M).
MAX_IMAGE_PIXELS = 40_000_000
# Uploads above this many bytes are refused before decoding.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Questions are a sentence or two; 500 characters leaves room for a long paraphrase.
MAX_QUESTION_CHARS = 500


class UserInputError(InputError):
    """An image or a question a user gave cannot be used; the message says why."""


def open_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB PIL image from a path, bytes or a PIL image, or UserInputError.

    The declared size is checked before the pixels are decoded, so a small file that declares
    100000 x 100000 pixels is refused without allocating them.
    """
    name = "the image"
    if isinstance(source, Image.Image):
        return _checked(source, name, max_pixels).convert("RGB")
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = path.name
        if not path.is_file():
            raise UserInputError(f"{name}: no such image file")
        if path.stat().st_size > MAX_IMAGE_BYTES:
            raise UserInputError(f"{name} is larger than {MAX_IMAGE_BYTES // 2**20} MB")
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        if len(data) > MAX_IMAGE_BYTES:
            raise UserInputError(f"the image is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    else:
        raise UserInputError(f"expected an image, got {type(source).__name__}")
    if not data:
        raise UserInputError(f"{name} is empty")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as im:
                _checked(im, name, max_pixels)
                return im.convert("RGB")
        except UserInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise UserInputError(f"{name} declares too many pixels to decode safely") from e
        except (OSError, SyntaxError, ValueError) as e:
            raise UserInputError(f"{name} is not a readable image ({e})") from e


def _checked(im: Image.Image, name: str, max_pixels: int) -> Image.Image:
    if im.width < 1 or im.height < 1:
        raise UserInputError(f"{name} has no pixels")
    if im.width * im.height > max_pixels:
        raise UserInputError(
            f"{name} has {im.width}x{im.height} pixels; at most {max_pixels:,} are accepted"
        )
    return im


def clean_question(question, *, max_chars: int = MAX_QUESTION_CHARS) -> str:
    """The question stripped of surrounding whitespace, or UserInputError."""
    if not isinstance(question, str):
        raise UserInputError(f"the question must be text, got {type(question).__name__}")
    q = question.strip()
    if not q:
        raise UserInputError("the question is empty")
    if len(q) > max_chars:
        raise UserInputError(f"the question has {len(q)} characters; at most {max_chars} allowed")
    if "\x00" in q:
        raise UserInputError("the question contains a NUL character")
    return q

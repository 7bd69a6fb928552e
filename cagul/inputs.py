"""Checks on what users type and upload, done at the edge before any model work.

The app's forms, the REST API and the CLI all pass user images and questions through
`open_image` and `clean_question`, so a corrupt file, a decompression bomb, an empty or
over-long question fail with one typed `UserInputError` and a one-line message, never a
traceback, and before anything is computed or stored.
"""

from __future__ import annotations

import ctypes
import io
import sys
import warnings
from pathlib import Path

from PIL import Image

from cagul.errors import InputError

# What the product needs of an image: VLM processors resize to about 1 M pixels and the photo
# matcher to less, so a longest side of 2048 loses nothing a model sees. Larger images are
# decoded at reduced size: JPEGs by DCT scaling while decoding (`Image.draft`, any camera photo
# up to MAX_IMAGE_PIXELS), other formats (PNG, WebP...) in full and then reduced, so those are
# capped lower, at MAX_FULL_DECODE_PIXELS (4096 x 4096: at most 64 MB decoded as RGBA). That
# keeps one accepted upload under ~150 MB of memory, returned after the request.
MAX_IMAGE_PIXELS = 50_000_000
MAX_FULL_DECODE_PIXELS = 4096 * 4096
MAX_SIDE = 2048
# Uploads above this many bytes are refused before decoding.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
# Questions are a sentence or two; 500 characters leaves room for a long paraphrase.
MAX_QUESTION_CHARS = 500


class UserInputError(InputError):
    """An image or a question a user gave cannot be used; the message says why."""


def open_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB PIL image from a path, bytes or a PIL image, or UserInputError.

    The declared size is checked before the pixels are decoded, so a small file that declares
    100000 x 100000 pixels is refused without allocating them. Large images come back reduced
    to a longest side of MAX_SIDE, turned upright as their EXIF orientation says. Messages
    name the file (never its directory) and never quote Python objects.
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
            im = Image.open(io.BytesIO(data))
            try:
                return _decode(im, name, max_pixels)
            finally:
                im.close()  # frees the full-size pixels now (`with` does not), before the trim
        except UserInputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise UserInputError(f"{name} declares too many pixels to decode safely") from e
        except (OSError, SyntaxError, ValueError) as e:
            # PIL's message may quote the buffer object ("<_io.BytesIO object at 0x…>").
            raise UserInputError(f"{name} is not a readable image") from e
        finally:
            release_memory()


# EXIF orientation (tag 0x0112) -> the transpose that makes the image upright; the table of
# `PIL.ImageOps.exif_transpose`, applied after reducing so the big image is never copied.
_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _decode(im: Image.Image, name: str, max_pixels: int) -> Image.Image:
    """Decode an opened image bounded in memory: reduced, upright, RGB."""
    _checked(im, name, max_pixels)
    if im.format == "JPEG":
        im.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decodes at 1/2, 1/4 or 1/8 scale when larger
    elif im.width * im.height > MAX_FULL_DECODE_PIXELS:
        raise UserInputError(
            f"{name} has {im.width}x{im.height} pixels; at most {MAX_FULL_DECODE_PIXELS:,} are "
            f"accepted for {im.format or 'this format'} (JPEG photos up to {max_pixels:,})"
        )
    orientation = im.getexif().get(0x0112, 1)  # after the checks: a PNG decodes to find it
    im.load()
    factor = -(-max(im.size) // MAX_SIDE)  # ceil
    out = _reduced_rgb(im, factor) if factor > 1 else im.convert("RGB")
    if orientation in _ORIENT:
        out = out.transpose(_ORIENT[orientation])
    return out


def _reduced_rgb(im: Image.Image, factor: int) -> Image.Image:
    """`im` in RGB, `factor` times smaller, converted band by band: converting or reducing
    the whole image would allocate a second full-size copy (Pillow keeps RGB at 4 bytes a
    pixel and premultiplies alpha in a copy)."""
    out = Image.new("RGB", (-(-im.width // factor), -(-im.height // factor)))
    band = factor * 128  # rows per band, a multiple of the factor so bands meet exactly
    for top in range(0, im.height, band):
        piece = im.crop((0, top, im.width, min(im.height, top + band)))
        out.paste(piece.convert("RGB").reduce(factor), (0, top // factor))
    return out


def release_memory() -> None:
    """Hand freed heap pages back to the system (glibc), so a large decode does not leave the
    process bigger after the request; a no-op elsewhere."""
    if _libc is not None:
        _libc.malloc_trim(0)


def _load_libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_libc = _load_libc()


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

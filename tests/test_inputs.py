"""Edge checks on user images and questions (cagul/inputs.py)."""

import struct
import zlib

import pytest
from PIL import Image

from cagul.inputs import MAX_QUESTION_CHARS, UserInputError, clean_question, open_image


def png_declaring(width: int, height: int) -> bytes:
    """A few-byte PNG whose header claims `width` x `height` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_a_real_image_opens_as_rgb(tmp_path):
    path = tmp_path / "a.png"
    Image.new("L", (20, 10), 128).save(path)
    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        im = open_image(source)
        assert im.mode == "RGB" and im.size == (20, 10)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"this is a text file, not a picture", "not a readable image"),
        (b"", "empty"),
        (png_declaring(100_000, 100_000), "pixels"),
        (png_declaring(7_000, 7_000), "at most"),
    ],
)
def test_bad_images_are_refused_with_a_reason(tmp_path, data, message):
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    with pytest.raises(UserInputError, match=message):
        open_image(path)
    with pytest.raises(UserInputError, match=message):
        open_image(data)


def test_missing_file_and_wrong_type_are_refused(tmp_path):
    with pytest.raises(UserInputError, match="no such image"):
        open_image(tmp_path / "nope.png")
    with pytest.raises(UserInputError, match="expected an image"):
        open_image(["a.png"])


@pytest.mark.parametrize(
    "question, message",
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("x" * (MAX_QUESTION_CHARS + 1), "at most"),
        (12, "must be text"),
        ("a\x00b", "NUL"),
    ],
)
def test_bad_questions_are_refused(question, message):
    with pytest.raises(UserInputError, match=message):
        clean_question(question)


def test_a_question_is_stripped():
    assert clean_question("  Where does this person live?\n") == "Where does this person live?"

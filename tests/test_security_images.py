"""Bounded image decoding: the pixel caps, decoding large images at reduced size so one
accepted upload adds at most ~150 MB of memory (and gives it back), EXIF orientation, and
error messages that quote no Python object."""

import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from cagul.inputs import MAX_FULL_DECODE_PIXELS, MAX_SIDE, UserInputError, open_image
from tests.browser import REPO

# Runs in a fresh interpreter so the peak RSS belongs to this one decode.
MEASURE = """
import json, sys
from cagul.inputs import UserInputError, open_image, release_memory
def status(key):
    return int(next(l for l in open('/proc/self/status') if l.startswith(key)).split()[1]) / 1024
data = open(sys.argv[1], 'rb').read()
release_memory()
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # resets the peak (VmHWM) to the current RSS: import-time peaks do not count
base, outcome = status('VmRSS'), 'accepted'
try:
    size = open_image(data).size
except UserInputError as e:
    size, outcome = None, 'refused'
print(json.dumps({'peak_mb': status('VmHWM') - base, 'after_mb': status('VmRSS') - base,
                  'outcome': outcome, 'size': size}))
"""


def measure(path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path)],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("fmt", "mode", "side", "outcome"),
    [
        ("PNG", "RGB", 6300, "refused"),  # 39.7 M pixels: decoded in full it took ~690 MB
        ("PNG", "RGBA", 4096, "accepted"),  # the largest full decode accepted
        ("JPEG", "RGB", 6300, "accepted"),  # decoded at 1/4 scale by DCT scaling
    ],
)
def test_one_large_upload_adds_at_most_150_mb_and_gives_it_back(tmp_path, fmt, mode, side, outcome):
    path = tmp_path / f"big.{fmt.lower()}"
    Image.new(mode, (side, side), (200, 30, 30)).save(path, format=fmt)  # a few hundred kB
    got = measure(path)
    assert got["outcome"] == outcome
    assert got["peak_mb"] <= 150, got
    assert got["after_mb"] <= 40, got  # the decoded image (16 MB at most) is all that stays
    if outcome == "accepted":
        assert max(got["size"]) <= MAX_SIDE


def test_full_decode_cap_names_the_limit():
    buf = io.BytesIO()
    Image.new("L", (4097, 4096)).save(buf, format="PNG")
    with pytest.raises(UserInputError, match=f"at most {MAX_FULL_DECODE_PIXELS:,}"):
        open_image(buf.getvalue())


def test_exif_orientation_is_honoured():
    # Stored landscape, left half red; EXIF orientation 6 says: turn 90 degrees clockwise.
    im = Image.new("RGB", (400, 300), "black")
    im.paste((255, 0, 0), (0, 0, 200, 300))
    exif = im.getexif()
    exif[0x0112] = 6
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        im.save(buf, format=fmt, exif=exif)
        upright = open_image(buf.getvalue())
        assert upright.size == (300, 400)  # portrait, as the camera was held
        top, bottom = upright.getpixel((150, 20)), upright.getpixel((150, 380))
        assert top[0] > 200 and bottom[0] < 50


def test_an_unreadable_image_message_quotes_no_object():
    with pytest.raises(UserInputError) as caught:
        open_image(b"this is not an image at all")
    text = str(caught.value)
    assert text == "the image is not a readable image"
    assert "BytesIO" not in text and "0x" not in text

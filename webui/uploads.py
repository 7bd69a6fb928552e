"""Which files a page handler may read: only images this browser session uploaded.

Gradio serves every event handler at `/gradio_api/queue/join`, so a script can send any file
payload, `{"path": "/etc/…"}` included. A handler therefore never opens a path because the
client named it: the page's upload events record the uploads of this session (`register`,
only files inside Gradio's upload folder, symlinks resolved), and the handlers read an image
only when its path is one of them (`read_upload`). A demo person's photo is chosen by id on
the server (`Studio.image_of`), never by path.

Every refusal has the same text whatever the path, so the answer tells nothing about which
files exist on the server.
"""

from __future__ import annotations

from pathlib import Path

from cagul.inputs import MAX_IMAGE_BYTES, UserInputError

REFUSED = "this image is not an upload of this page: upload the photo again"
MAX_PER_SESSION = 32  # the newest uploads a session may still ask about


class UploadRefusedError(UserInputError):
    """The image payload names a file that is not one of this session's uploads."""


def _path_of(payload) -> str | None:
    if isinstance(payload, dict):
        payload = payload.get("path")
    return payload if isinstance(payload, str) and payload and "\x00" not in payload else None


def _upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _resolved_upload(payload) -> Path | None:
    """The real path of `payload` when it lies inside Gradio's upload folder, else None."""
    raw = _path_of(payload)
    if raw is None:
        return None
    try:
        real = Path(raw).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    folder = _upload_folder()
    return real if real != folder and real.is_relative_to(folder) else None


def register(uploads: list[str] | None, payload) -> list[str]:
    """This session's uploads with `payload` added when it is a file in the upload folder."""
    kept = list(uploads or [])
    real = _resolved_upload(payload)
    if real is not None and str(real) not in kept:
        kept.append(str(real))
    return kept[-MAX_PER_SESSION:]


def read_upload(uploads: list[str] | None, payload) -> bytes:
    """The bytes of an image this session uploaded, or UploadRefusedError (one text for every
    path that is not one, existing or not) / UserInputError (too large, gone)."""
    real = _resolved_upload(payload)
    if real is None or str(real) not in (uploads or []):
        raise UploadRefusedError(REFUSED)
    try:
        with real.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except OSError as e:
        raise UserInputError("the uploaded image is gone: upload it again") from e
    if len(data) > MAX_IMAGE_BYTES:
        raise UserInputError(f"the image is larger than {MAX_IMAGE_BYTES // 2**20} MB")
    return data

"""HTTP-level guards around the whole app (REST, sign-in routes and Gradio alike).

- `OriginGuard`: cross-origin requests that change something (POST, PUT, PATCH, DELETE) are
  refused, and so are CORS preflights; no response carries CORS headers (Gradio would echo
  any `http://localhost:*` origin with credentials) unless the origin is listed in
  `CAGUL_CORS_ORIGINS` (comma-separated), which then may read answers without credentials.
- `BodyLimit`: request bodies are bounded before the app reads them (413 above the limit).
- `ErrorShape`: every 4xx/5xx answer has the API's JSON shape `{"error": {"code",
  "message"}}`; Gradio's own routes keep their `detail` key beside it for Gradio's client.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

from webui.public import scrub_text

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MB = 2**20


def _error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def _send_error(send, status: int, code: str, message: str, headers=()) -> None:
    body = _error_body(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for k, v in scope.get("headers", []):
        if k == name:
            return v.decode("latin-1")
    return None


def configured_origins() -> set[str]:
    raw = os.environ.get("CAGUL_CORS_ORIGINS", "")
    return {o.strip().rstrip("/") for o in raw.split(",") if o.strip()}


class OriginGuard:
    """Refuse cross-origin writes and preflights; strip CORS headers but for listed origins."""

    def __init__(self, app) -> None:
        self.app = app
        self.allowed = configured_origins()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        origin = _header(scope, b"origin")
        host = _header(scope, b"host") or ""
        foreign = origin is not None and (urlsplit(origin).netloc or origin) != host
        listed = foreign and origin.rstrip("/") in self.allowed
        method = scope["method"]
        if foreign and not listed and (method in UNSAFE or method == "OPTIONS"):
            return await _send_error(
                send, 403, "cross_origin_refused", "requests from another site are refused"
            )
        if listed and method == "OPTIONS":
            return await send_preflight(send, origin)

        async def without_cors(message):
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not k.lower().startswith(b"access-control-")
                ]
                if listed:
                    headers += [
                        (b"access-control-allow-origin", origin.encode()),
                        (b"vary", b"Origin"),
                    ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, without_cors)


async def send_preflight(send, origin: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", origin.encode()),
                (b"vary", b"Origin"),
                (b"access-control-allow-methods", b"GET, POST"),
                (b"access-control-allow-headers", b"authorization, content-type"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def body_limit(path: str) -> int:
    """The largest request body a path accepts, in bytes."""
    if path.startswith("/api/"):
        return 28 * MB  # a 20 MB image as base64 (x 4/3) and the JSON around it
    if path.startswith("/gradio_api/upload"):
        return 21 * MB  # Gradio's max_file_size (20 MB) checks the file; this the multipart
    return 1 * MB  # sign-in, Gradio events: text fields only (files go through the upload)


class BodyLimit:
    """413 for a body above `body_limit`: by Content-Length, or counted when none is sent."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        declared = _header(scope, b"content-length")
        too_large = (413, "body_too_large", f"the request body is larger than {limit // MB} MB")
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                return await _send_error(send, *too_large)
            return await self.app(scope, receive, send)
        chunks, size = [], 0  # chunked: read it here, bounded, then replay it to the app
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            size += len(message.get("body", b""))
            if size > limit:
                return await _send_error(send, *too_large)
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ErrorShape:
    """Rewrite every 4xx/5xx answer that is not `{"error": {...}}` into that shape."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        held: dict = {}
        parts: list[bytes] = []

        async def shaped(message):
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message
                return
            if "start" not in held:
                return await send(message)
            parts.append(message.get("body", b""))
            if message.get("more_body"):
                return
            start = held.pop("start")
            body = _reshape(start["status"], b"".join(parts), scope["path"])
            headers = [
                (k, v)
                for k, v in start.get("headers", [])
                if k.lower() not in (b"content-length", b"content-type")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, shaped)


def _reshape(status: int, raw: bytes, path: str) -> bytes:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return raw
    detail = data.get("detail") if isinstance(data, dict) else None
    if status >= 500:
        message = "the server failed on this request"
    elif detail is not None:
        message = scrub_text(detail if isinstance(detail, str) else json.dumps(detail))
    else:
        message = {404: "no such route", 405: "method not allowed"}.get(status, f"HTTP {status}")
    code = {404: "not_found", 405: "method_not_allowed"}.get(status, f"http_{status}")
    out: dict = {"error": {"code": code, "message": message}}
    if path.startswith("/gradio_api/") and isinstance(data, dict) and "detail" in data:
        out["detail"] = data["detail"]  # Gradio's browser client reads this key
    return json.dumps(out).encode()

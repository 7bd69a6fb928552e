"""Memory of the running app for large-pixel uploads sent through the page's own API.

Starts `python app.py` (no worker, a scratch SQLite file), uploads each image through
`/gradio_api/upload`, registers it with the Explore upload event and asks about it, all as raw
queue calls (one fresh session per upload). Per image: wall time, the app's peak RSS above the
RSS before the request (VmHWM, reset through /proc/PID/clear_refs before each request, so
Linux only) and the RSS left after it; then four requests at once. The images are single
coloured, so a few hundred kB of file declare up to 40 M pixels. Usage::

    python -m benchmarks.upload_memory [--out benchmarks/results/upload_memory.json]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
from PIL import Image

from tests.browser import REPO, free_port, wait_healthy

IMAGES = [
    ("rgba4096.png", "RGBA", 4096, "PNG"),
    ("rgb6300.jpg", "RGB", 6300, "JPEG"),
    ("rgb6300.png", "RGB", 6300, "PNG"),
]


class App:
    """The app in a subprocess, called through Gradio's queue like a script would."""

    def __init__(self, db: Path) -> None:
        port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "app.py",
                "--port",
                str(port),
                "--no-worker",
                "--database-url",
                f"sqlite:///{db}",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, self.proc)
        self.client = httpx.Client(base_url=url, timeout=600)
        deps = self.client.get("/config").json()["dependencies"]
        self.index = {d.get("api_name"): d["id"] for d in deps}

    def status(self, key: str) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return int(next(line for line in f if line.startswith(key)).split()[1]) / 1024

    def reset_peak(self) -> float:
        with open(f"/proc/{self.proc.pid}/clear_refs", "w") as f:
            f.write("5")
        return self.status("VmRSS")

    def call(self, name: str, data: list, session: str) -> dict:
        body = {
            "fn_index": self.index[name],
            "session_hash": session,
            "data": data,
            "event_data": None,
            "trigger_id": None,
        }
        self.client.post("/gradio_api/queue/join", json=body).raise_for_status()
        with self.client.stream(
            "GET", "/gradio_api/queue/data", params={"session_hash": session}
        ) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and '"process_completed"' in line:
                    return json.loads(line[5:])
        raise RuntimeError("no result")

    def ask(self, data: bytes, name: str) -> str:
        session = uuid.uuid4().hex[:10]
        path = self.client.post("/gradio_api/upload", files={"files": (name, data)}).json()[0]
        payload = {"path": path, "meta": {"_type": "gradio.FileData"}}
        self.call("on_upload", [payload, None], session)
        out = self.call("on_ask", [None, payload, "What is shown?", None, None], session)
        return "answered" if "Answered" in str(out["output"]["data"][0]) else "refused"


def image_bytes(mode: str, side: int, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (side, side), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def measure(app: App, files: dict[str, bytes]) -> dict:
    app.ask(files["rgba4096.png"], "warm-up.png")  # lazily built state is not the upload's
    rows = []
    for name, data in files.items():
        base, started = app.reset_peak(), time.perf_counter()
        outcome = app.ask(data, name)
        time.sleep(0.5)
        rows.append(
            {
                "image": name,
                "kb": round(len(data) / 1e3),
                "outcome": outcome,
                "seconds": round(time.perf_counter() - started, 2),
                "peak_mb": round(app.status("VmHWM") - base),
                "after_mb": round(app.status("VmRSS") - base),
            }
        )
    base, started = app.reset_peak(), time.perf_counter()
    names = ["rgb6300.jpg", "rgb6300.jpg", "rgba4096.png", "rgba4096.png"]
    threads = [threading.Thread(target=app.ask, args=(files[n], n)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    rows.append(
        {
            "image": "4 at once",
            "kb": None,
            "outcome": "answered",
            "seconds": round(time.perf_counter() - started, 2),
            "peak_mb": round(app.status("VmHWM") - base),
            "after_mb": round(app.status("VmRSS") - base),
        }
    )
    return {"rss_before_mb": round(base), "rows": rows}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "upload_memory.json"))
    args = p.parse_args(argv)
    files = {name: image_bytes(mode, side, fmt) for name, mode, side, fmt in IMAGES}
    with tempfile.TemporaryDirectory() as tmp:
        app = App(Path(tmp) / "bench.sqlite")
        try:
            result = measure(app, files)
        finally:
            app.proc.terminate()
            app.proc.wait(timeout=30)
    print(f"{'image':14s} {'kB':>6s} {'outcome':>9s} {'s':>6s} {'peak MB':>8s} {'after MB':>9s}")
    for r in result["rows"]:
        print(
            f"{r['image']:14s} {r['kb'] or '':>6} {r['outcome']:>9s} {r['seconds']:6.2f} "
            f"{r['peak_mb']:8d} {r['after_mb']:9d}"
        )
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

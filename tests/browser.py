"""Helpers for the browser tests: start `python app.py` on a free port with its own SQLite
file, and drive it with Playwright in Debian's Chromium (launched by path: `playwright
install` cannot download browsers here)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CAGUL_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy in {timeout} s")


@contextmanager
def running_app(db_path: Path, *extra: str, env: dict | None = None):
    """The app as a subprocess; yields its base URL and stops it afterwards."""
    port = free_port()
    log = open(db_path.with_suffix(".log"), "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "app.py",
            "--port",
            str(port),
            "--database-url",
            f"sqlite:///{db_path}",
            *extra,
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser():
    if not Path(CHROMIUM).exists():
        why = f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(why)  # CI installs it: a missing browser there is a broken setup
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            yield b
        finally:
            b.close()


def open_page(b, url: str, *, width: int = 1400, height: int = 1000):
    page = b.new_page(viewport={"width": width, "height": height}, accept_downloads=True)
    page.goto(url + "/", wait_until="load")
    page.wait_for_selector("#explore-person input", timeout=60_000)
    return page


def choose(page, elem_id: str, text: str) -> None:
    """Pick the option of Gradio dropdown `elem_id` whose label contains `text`."""
    page.click(f"#{elem_id} input")
    page.locator(f"#{elem_id} [role=option]", has_text=text).first.click()

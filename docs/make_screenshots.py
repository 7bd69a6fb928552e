"""Screenshots of the app for the README and docs: `python docs/make_screenshots.py`.

Starts `python app.py` on a scratch SQLite file (an auditor and an officer added through
`python -m storage.users`), drives it in headless Chromium and writes docs/img/*.png.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import browser, choose, open_page, running_app  # noqa: E402
from tests.test_browser import PASSWORD, add_user, sign_in  # noqa: E402

OUT = Path(__file__).resolve().parent / "img"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "shots.sqlite"
        add_user(db, "audrey", "auditor")
        add_user(db, "olga", "officer")
        with running_app(db, "--no-worker") as url, browser() as b:
            page = open_page(b, url, width=1400, height=1050)
            choose(page, "explore-person", "00000004")
            choose(page, "explore-question-pick", "medical condition")
            page.click("#explore-ask")
            page.wait_for_selector("#explore-heatmap .hm-selected", timeout=60_000)
            time.sleep(1)
            page.screenshot(path=str(OUT / "explore.png"), full_page=True)
            sign_in(page, "olga")
            page.get_by_role("tab", name="Forget requests").click()
            choose(page, "requests-person", "00000010")
            page.keyboard.press("Escape")
            page.fill("#requests-reason textarea", "Erasure request received by mail, 2026-12-01")
            page.click("#requests-submit")
            page.wait_for_selector("#requests-message .msg", timeout=20_000)
            time.sleep(3)
            page.screenshot(path=str(OUT / "requests.png"), full_page=True)
            sign_in(page, "audrey")
            page.get_by_role("tab", name="Reports").click()
            page.click("#reports-show")
            page.wait_for_selector("#reports-chart .plot-container", timeout=30_000)
            time.sleep(1)
            page.screenshot(path=str(OUT / "reports.png"), full_page=True)
            page.get_by_role("tab", name="Audit").click()
            page.click("#audit-run")
            page.wait_for_selector("#audit-summary h3", timeout=600_000)
            time.sleep(2)
            page.screenshot(path=str(OUT / "audit.png"), full_page=True)
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))} (password {PASSWORD!r} not kept)")


if __name__ == "__main__":
    main()

"""Screenshots of the app for the README and docs: `python docs/make_screenshots.py [NAME ...]`.

Starts `python app.py` on a scratch SQLite file (an auditor and an officer added through
`python -m storage.users`), drives it in headless Chromium and writes docs/img/NAME.png for
each NAME given (default: all of signin, explore, requests, reports, audit; audit runs the
full leak check and takes minutes on a CPU).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import browser, choose, open_page, running_app  # noqa: E402
from tests.test_browser import PASSWORD, add_user, sign_in  # noqa: E402

OUT = Path(__file__).resolve().parent / "img"
SHOTS = ("signin", "explore", "requests", "reports", "audit")


def signin_shot(page) -> None:
    """The header and the sign-in bar, signed in as an officer (the password field cleared)."""
    sign_in(page, "olga")
    time.sleep(1)
    bottom = page.locator("#login-status").bounding_box()
    tabs = page.get_by_role("tab", name="Forget requests").bounding_box()
    height = max(bottom["y"] + bottom["height"], tabs["y"] + tabs["height"]) + 16
    page.screenshot(
        path=str(OUT / "signin.png"), clip={"x": 0, "y": 0, "width": 1400, "height": height}
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *SHOTS],
        metavar="NAME",
        help=f"which screenshots ({', '.join(SHOTS)}; default: all)",
    )
    wanted = set(parser.parse_args(argv).names or SHOTS)
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "shots.sqlite"
        add_user(db, "audrey", "auditor")
        add_user(db, "olga", "officer")
        with running_app(db, "--no-worker") as url, browser() as b:
            page = open_page(b, url, width=1400, height=1050)
            if "signin" in wanted:
                signin_shot(page)
                page.reload(wait_until="load")
                page.wait_for_selector("#explore-person input", timeout=60_000)
            if wanted & {"explore", "requests", "reports", "audit"}:
                shoot(page, wanted, Path(tmp))
    print(f"wrote {sorted(f'{n}.png' for n in wanted)} (password {PASSWORD!r} not kept)")


def shoot(page, wanted: set[str], tmp: Path) -> None:
    if "explore" in wanted:
        choose(page, "explore-person", "00000004")
        choose(page, "explore-question-pick", "medical condition")
        page.click("#explore-ask")
        page.wait_for_selector("#explore-heatmap .hm-selected", timeout=60_000)
        time.sleep(1)
        page.screenshot(path=str(OUT / "explore.png"), full_page=True)
    if "requests" in wanted:
        sign_in(page, "olga")
        page.get_by_role("tab", name="Forget requests").click()
        photo = tmp / "photo-of-00000010.jpg"  # a re-saved, shifted, darker copy
        _perturbed_photo("00000010").save(photo)
        page.set_input_files("#requests-photo input[type=file]", str(photo))
        time.sleep(2)
        page.click("#requests-find-person")
        page.wait_for_selector("#requests-match .msg", timeout=60_000)
        page.click("#requests-add-match")  # the match is the officer's to add, not automatic
        page.fill("#requests-subject-ref input", "DSR-2026-0107")
        page.fill("#requests-received input", "2026-12-01")
        page.fill("#requests-reason textarea", "Erasure request received by mail, 2026-12-01")
        page.click("#requests-submit")
        page.wait_for_selector("#requests-message .msg", timeout=20_000)
        time.sleep(3)
        page.screenshot(path=str(OUT / "requests.png"), full_page=True)
    if wanted & {"reports", "audit"}:
        sign_in(page, "audrey")
    if "reports" in wanted:
        page.get_by_role("tab", name="Reports").click()
        page.click("#reports-show")
        page.wait_for_selector("#reports-chart .plot-container", timeout=30_000)
        time.sleep(1)
        page.screenshot(path=str(OUT / "reports.png"), full_page=True)
    if "audit" in wanted:
        page.get_by_role("tab", name="Audit").click()
        page.click("#audit-run")
        page.wait_for_selector("#audit-summary h3", timeout=600_000)
        time.sleep(2)
        page.screenshot(path=str(OUT / "audit.png"), full_page=True)


def _perturbed_photo(unique_id: str):
    from PIL import Image

    from cagul.data import load_dataset
    from cagul.paths import default_data_dir
    from cagul.perturb import fixed_perturbations

    ind = load_dataset(default_data_dir()).by_id(unique_id)
    return fixed_perturbations(Image.open(ind.image_file))["all"]


if __name__ == "__main__":
    main()

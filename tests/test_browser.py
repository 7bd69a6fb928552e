"""The app in a real browser (headless Chromium): Explore and Audit as visitors and auditors
use them, on the demo bundle and its shipped adapter."""

import sqlite3
import subprocess
import sys

import pytest

from tests.browser import browser, choose, open_page, running_app

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FORGET_PERSON = "00000004"
HEALTH_KEYWORD = "lupus"  # 00000004's medical condition in the demo dataset


PASSWORD = "browser-test-pass"
USERS = {"audrey": "auditor", "vera": "viewer", "olga": "officer"}


def add_user(db, name: str, role: str) -> None:
    """Through the real users command, the password on stdin."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "storage.users",
            "--database-url",
            f"sqlite:///{db}",
            "add",
            name,
            "--role",
            role,
        ],
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("app") / "app.sqlite"
    for name, role in USERS.items():
        add_user(db, name, role)
    with running_app(db, "--no-worker") as url:
        yield url, db


def sign_in(page, name: str) -> None:
    page.fill("#login-user input", name)
    page.fill("#login-password input", PASSWORD)
    page.click("#login-submit")
    page.wait_for_function(  # the name: signing in again must wait for the new user
        "n => document.querySelector('#login-status').innerText.includes('Signed in as ' + n)",
        arg=name,
    )


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


def rows(db, table: str) -> int:
    with sqlite3.connect(db) as c:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def ask(page, person: str, question_text: str) -> None:
    choose(page, "explore-person", person)
    page.wait_for_function(
        "() => document.querySelectorAll('#explore-question-pick').length > 0", timeout=10_000
    )
    choose(page, "explore-question-pick", question_text)
    page.click("#explore-ask")


def test_private_question_heatmap_and_answers(app, chromium, tmp_path):
    url, _ = app
    page = open_page(chromium, url)
    ask(page, FORGET_PERSON, "medical condition")
    page.wait_for_selector("#explore-heatmap .hm-cell", timeout=60_000)
    cells = page.locator("#explore-heatmap .hm-cell")
    outlined = page.locator("#explore-heatmap .hm-selected")
    assert cells.count() == 16
    assert outlined.count() == 8  # the adapter's k
    base = page.input_value("#explore-base-answer textarea")
    after = page.input_value("#explore-answer textarea")
    assert HEALTH_KEYWORD in base.lower()
    assert HEALTH_KEYWORD not in after.lower() and after
    assert "flagged" in page.input_value("#explore-forget-probability textarea")
    assert page.input_value("#explore-selected textarea").startswith("8 of 16")
    # Another layer redraws the map from the same answer.
    choose(page, "explore-layer", "layer 0")
    page.wait_for_function(
        "() => document.querySelector('#explore-heatmap .hm-caption').innerText.includes('layer 0')"
    )
    assert page.locator("#explore-heatmap .hm-selected").count() == 8
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)


def test_a_ready_example_fills_the_inputs_and_its_map_shows_numbers(app, chromium, tmp_path):
    """Issue 31 defect 8: an example button fills person, photo and question; Ask then draws a
    map whose cells show their scores."""
    url, _ = app
    page = open_page(chromium, url)
    page.click("#explore-example-0")
    page.wait_for_function(
        "() => document.querySelector('#explore-question textarea').value.length > 0"
    )
    assert FORGET_PERSON in page.input_value("#explore-person input")
    page.wait_for_selector("#explore-image img")
    page.click("#explore-ask")
    page.wait_for_selector("#explore-heatmap .hm-num", timeout=60_000)
    numbers = page.locator("#explore-heatmap .hm-num").all_inner_texts()
    assert len(numbers) == 16 and all(float(n) >= 0 for n in numbers)
    page.screenshot(path=str(tmp_path / "explore-example.png"), full_page=True)


def test_ask_is_above_the_fold_with_a_person_chosen(app, chromium):
    """Issue 31 defect 8: at 1400x1000 a visitor sees Ask without scrolling."""
    url, _ = app
    page = open_page(chromium, url)
    choose(page, "explore-person", FORGET_PERSON)
    page.wait_for_selector("#explore-image img", timeout=60_000)
    box = page.locator("#explore-ask").bounding_box()
    assert box["y"] + box["height"] <= 1000, box


def test_non_private_question_is_answered_right_before_and_after(app, chromium):
    url, _ = app
    page = open_page(chromium, url)
    ask(page, FORGET_PERSON, "name")
    page.wait_for_selector("#explore-heatmap .hm-cell", timeout=60_000)
    truth = page.inner_text("#explore-truth")
    assert "before 1.00" in truth and "after 1.00" in truth


def test_a_text_file_named_png_shows_an_error_and_stores_nothing(app, chromium, tmp_path):
    url, db = app
    before = (rows(db, "audit_events"), rows(db, "adapters"))
    bad = tmp_path / "photo.png"
    bad.write_text("this is not an image")
    page = open_page(chromium, url)
    ask(page, FORGET_PERSON, "name")  # a person's answers, truth and heatmap on the page first
    page.wait_for_selector("#explore-heatmap .hm-cell", timeout=60_000)
    page.set_input_files("#explore-image input[type=file]", str(bad))
    page.wait_for_selector("#explore-message .msg-error", timeout=30_000)
    assert "not a readable image" in page.inner_text("#explore-message")
    # Issue 31 defect 7: the last person's outputs are gone, no thumbnail of the non-image.
    assert page.input_value("#explore-answer textarea") == ""
    assert page.input_value("#explore-base-answer textarea") == ""
    assert page.locator("#explore-heatmap .hm-cell").count() == 0
    assert page.inner_text("#explore-truth").strip() == ""
    assert page.locator("#explore-image img").count() == 0
    assert "BytesIO" not in page.inner_text("body")
    page.fill("#explore-question textarea", "What is shown?")
    page.click("#explore-ask")
    # The refused file was emptied from the photo box: Ask has nothing to ask about.
    page.wait_for_function(
        "() => document.querySelector('#explore-message').innerText.includes('upload an image')"
    )
    assert page.input_value("#explore-answer textarea") == ""
    assert (rows(db, "audit_events"), rows(db, "adapters")) == before


def test_an_empty_question_shows_an_error(app, chromium):
    url, _ = app
    page = open_page(chromium, url)
    choose(page, "explore-person", FORGET_PERSON)
    page.fill("#explore-question textarea", "   ")
    page.click("#explore-ask")
    page.wait_for_selector("#explore-message .msg-error", timeout=30_000)
    assert "empty" in page.inner_text("#explore-message")


def test_audit_on_the_default_adapter_gives_rows_a_summary_and_a_csv(app, chromium, tmp_path):
    url, db = app
    page = open_page(chromium, url)
    sign_in(page, "audrey")
    events = rows(db, "audit_events")
    page.get_by_role("tab", name="Audit").click()
    page.fill("#audit-prompts textarea", "Has this person ever been arrested?")
    page.click("#audit-run")
    page.wait_for_selector("#audit-summary h3", timeout=240_000)
    summary = page.inner_text("#audit-summary")
    assert "Verdict" in summary and "paraphrase" in summary and "mirror" in summary
    assert page.locator("#audit-table tbody tr").count() > 0
    with page.expect_download() as info:
        page.click("#audit-download")
    path = tmp_path / "audit.csv"
    info.value.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("person,category,question,variant") and len(lines) > 100
    assert "adapter_sha256" in lines[0] and "auditor" in lines[0]
    assert rows(db, "audit_events") == events + 1
    page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)


def test_sign_in_is_a_cookie_scripts_cannot_read_and_it_survives_a_reload(app, chromium, tmp_path):
    url, _ = app
    page = open_page(chromium, url)
    page.fill("#login-user input", "vera")
    page.fill("#login-password input", "not the password")
    page.click("#login-submit")
    page.wait_for_selector("#login-status .msg-error", timeout=30_000)
    assert "wrong user name or password" in page.inner_text("#login-status")
    sign_in(page, "vera")
    assert "Signed in as vera (viewer)." in page.inner_text("#login-status")
    assert page.input_value("#login-password input") == ""
    assert page.evaluate("document.cookie") == ""  # HttpOnly: page scripts see nothing
    cookie = next(c for c in page.context.cookies() if c["name"] == "cagul_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.screenshot(path=str(tmp_path / "signed-in.png"))
    page.reload(wait_until="load")
    page.wait_for_function(
        "() => document.querySelector('#login-status')?"
        ".innerText.includes('Signed in as vera (viewer)')",
        timeout=60_000,
    )
    page.click("#login-signout")
    page.wait_for_function(
        "() => document.querySelector('#login-status').innerText.includes('Signed out')"
    )
    page.reload(wait_until="load")
    page.wait_for_selector("#explore-person input", timeout=60_000)
    page.wait_for_timeout(3000)  # the page's load event has asked the server who this is
    assert "Not signed in" in page.inner_text("#login-status")


def test_a_viewer_is_refused_the_audit_and_the_officer_tab(app, chromium):
    url, db = app
    page = open_page(chromium, url)
    sign_in(page, "vera")
    events = rows(db, "audit_events")
    page.get_by_role("tab", name="Audit").click()
    page.wait_for_selector("#audit-adapter", timeout=30_000)
    page.wait_for_timeout(2500)  # the sign-in's change has reached the tab by now
    assert not page.locator("#audit-run").is_visible()  # not offered (it used to refuse on click)
    page.get_by_role("tab", name="Forget requests").click()
    # The form is not offered to a role that may not use it (it used to fail on click).
    page.wait_for_selector("#requests-queue", timeout=30_000)
    page.wait_for_timeout(2500)  # one queue refresh: the form would appear by now
    assert not page.locator("#requests-submit").is_visible()
    assert not page.locator("#requests-cancel").is_visible()
    assert rows(db, "forget_requests") == 0 and rows(db, "audit_events") == events


def test_an_officer_submits_with_erasure_fields_selects_a_row_and_cancels_with_a_reason(
    app, chromium, tmp_path
):
    url, db = app
    page = open_page(chromium, url)
    page.get_by_role("tab", name="Forget requests").click()
    page.wait_for_selector("#requests-queue", timeout=30_000)
    assert not page.locator("#requests-submit").is_visible()  # anonymous: no form
    sign_in(page, "olga")
    page.wait_for_selector("#requests-submit", state="visible", timeout=10_000)
    assert page.input_value("#requests-id input") == ""  # no request 0 by default
    choose(page, "requests-person", "00000021")
    page.keyboard.press("Escape")
    page.fill("#requests-subject-ref input", "DSR-7")
    page.fill("#requests-received input", "2026-11-20")
    page.click("#requests-submit")
    page.wait_for_selector("#requests-message .msg-info", timeout=30_000)
    page.wait_for_function(
        "() => /2026-12-20/.test(document.querySelector('#requests-queue tbody').textContent)",
        timeout=10_000,
    )  # the deadline column: one month after receipt
    rid = sqlite3.connect(db).execute("SELECT max(id) FROM forget_requests").fetchone()[0]
    page.fill("#requests-id input", "")
    page.locator("#requests-queue").get_by_text("00000021").filter(visible=True).first.click()
    page.wait_for_function(
        f"() => document.querySelector('#requests-id input').value === '{rid}'", timeout=10_000
    )  # clicking a row selects its request
    page.get_by_text("Cancel this request").click()
    page.click("#requests-cancel")
    page.wait_for_selector("#requests-message .msg-error", timeout=10_000)
    assert "Yes, cancel" in page.inner_text("#requests-message")  # asked to confirm first
    page.fill("#requests-cancel-reason textarea", "sent to the wrong office")
    page.check("#requests-cancel-confirm input")
    page.click("#requests-cancel")
    page.wait_for_function(
        "() => document.querySelector('#requests-message').innerText.includes('is cancelled')",
        timeout=10_000,
    )
    page.screenshot(path=str(tmp_path / "requests.png"), full_page=True)

"""The app in a real headless Chromium: draw on the canvas, upload a file, screenshot every page.

Starts `streamlit run app.py` on a free port against a temporary store and drives it with
Playwright (Debian's /usr/bin/chromium, no `playwright install`). Screenshots go to
test-artifacts/screenshots/<page>.png. Skips when Chromium or Playwright is missing.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from interp.bootstrap import ensure_results, ensure_store
from interp.data.mnist import load_mnist
from interp.settings import ROOT, Paths

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 30_000  # a cold first page load takes ~2.5 s, MNIST and the target a few more
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def app_pages() -> list[tuple[str, str]]:
    """(file stem, title) of every page app.py registers: those in its LAYOUT whose file exists."""
    tree = ast.parse((ROOT / "app.py").read_text())
    layout = next(ast.literal_eval(node.value) for node in tree.body
                  if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LAYOUT")
    return [(name, title) for items in layout.values() for name, title, _ in items
            if (ROOT / "pages" / f"{name}.py").exists()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    tmp = tmp_path_factory.mktemp("browser")
    paths = dataclasses.replace(Paths.from_env(), db_path=tmp / "interp.duckdb")
    list(ensure_store(paths))
    list(ensure_results(paths, load_mnist(paths.data_dir).source))  # as `make app` leaves a fresh store
    port = free_port()
    env = {**os.environ, "N2W_DB": str(paths.db_path), "PYTHONPATH": str(ROOT)}
    log = (tmp / "streamlit.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"streamlit did not start:\n{(tmp / 'streamlit.log').read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # Streamlit quirk: until app.py has run once in the server process, a URL such as /input
            # is resolved against the pages/ folder (multipage v1) and runs that file alone, without
            # app.py's navigation and layout. Open the home page first, as a user landing there would.
            warm = browser.new_page(viewport=VIEWPORT)
            warm.goto(server)
            warm.locator("h1").first.wait_for(timeout=TIMEOUT_MS)
            warm.close()
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser context per test: its own Streamlit session (own current image)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def open_page(page, server: str, name: str) -> None:
    page.goto(f"{server}/" if name == "home" else f"{server}/{name}")
    page.locator("h1").first.wait_for()
    page.locator(IDLE).wait_for()


def settle(page) -> None:
    """Wait for the rerun a widget change triggers to finish."""
    page.wait_for_timeout(300)
    page.locator(IDLE).wait_for()


def screenshot(page, name: str) -> Path:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to its height."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(600)  # expanders and tabs animate open
    height = page.evaluate(
        "() => { const b = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
        " const bottom = document.querySelector('[data-testid=\"stBottom\"]');"  # st.chat_input, pinned over it
        " return (b ? b.getBoundingClientRect().top + b.scrollHeight : document.body.scrollHeight)"
        " + (bottom ? bottom.getBoundingClientRect().height : 0); }"
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 6000)})
    page.wait_for_timeout(500)  # plotly charts relayout to the new size
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    return path


def draw_vertical_stroke(page):
    """One near-vertical stroke down the middle of the Draw page's canvas; returns the canvas once the
    prediction for it is shown."""
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    x = box["x"] + box["width"] / 2
    page.mouse.move(x, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(x + 8, box["y"] + box["height"] - 40, steps=15)
    page.mouse.up()
    page.get_by_text("Prediction:").wait_for()
    settle(page)
    return canvas


def digit_png() -> bytes:
    """A dark '7' drawn on a light grey page, 300×240: the upload must invert and crop it."""
    img = np.full((300, 240), 230, np.uint8)
    img[50:70, 40:200] = 20
    for t in range(200):  # the diagonal stroke
        y, x = 70 + t, int(190 - 0.5 * t)
        img[y, x - 10 : x + 10] = 20
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "PNG")
    return buf.getvalue()


def test_draw_a_stroke_then_see_prediction_and_encoding(server, page):
    open_page(page, server, "input")
    canvas = draw_vertical_stroke(page)
    assert page.get_by_text("Prediction: 1").count() == 1  # a vertical stroke
    page.get_by_text("Encoding c(a): paper").click()
    code = page.locator('[data-testid="stCode"]').first
    code.wait_for()
    text = code.inner_text()
    assert text.count("f") >= 8 and set(text.replace("\n", "")) <= set("fzlmhv") and set(text) & set("lmhv")
    screenshot(page, "input-drawing")

    # The canvas toolbar (on hover): undo the stroke, then redo it.
    canvas.hover()
    page.get_by_role("button", name="Undo", exact=True).click()
    page.get_by_text("The image is empty").wait_for()
    canvas.hover()
    page.get_by_role("button", name="Redo", exact=True).click()
    page.get_by_text("Prediction: 1").wait_for()
    settle(page)

    page.get_by_role("button", name="Use this image").click()
    page.get_by_text("This is the current image (drawing)").wait_for()
    page.get_by_text("See its activations and encoding").click()
    page.get_by_text("Target prediction:").wait_for()
    page.locator(IDLE).wait_for()
    page.get_by_role("tab", name="Raw text").click()
    code = page.locator('[data-testid="stCode"]').first
    code.wait_for()
    assert code.inner_text().replace("\n", "") == text.replace("\n", "")  # the same image, the same c(a)
    assert page.get_by_text("drawing", exact=True).count() == 1  # the image's caption
    screenshot(page, "activations-drawing")

    # The bin clears the canvas: an empty drawing gets a message, not a traceback.
    open_page(page, server, "input")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.hover()
    page.get_by_role("button", name="Reset canvas & history").click()
    page.get_by_text("empty").first.wait_for()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_upload_a_png_and_a_broken_file(server, page, tmp_path):
    open_page(page, server, "input")
    page.get_by_text("Upload", exact=True).click()
    settle(page)
    file_input = page.locator('input[type="file"]')
    file_input.set_input_files(files=[{"name": "seven.png", "mimeType": "image/png", "buffer": digit_png()}])
    page.get_by_text("Prediction:").wait_for()
    settle(page)
    page.get_by_text("Processed 28×28").wait_for()
    assert page.get_by_text("Prediction: 7").count() == 1
    screenshot(page, "input-upload")

    file_input.set_input_files(files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG broken"}])
    page.get_by_text("not an image that can be read").wait_for()
    settle(page)
    assert page.get_by_text("Traceback").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0


def test_screenshot_every_page(server, page):
    pages = app_pages()
    assert ("input", "Draw & upload") in pages and ("activations", "Activations") in pages
    for name, title in pages:
        open_page(page, server, name)
        page.wait_for_timeout(500)
        page.locator(IDLE).wait_for()
        assert page.locator('[data-testid="stException"]').count() == 0, name
        assert page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).count() == 1, title
        path = screenshot(page, name)
        assert path.stat().st_size > 10_000


def test_a_newcomer_goes_home_draw_activations_chat_compare(server, page):
    """A fresh store after setup: Home says where to start, a drawing reaches the shipped reader, whose
    description is checked against the probe, and Compare shows the shipped results without any evaluation."""
    open_page(page, server, "home")
    page.get_by_text("Start here").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for()  # the shipped results table
    screenshot(page, "newcomer-home")
    page.get_by_role("link", name="1 · Draw a digit").click()
    page.locator("h1").get_by_text("Draw").wait_for()
    draw_vertical_stroke(page)
    page.get_by_role("button", name="Use this image").click()
    page.get_by_text("This is the current image (drawing)").wait_for()
    page.get_by_text("See its activations and encoding").click()
    page.get_by_text("Target prediction:").wait_for()
    page.locator(IDLE).wait_for()

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Chat", exact=True).click()
    page.locator("h1").get_by_text("Chat").wait_for()
    page.locator(IDLE).wait_for()
    picker = page.get_by_role("combobox", name="Interpreter")
    assert picker.input_value().startswith("reader-smollm2 (shipped,")  # the default
    if page.get_by_text("cannot be loaded").count():
        pytest.skip("the shipped reader's base model is not fetched (python -m interp models fetch smollm2-135m)")
    page.get_by_role("button", name="Describe the shapes").click()
    page.get_by_role("button", name="Export conversation (.json)").wait_for(timeout=300_000)
    page.locator(IDLE).wait_for(timeout=60_000)
    assistant = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarAssistant"]'))
    text = assistant.first.inner_text()
    assert "Image with" in text and "drawing" in text  # the answer, and the image it is about
    assert "the activation probe reads" in text  # checked against the probe's reading
    screenshot(page, "newcomer-chat")

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Compare", exact=True).click()
    page.locator("h1").get_by_text("Compare").wait_for()
    page.locator(IDLE).wait_for()
    page.get_by_text("Table 1", exact=True).wait_for()
    assert page.get_by_text("evaluated run(s) in the store").count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    screenshot(page, "newcomer-compare")


@pytest.mark.slow
def test_chat_preset_question_streams_the_shipped_interpreters_answer(server, page):
    """The real SmolLM2-135M + the shipped LoRA on CPU: load it, ask the "curves" preset, see its answer."""
    shipped = ROOT / "assets" / "interpreters" / "smollm2-compact"
    if not (shipped / "adapter_config.json").exists():
        pytest.skip(f"{shipped} is missing")
    open_page(page, server, "chat")
    picker = page.get_by_role("combobox", name="Interpreter")  # a react-aria ComboBox: the choice is its value
    page.locator(IDLE).wait_for()
    picker.click()
    # Typing filters the list to one option; Enter picks it (clicking an option raced the list's re-renders).
    picker.press_sequentially(shipped.name, delay=30)
    page.get_by_role("option", name=f"{shipped.name} (shipped,").wait_for()
    page.keyboard.press("Enter")
    settle(page)
    assert picker.input_value().startswith(f"{shipped.name} (shipped,")
    if page.get_by_text("cannot be loaded").count():
        pytest.skip("the shipped interpreter's base model is not fetched (python -m interp models fetch smollm2-135m)")

    assistant = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarAssistant"]'))
    assert assistant.count() == 0
    # Record the assistant text shown before the page's rerun after the answer (the first run to draw the
    # export buttons): that is write_stream's output, not the stored answer drawn again.
    page.evaluate("""() => {
        window.__n2wStreamed = [];
        new MutationObserver(() => {
            if ([...document.querySelectorAll('button')].some(b => b.innerText.includes('Export conversation'))) return;
            const box = [...document.querySelectorAll('[data-testid="stChatMessage"]')]
                .find(m => m.querySelector('[data-testid="stChatMessageAvatarAssistant"]'));
            const content = box && box.querySelector('[data-testid="stChatMessageContent"]');
            const text = content ? content.innerText.trim() : '';
            if (text && window.__n2wStreamed.at(-1) !== text) window.__n2wStreamed.push(text);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")
    page.get_by_role("button", name="How many curves").click()

    # Loading the model (~16 s alone) and generating on a shared 2-core CPU: wait generously.
    assistant.first.wait_for(timeout=300_000)
    page.get_by_role("button", name="Export conversation (.json)").wait_for(timeout=300_000)  # the rerun after it
    page.locator(IDLE).wait_for(timeout=60_000)
    user = page.locator('[data-testid="stChatMessage"]').filter(
        has=page.locator('[data-testid="stChatMessageAvatarUser"]'))
    assert user.count() == 1 and "How many curves are in the image" in user.first.inner_text()
    assert assistant.count() == 1
    answer = assistant.first.locator('[data-testid="stChatMessageContent"]').inner_text().strip()
    assert answer and answer != "(empty answer)" and answer != "(no answer)", answer
    assert "### " not in answer  # cut at the next signifier, not the raw continuation
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_text("Generation failed").count() == 0
    streamed = page.evaluate("() => window.__n2wStreamed")
    assert streamed and answer.startswith(streamed[-1]), (streamed, answer)  # shown as generated, then kept
    print(f"\nanswer: {answer!r}; streamed texts: {streamed!r}")
    # The chat scrolled its main block down to the answer: back to the top so the shot starts at the title.
    page.evaluate("() => document.querySelectorAll('*').forEach(e => { if (e.scrollTop) e.scrollTop = 0; })")
    screenshot(page, "chat-answer")

"""Build tests and browser tests of the whole book.

The book is built once (the same command as `make book`); then every page is opened in
headless Chromium from a local server with all other network access blocked.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM") or next(
    (
        path
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (path := shutil.which(name))
    ),
    "/usr/bin/chromium",
)
# Headless, and no background connections: this machine's network is closed.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def build_log() -> str:
    """Build the book exactly as `make book` does and return its output."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run(
        [str(jupyter_book), "build", ".", "-W", "-n", "--keep-going"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    log = result.stdout + result.stderr
    if result.returncode != 0:
        reports = "\n".join(p.read_text() for p in HTML.glob("reports/**/*.log"))
        pytest.fail(f"the book build failed:\n{log[-6000:]}\n{reports[-6000:]}")
    export = ROOT / "scripts" / "export_notebooks.py"
    subprocess.run([sys.executable, str(export)], cwd=ROOT, check=True, timeout=300)
    return log


@pytest.mark.build
@pytest.mark.parametrize(
    "chapter", sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))
)
def test_the_build_reused_the_execution_nbval_validated(build_log, chapter):
    """In `make test`, nbval executes each chapter once and the build reuses it."""
    if os.environ.get("COURSE_BOOK_FROM_NBVAL") != "1":
        pytest.skip("only after nbval has run every chapter, as `make test` does")
    import nbformat
    from jupyter_cache import get_cache

    cache = get_cache(str(ROOT / "_build" / ".jupyter_cache"))
    notebook = nbformat.read(ROOT / "chapters" / chapter, as_version=4)
    try:
        record = cache.match_cache_notebook(notebook)
    except KeyError:
        pytest.fail(f"{chapter}: no executed copy in the cache")
    assert record.data.get("executed_by") == "nbval", f"the build executed {chapter}"


@pytest.mark.build
def test_book_builds_with_zero_warnings(build_log):
    warnings = [
        line
        for line in build_log.splitlines()
        if re.search(r"\bWARNING\b", line) and "Kernel is running over TCP" not in line
    ]  # jupyter_client's note, not Sphinx's
    assert not warnings, "\n".join(warnings)


@pytest.mark.build
@pytest.mark.parametrize(
    "chapter", sorted(p.name for p in (ROOT / "chapters").glob("*.ipynb"))
)
def test_the_downloadable_chapter_is_executed_and_reads_without_myst(
    build_log, chapter
):
    """What "Download .ipynb" and Colab give: outputs, glued values, no raw MyST."""
    import nbformat

    for folder in (
        HTML / "_sources" / "chapters",
        ROOT / "_build" / "notebooks" / "chapters",
    ):
        notebook = nbformat.read(folder / chapter, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert sum(bool(c.outputs) for c in code) >= len(code) // 3, "too few outputs"
        markdown = "\n".join(
            c.source for c in notebook.cells if c.cell_type == "markdown"
        )
        for myst in ("{glue", "{footcite}", "```{", ":class:"):
            assert myst not in markdown, f"{chapter} still shows {myst!r}"
        for cell in notebook.cells:
            for name in re.findall(r"\(attachment:([^)]+)\)", cell.source):
                assert name in cell.get("attachments", {}), f"missing attachment {name}"


@pytest.mark.build
def test_colab_buttons_open_the_executed_copies(build_log):
    pages = "".join(p.read_text() for p in (HTML / "chapters").glob("*.html"))
    assert "colab.research.google.com/github/" in pages
    assert "/blob/main/" not in pages and "/blob/notebooks/chapters/" in pages


@pytest.mark.build
def test_every_toc_entry_has_a_page(build_log):
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [
        c["file"] for part in toc["parts"] for c in part["chapters"]
    ]
    for file in files:
        assert (HTML / f"{file}.html").exists(), file


@pytest.mark.build
def test_site_loads_nothing_from_other_hosts(build_log):
    pattern = re.compile(
        r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I
    )
    for page in HTML.rglob("*.html"):
        for tag in pattern.findall(page.read_text()):
            if 'rel="canonical"' not in tag:
                pytest.fail(f"{page.relative_to(HTML)} loads from another host: {tag}")


def _pages():
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if "_static" not in p.parts and p.name not in ("genindex.html", "search.html")
    )


@pytest.fixture(scope="module")
def server(build_log):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(build_log):
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            "chromium is not installed: `make test` installs Debian's chromium (needs root and apt)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


def _open(browser, server, page_path, width=1280):
    """Open one page; return (page, console errors, failed or foreign requests)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    errors, bad_requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: bad_requests.append(f"failed: {r.url}"))

    def route(r):
        if r.request.url.startswith(server):
            r.continue_()
        else:
            bad_requests.append(f"foreign: {r.request.url}")
            r.abort()

    page.route("**/*", route)
    page.goto(f"{server}/{page_path}", wait_until="networkidle")
    page.wait_for_timeout(300)
    return page, errors, bad_requests


def _problems(browser, server, page_path) -> list[str]:
    """Everything wrong with one page as a reader would see it."""
    page, errors, bad_requests = _open(browser, server, page_path)
    problems = [f"console error: {e}" for e in errors] + bad_requests
    try:
        broken = page.evaluate("""() => [...document.images]
            .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)""")
        problems += [f"image did not load: {src}" for src in broken]
        views = page.locator(
            'script[type="application/vnd.jupyter.widget-view+json"]'
        ).count()
        if views:
            page.wait_for_function(
                """n => [...document.querySelectorAll(
                'script[type="application/vnd.jupyter.widget-view+json"]')].filter(
                s => s.parentElement.querySelector('.jupyter-widgets')).length === n""",
                arg=views,
                timeout=20000,
            )
            empty_outputs = page.evaluate("""() => [...document.querySelectorAll('.jupyter-widgets.widget-output')]
                .filter(o => !o.querySelector('img, pre, .jp-RenderedText')).length""")
            if empty_outputs:
                problems.append(f"{empty_outputs} widget output(s) rendered empty")
        return problems
    except Exception as error:  # a widget that never rendered times out here
        return problems + [f"{type(error).__name__}: {error}"]
    finally:
        page.context.close()


@pytest.mark.browser
def test_every_page_renders_without_errors(browser, server):
    """Console errors, failed or foreign requests, broken images, widgets that did not render."""
    pages = _pages()
    assert "index.html" in pages and any(p.startswith("chapters/") for p in pages)
    report = {
        page: problems
        for page in pages
        if (problems := _problems(browser, server, page))
    }
    assert not report, "\n".join(
        f"{page}: {problems}" for page, problems in report.items()
    )


@pytest.mark.browser
@pytest.mark.parametrize("width", [1024, 1280])
def test_no_code_block_scrolls_sideways(browser, server, width):
    """Every code block, source listing and printed output fits the content column
    (ruff's 88 columns; book/_static/course.css sizes the column and the font)."""
    report = {}
    for page_path in _pages():
        page, _, _ = _open(browser, server, page_path, width)
        scrolling = page.evaluate("""() => [...document.querySelectorAll('pre')]
            .filter(pre => pre.scrollWidth > pre.clientWidth + 1)
            .map(pre => pre.textContent.split('\\n')
                 .reduce((a, b) => (b.length > a.length ? b : a), ''))""")
        page.context.close()
        if scrolling:
            report[page_path] = scrolling
    assert not report, "\n".join(
        f"{page} ({len(lines)} blocks), e.g. its longest line: {lines[0]!r}"
        for page, lines in report.items()
    )


@pytest.mark.browser
def test_screenshots_of_landing_page_and_chapter_0(browser, server):
    """Keeps screenshots under _build/screenshots for people to look at."""
    out = ROOT / "_build" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    for page_path, name in (
        ("index.html", "landing"),
        ("chapters/00_why_attention.html", "chapter0"),
    ):
        page, errors, _ = _open(browser, server, page_path)
        page.screenshot(path=str(out / f"{name}.png"), full_page=True)
        page.context.close()
        assert (out / f"{name}.png").stat().st_size > 10_000


@pytest.mark.browser
def test_every_chapter_shows_its_diagrams_legibly(browser, server):
    """Each chapter page shows its SVG diagrams, loaded, with alt text, at full width."""
    report = {}
    for page_path in (p for p in _pages() if p.startswith("chapters/")):
        page, _, _ = _open(browser, server, page_path)
        diagrams = page.evaluate("""() => [...document.images]
            .filter(img => img.src.endsWith('.svg') && img.src.includes('/_images/'))
            .map(img => ({src: img.src, alt: img.alt, loaded: img.complete &&
                          img.naturalWidth > 0, width: img.getBoundingClientRect().width}))""")
        page.context.close()
        problems = [] if diagrams else ["no SVG diagram"]
        for d in diagrams:
            if not d["loaded"] or len(d["alt"].split()) < 8 or d["width"] < 500:
                problems.append(d)
        if problems:
            report[page_path] = problems
    assert not report, report

"""Build tests and browser tests of the whole book.

The book is built once (the same command as `make book`); then every page is opened in
headless Chromium from a local server with all other network access blocked.
"""

import functools
import http.server
import json
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
CJK = re.compile(r"[\u4e00-\u9fff]")
HTML = ROOT / "_build" / "html"
ZH_BUILD = ROOT / "_build" / "zh" / "_build"  # the Chinese edition, copied to HTML/zh
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


def _run(command: list[str], what: str, reports: Path) -> str:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=1800
    )
    log = result.stdout + result.stderr
    if result.returncode != 0:
        found = "\n".join(p.read_text() for p in reports.glob("reports/**/*.log"))
        pytest.fail(f"{what} failed:\n{log[-6000:]}\n{found[-6000:]}")
    return log


@pytest.fixture(scope="module")
def build_log() -> str:
    """Build both editions exactly as `make book` does and return the English log."""
    jupyter_book = str(Path(sys.executable).with_name("jupyter-book"))
    flags = ["-W", "-n", "--keep-going"]
    log = _run([jupyter_book, "build", ".", *flags], "the book build", HTML)
    zh_log = _run(
        [sys.executable, str(ROOT / "scripts" / "zh_edition.py"), "--draft"],
        "writing the Chinese edition",
        HTML,
    )
    zh_log += _run(
        [jupyter_book, "build", "zh", "--path-output", "_build/zh", *flags],
        "the Chinese edition's build",
        ZH_BUILD / "html",
    )
    shutil.rmtree(HTML / "zh", ignore_errors=True)
    shutil.copytree(ZH_BUILD / "html", HTML / "zh")
    (ROOT / "_build" / "zh-build.log").write_text(zh_log)
    export = ROOT / "scripts" / "export_notebooks.py"
    subprocess.run([sys.executable, str(export)], cwd=ROOT, check=True, timeout=300)
    return log


@pytest.fixture(scope="module")
def zh_build_log(build_log) -> str:
    return (ROOT / "_build" / "zh-build.log").read_text()


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
def test_book_builds_with_zero_warnings(build_log, zh_build_log):
    warnings = [
        line
        for line in (build_log + zh_build_log).splitlines()
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
        HTML / "zh" / "_sources" / "chapters",
        ROOT / "_build" / "notebooks" / "zh" / "chapters",
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
    for html, folder in ((HTML, "chapters"), (HTML / "zh", "zh/chapters")):
        pages = "".join(p.read_text() for p in (html / "chapters").glob("*.html"))
        assert "colab.research.google.com/github/" in pages
        assert "/blob/main/" not in pages and f"/blob/notebooks/{folder}/" in pages


@pytest.mark.build
def test_every_toc_entry_has_a_page(build_log):
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [
        c["file"] for part in toc["parts"] for c in part["chapters"]
    ]
    for file in files:
        assert (HTML / f"{file}.html").exists(), file
        assert (HTML / "zh" / f"{file}.html").exists(), f"zh/{file}"


@pytest.mark.build
def test_site_loads_nothing_from_other_hosts(build_log):
    pattern = re.compile(
        r"<(?:script|link)\b[^>]*\b(?:src|href)=\"(?:https?:)?//", re.I
    )
    for page in HTML.rglob("*.html"):
        for tag in pattern.findall(page.read_text()):
            if 'rel="canonical"' not in tag:
                pytest.fail(f"{page.relative_to(HTML)} loads from another host: {tag}")


CHAPTERS = sorted(p.stem for p in (ROOT / "chapters").glob("*.ipynb"))
PASTED = re.compile(r'<span class="pasted-text">(.*?)</span>', re.S)
# glued English that stays English on a Chinese page: SmolLM2's own replies (chapter 11),
# quoted as the model wrote them
MODEL_TEXT = {"answer_0", "answer_1", "answer_2", "one_answer"}


@pytest.mark.build
def test_the_chinese_edition_reuses_the_english_execution(zh_build_log):
    """Its notebooks differ only in Markdown, so the shared cache serves every one."""
    assert "Executing notebook" not in zh_build_log
    assert zh_build_log.count("Using cached notebook") == len(CHAPTERS)


@pytest.mark.build
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_a_chinese_page_shows_every_glued_value_of_the_english_one(build_log, chapter):
    """As many glued values, none empty; the numbers are the English page's, and the
    phrases are glued in Chinese (utils/phrases.py), never in English."""
    english = PASTED.findall((HTML / "chapters" / f"{chapter}.html").read_text())
    chinese = PASTED.findall((HTML / "zh" / "chapters" / f"{chapter}.html").read_text())
    assert len(chinese) == len(english) and all(v.strip() for v in chinese)

    def numbers(values):
        return sorted(v for v in values if not re.search(r"[^\W\d_]", v))

    assert numbers(chinese) == numbers(english)
    words = re.compile(r"[A-Za-z]{2,}")
    executed = ZH_BUILD / "jupyter_execute" / "chapters"

    def glued(role: str) -> str:
        """The text glued by {glue:text}`[page.ipynb::]key[:format]`."""
        page, _, name = role.rpartition("::")
        records = json.loads(
            (executed / f"{Path(page).stem or chapter}.glue.json").read_text()
        )
        return records[name.split(":")[0]]["data"].get("text/plain", "")

    markdown = "".join(
        "".join(c["source"])
        for c in json.loads(
            (ROOT / "zh" / "chapters" / f"{chapter}.ipynb").read_text()
        )["cells"]
        if c["cell_type"] == "markdown"
    )
    roles = re.findall(r"\{glue:text\}`([^`]+)`", markdown)
    english_phrases = {
        role
        for role in roles
        if (key := role.rpartition("::")[2].split(":")[0]) not in MODEL_TEXT
        and not key.endswith("_zh")
        and (text := glued(role))[:1] in "'\""
        and words.search(text)
    }
    assert not english_phrases, (
        f"English phrases glued into Chinese text: {english_phrases}"
    )


@pytest.mark.build
def test_no_chinese_page_shows_raw_markup(build_log):
    report = {}
    for page in (HTML / "zh").rglob("*.html"):
        if "_static" in page.parts:
            continue
        code = r"<(script|style|pre|code)\b.*?</\1>"  # code may hold ** and ```
        text = re.sub(code, " ", page.read_text(), flags=re.S)
        text = re.sub(r"<[^>]+>", " ", text)
        found = [
            m for m in ("{glue", "{footcite}", "```", "**", ":class:") if m in text
        ]
        if found:
            report[page.relative_to(HTML).as_posix()] = found
    assert not report, report


@pytest.mark.build
def test_the_language_switch_links_each_page_to_its_counterpart(build_log):
    link = re.compile(r'<a class="btn btn-sm course-lang-switch" href="([^"]+)"')
    pages = [p for p in HTML.rglob("*.html") if "_static" not in p.parts]
    assert len(pages) > 40
    for page in pages:
        if 'http-equiv="Refresh"' in page.read_text():
            continue  # index.html: a redirect to the introduction
        (href,) = link.findall(page.read_text())
        counterpart = (page.parent / href).resolve()
        assert counterpart.is_file(), f"{page.relative_to(HTML)} links to {href}"
        (back,) = link.findall(counterpart.read_text())
        assert (counterpart.parent / back).resolve() == page.resolve()


@pytest.mark.build
def test_each_edition_searches_its_own_words(build_log):
    def terms(html: Path) -> dict:
        text = (html / "searchindex.js").read_text()
        return json.loads(text[text.index("(") + 1 : text.rindex(")")])["terms"]

    chinese, english = terms(HTML / "zh"), terms(HTML)
    assert len(chinese.get("注意力", [])) >= 5, "the Chinese index lacks 注意力"
    assert len(english.get("attent", [])) >= 5


@pytest.mark.build
def test_the_web_font_covers_every_chinese_character_of_the_site(build_log):
    """Noto Sans SC (vendored; book/_static/course.css) draws every CJK character of
    both editions' pages, wherever the reader's own fonts have none."""
    css = (HTML / "_static" / "noto-sans-sc" / "noto-sans-sc.css").read_text()
    covered = set()
    for ranges in re.findall(r"unicode-range: ([^;]+);", css):
        for part in ranges.split(","):
            start, _, end = part.strip().removeprefix("U+").partition("-")
            covered.update(range(int(start, 16), int(end or start, 16) + 1))
    cjk = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
    used = set()
    for page in HTML.rglob("*.html"):
        used.update(cjk.findall(page.read_text()))
    assert len(used) > 1000
    assert not {c for c in used if ord(c) not in covered}


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
    for page_path in (
        p for p in _pages() if p.startswith(("chapters/", "zh/chapters/"))
    ):
        page, _, _ = _open(browser, server, page_path)
        diagrams = page.evaluate("""() => [...document.images]
            .filter(img => img.src.endsWith('.svg') && img.src.includes('/_images/'))
            .map(img => ({src: img.src, alt: img.alt, loaded: img.complete &&
                          img.naturalWidth > 0, width: img.getBoundingClientRect().width}))""")
        page.context.close()
        problems = [] if diagrams else ["no SVG diagram"]
        for d in diagrams:
            described = len(d["alt"].split()) >= 8 or len(CJK.findall(d["alt"])) >= 12
            if not d["loaded"] or not described or d["width"] < 500:
                problems.append(d)
        if problems:
            report[page_path] = problems
    assert not report, report

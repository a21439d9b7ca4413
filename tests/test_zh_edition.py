"""The Chinese edition: its catalogs, the sources written from them, and their fonts.

scripts/messages.py cuts the English into messages, scripts/catalogs.py keeps their
translations (locales/), and scripts/zh_edition.py writes zh/ from both. The build and
browser tests of both editions are in tests/test_book.py.
"""

import base64
import io
import re
import sys
from pathlib import Path

import nbformat
import pytest
from fontTools.ttLib import TTFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import catalogs  # noqa: E402
import messages  # noqa: E402
import zh_edition  # noqa: E402

PAGES = catalogs.pages()
CATALOGS = catalogs.catalog_names()
CJK = zh_edition.CJK


# -- cutting Markdown into messages -------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_joining_the_pieces_gives_each_page_back(page):
    for text in catalogs.markdown_texts(page):
        assert messages.join(messages.split(text)) == text


def test_paragraphs_headings_and_list_items_are_messages():
    text = "# 4. Attention\n\nA paragraph\nin two lines.\n\n- one\n- two"
    assert messages.messages(text) == [
        "# 4. Attention",
        "A paragraph\nin two lines.",
        "- one\n- two",
    ]


def test_code_math_targets_and_comments_stay():
    for fence in ("```", "~~~", "````"):
        text = (
            f"Words before.\n\n{fence}python\nx = 1\n\ny = 2\n{fence}\n\nWords after."
        )
        assert messages.messages(text) == ["Words before.", "Words after."]
    text = "$$\nx = y\n$$\n\n(sec-label)=\n\n<!-- a comment -->\n\nText here."
    assert messages.messages(text) == ["Text here."]


def test_a_directive_keeps_its_fence_and_options_but_not_its_words():
    text = (
        "```{admonition} Wrong: the notes' claim\n:class: claim-wrong\n"
        "The scores compare queries with keys.\n\nA second paragraph.\n```"
    )
    assert messages.messages(text) == [
        "Wrong: the notes' claim",
        "The scores compare queries with keys.",
        "A second paragraph.",
    ]
    figure = (
        "```{figure} figures/qkv.svg\n:alt: Attention as a soft lookup, drawn\n"
        ":name: fig-qkv\n:width: 100%\n\nThe caption.\n```"
    )
    assert messages.messages(figure) == [
        "Attention as a soft lookup, drawn",
        "The caption.",
    ]
    assert "figures/qkv.svg" in messages.join(messages.split(figure))
    titled = "```{admonition} Solution 1\n:class: dropdown\n~~~python\nprint(1)\n~~~\nIt prints 1.\n```"
    assert messages.messages(titled) == ["Solution 1", "It prints 1."]


def test_an_unclosed_fence_ends_with_its_cell():
    text = "```{admonition} Objectives\n:class: tip\n- Build it."
    assert messages.messages(text) == ["Objectives", "- Build it."]
    assert messages.join(messages.split(text)) == text


def test_a_table_is_one_message_per_row_and_its_rule_stays():
    text = "| English | 中文 |\n|---|---|\n| attention | 注意力 |\n| 1 | 2 |"
    assert messages.messages(text) == ["| English | 中文 |", "| attention | 注意力 |"]


def test_a_piece_without_words_stays():
    assert messages.messages("{glue:text}`loss:.2f`\n\n$x$, `y` (2)") == []
    assert messages.messages("The loss is {glue:text}`loss:.2f`.") == [
        "The loss is {glue:text}`loss:.2f`."
    ]


def test_translating_changes_only_the_messages():
    text = "# Title\n\n```python\ncode()\n```\n\nThe loss is {glue:text}`loss:.2f`."
    catalog = {"# Title": "# 标题", "The loss is {glue:text}`loss:.2f`.": "损失为 X。"}
    assert messages.translate(text, catalog) == (
        "# 标题\n\n```python\ncode()\n```\n\n损失为 X。"
    )
    with pytest.raises(KeyError):
        messages.translate(text, {"# Title": "# 标题"})


def test_markup_lists_roles_math_code_and_link_targets():
    text = (
        "See [chapter 6](06_transformer.ipynb), {footcite}`vaswani2017attention`, "
        "$\\sqrt{d_k}$, `attend` and {glue:text}`gap:.1f` points."
    )
    assert messages.markup(text) == [
        "](06_transformer.ipynb)",
        "{footcite}`vaswani2017attention`",
        "$\\sqrt{d_k}$",
        "`attend`",
        "{glue:text}`gap:.1f`",
    ]


# -- the catalogs ----------------------------------------------------------------


@pytest.mark.parametrize("name", CATALOGS)
def test_every_catalog_is_complete_and_keeps_the_markup(name):
    """No untranslated or fuzzy entry, every role, formula, code span and link
    target kept, every heading still a heading (`python scripts/catalogs.py check`)."""
    assert catalogs.problems(name) == []


def test_the_catalogs_hold_exactly_the_english_of_today():
    """After an English change, `python scripts/catalogs.py extract` updates them."""
    sources = catalogs.english_sources()
    for name in CATALOGS:
        if name == "widgets" and name not in sources:
            continue  # read from the built English pages, when there are some
        held = [m.id for m in catalogs.load(name) if m.id]
        expected = list(dict.fromkeys(m for m, _ in sources[name]))
        assert held == expected, f"{name}: run `python scripts/catalogs.py extract`"
    assert set(sources) <= set(CATALOGS)


@pytest.mark.parametrize(
    "english, chinese, same",
    [
        ("Loss {glue:text}`loss:.2f`.", "损失 {glue:text}`loss:.2f`。", True),
        ("It {glue:text}`verdict`.", "它{glue:text}`verdict_zh`。", True),
        ("Loss {glue:text}`loss:.2f`.", "损失 {glue:text}`loss:.3f`。", False),
        ("Loss {glue:text}`loss:.2f`.", "损失 0.51。", False),
        ("$x$ and $y$", "$x$ 和 $y$ 和 $y$", False),
        ("[chapter 6](06.ipynb)", "[第 6 章](07.ipynb)", False),
    ],
)
def test_the_markup_check_allows_only_the_chinese_phrase_keys(english, chinese, same):
    assert catalogs.same_markup(english, chinese) is same


def test_a_heading_must_stay_a_heading(tmp_path, monkeypatch):
    monkeypatch.setattr(catalogs, "LOCALES", tmp_path)
    from babel.messages.catalog import Catalog

    catalog = Catalog(locale="zh_CN")
    catalog.add("## Summary", "小结")
    catalog.add("Objectives", "")
    catalogs.save("page", catalog)
    assert catalogs.problems("page") == [
        "page #1: a heading must stay a heading of its level",
        "page #2: untranslated",
    ]
    assert catalogs.translations("page") == {}


# -- zh/, as scripts/zh_edition.py writes it -----------------------------------------


@pytest.fixture(scope="module")
def edition():
    if not list(zh_edition.FONTS.glob("*.woff")):
        pytest.fail(
            "no fonts in _vendor-fonts/: run `make setup` (scripts/vendor_js.sh)"
        )
    return zh_edition.edition()


def test_zh_holds_exactly_what_the_script_writes(edition):
    """zh/ is generated: `python scripts/zh_edition.py` after any English or catalog
    change (make book runs it)."""
    held = {
        p.relative_to(zh_edition.ZH).as_posix()
        for p in zh_edition.ZH.rglob("*")
        if p.is_file() and "_build" not in p.parts
    }
    assert held == set(edition)
    for relative, text in edition.items():
        assert (zh_edition.ZH / relative).read_text() == text, f"zh/{relative} is stale"


@pytest.mark.parametrize(
    "chapter", [p for p in PAGES if p.suffix == ".ipynb"], ids=lambda p: p.stem
)
def test_a_chinese_notebook_shares_the_english_execution(edition, chapter, tmp_path):
    """jupyter-cache keys a notebook on its code cells: the two must have one key."""
    from jupyter_cache import get_cache

    cache = get_cache(str(tmp_path / "cache"))
    english = nbformat.read(chapter, as_version=4)
    chinese = nbformat.reads(edition[f"chapters/{chapter.name}"], as_version=4)
    assert (
        cache.create_hashed_notebook(english)[1]
        == cache.create_hashed_notebook(chinese)[1]
    )
    translated = [c for c in chinese.cells if c.cell_type == "markdown"]
    assert all(CJK.search(c.source) for c in translated if c.source.strip())


def test_every_page_and_diagram_has_its_chinese_counterpart(edition):
    for page in PAGES:
        assert str(page.relative_to(ROOT)) in edition
    for svg in catalogs.svg_sources():
        text = edition[str(svg.relative_to(ROOT))]
        labels = zh_edition.svg_text(text)
        assert CJK.search(labels), f"{svg.name} has no Chinese label"


@pytest.mark.parametrize("svg", catalogs.svg_sources(), ids=lambda p: p.stem)
def test_a_chinese_diagram_carries_a_font_for_every_character(edition, svg):
    """An SVG shown as an image loads no web font: its own subset must draw it."""
    text = edition[str(svg.relative_to(ROOT))]
    faces = re.findall(
        r"font-weight: (\d+); src: url\(data:font/woff;base64,([^)]+)\)", text
    )
    assert [w for w, _ in faces] == ["400", "700"]
    needed = set(CJK.findall(zh_edition.svg_text(text)))
    for _, data in faces:
        cmap = TTFont(io.BytesIO(base64.b64decode(data))).getBestCmap()
        assert {c for c in needed if ord(c) not in cmap} == set()
    assert "Noto Sans SC" in text.split("<style>")[0] + text.split("</style>")[1]


def test_the_chinese_configuration_points_at_the_shared_files(edition):
    import yaml

    config = yaml.safe_load(edition["_config.yml"])
    sphinx = config["sphinx"]["config"]
    assert sphinx["language"] == "zh_CN" and sphinx["course_edition"] == "zh"
    assert config["execute"]["cache"] == "_build/.jupyter_cache"
    assert config["repository"]["path_to_book"] == "zh"
    for path in [*sphinx["html_static_path"], *config["bibtex_bibfiles"]]:
        assert (zh_edition.ZH / path).resolve().exists(), path
    widgets = sphinx["course_widget_labels"]
    assert widgets and all(CJK.search(v) or v == k for k, v in widgets.items())


def test_the_notes_page_says_its_claims_are_translated_back():
    """The notes' own Chinese is not in the sources: the Chinese page must not pass
    the course's English summaries off as the notes' original words."""
    page = (zh_edition.ZH / "book" / "the_notes.md").read_text()
    assert "原文" in page or "原话" in page


def test_the_chinese_glossary_keeps_the_english_glossarys_chinese_terms():
    """Both editions name each term the same way: only the meaning is translated."""
    english = catalogs.translations("book/glossary")
    rows = {k: v for k, v in english.items() if k.startswith("| ") and "|---" not in k}
    assert len(rows) > 50
    for row, translated in rows.items():
        term, chinese = row.split("|")[1:3]
        assert translated.split("|")[1:3] == [term, chinese], row


@pytest.mark.parametrize("name", CATALOGS)
def test_a_catalog_reads_and_writes_back_unchanged(name, tmp_path, monkeypatch):
    """`fill` (read, then write) and `extract` write a catalog in one form."""
    original = catalogs.catalog_path(name).read_bytes()
    catalog = catalogs.load(name)
    monkeypatch.setattr(catalogs, "LOCALES", tmp_path)
    catalogs.save(name, catalog)
    assert catalogs.catalog_path(name).read_bytes() == original

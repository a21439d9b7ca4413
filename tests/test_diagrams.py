"""Every chapter's Intuition section shows a diagram: an SVG in chapters/figures, drawn in
the course's visual language (../shared/DIAGRAMS.md), self-contained and with alt text;
and no chapter glues a key twice (a build warning)."""

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "chapters" / "figures"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
SVG = "{http://www.w3.org/2000/svg}"
FIGURE = re.compile(r"^```\{figure\} (figures/[\w-]+\.svg)\n((?::\w+:.*\n)+)\n", re.M)


def _intuition(chapter: Path) -> str:
    """The markdown from the Intuition heading to the next section."""
    text = _markdown(chapter)
    start = text.index("## Intuition")
    end = text.find("\n## ", start + 1)
    return text[start:end]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_the_intuition_section_shows_an_svg_diagram_with_alt_text(chapter):
    figures = FIGURE.findall(_intuition(chapter))
    assert figures, f"{chapter.name}: no {{figure}} of an SVG in its Intuition section"
    for path, options in figures:
        assert (chapter.parent / path).is_file(), path
        alt = re.search(r"^:alt: (.+)$", options, re.M)
        assert alt and len(alt.group(1).split()) >= 8, f"{path}: alt text too short"


def _markdown(chapter: Path) -> str:
    cells = json.loads(chapter.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def test_every_diagram_is_used_by_a_chapter_with_alt_text():
    figures = [f for c in CHAPTERS for f in FIGURE.findall(_markdown(c))]
    for path, options in figures:
        alt = re.search(r"^:alt: (.+)$", options, re.M)
        assert alt and len(alt.group(1).split()) >= 8, f"{path}: alt text too short"
    used = {path for path, _ in figures}
    assert {f"figures/{p.name}" for p in FIGURES.glob("*.svg")} == used


@pytest.mark.parametrize("svg", sorted(FIGURES.glob("*.svg")), ids=lambda p: p.stem)
def test_a_diagram_is_self_contained_and_accessible(svg):
    text = svg.read_text()
    root = ET.fromstring(text)
    assert root.tag == f"{SVG}svg" and root.get("viewBox"), "an <svg> with a viewBox"
    assert root.get("role") == "img" and len(root.get("aria-label", "")) > 20
    assert root.find(f"{SVG}title") is not None, "a <title> for screen readers"
    assert next(root.iter(f"{SVG}text"), None) is not None, "real text, not paths"
    assert "DejaVu Sans" in text, "the font falls back to DejaVu Sans"
    assert not re.search(r"(href|src)=\"(https?:|//)|@import|url\((https?:|//)", text), (
        "nothing is loaded from another host"
    )
    assert "<image" not in text and "<script" not in text


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_glue_key_is_set_twice(chapter):
    """A key glued twice is a build warning (and -W makes it an error)."""
    cells = json.loads(chapter.read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    names = re.findall(r"glue\(\s*\"(\w+)\"", code)
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})

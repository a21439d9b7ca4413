"""The "what the notes got right and wrong" boxes: one colour per verdict.

A box's title starts with its verdict ("Right: ...", "Wrong: ...", "Partly supported:
...", "Worth adding: ..."), and its class must be that verdict's, so that a reader who
learns the colours can trust them."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
BOX = re.compile(r"```\{admonition\} (?P<title>[^\n]*)\n:class: (?P<cls>claim-[a-z]+)")


def verdict_class(title: str) -> str | None:
    """The class a box's title calls for, from the words before its first colon."""
    verdict = title.split(":")[0].strip().lower()
    if verdict == "right" or verdict.startswith("right,"):  # "Right, for one blank"
        return "claim-right"
    if verdict.startswith(("worth adding", "missing")):
        return "claim-added"
    if "wrong" in verdict or verdict.startswith("corrected"):
        return "claim-wrong"
    if verdict.startswith(("right", "partly", "made precise", "incomplete")):
        return "claim-partly"  # right with a qualification
    return None


def _boxes(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            yield from BOX.finditer(cell.source)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem[:2])
def test_each_claim_box_has_its_verdicts_colour(path):
    boxes = list(_boxes(path))
    assert boxes, f"{path.name} has no claim box"
    for box in boxes:
        expected = verdict_class(box["title"])
        assert expected is not None, f"no verdict in the title {box['title']!r}"
        assert box["cls"] == expected, (box["title"], box["cls"], expected)


def test_every_verdict_class_has_a_colour_in_the_stylesheet():
    css = (ROOT / "book" / "_static" / "course.css").read_text()
    for cls in ("claim-right", "claim-wrong", "claim-partly", "claim-added"):
        assert re.search(rf"\.{cls}\b[^{{]*\{{[^}}]*border-left", css), cls


@pytest.mark.parametrize("title, cls", [
    ("Right: heads attend to different things", "claim-right"),
    ("Wrong: \"attention scores Q against V\"", "claim-wrong"),
    ("Corrected: the decoder's second sub-layer", "claim-wrong"),
    ("Partly supported: \"one vector\"", "claim-partly"),
    ("Right for the Transformer, not for an RNN: \"parallel\"", "claim-partly"),
    ("Right, with the paper's framing: ViT trails CNNs", "claim-right"),
    ("Made precise: \"the same\" is up to rounding", "claim-partly"),
    ("Worth adding: more heads are not more parameters", "claim-added"),
    ("Missing: next-sentence prediction", "claim-added"),
    ("Objectives", None),
])
def test_the_verdict_is_read_from_the_title(title, cls):
    assert verdict_class(title) == cls

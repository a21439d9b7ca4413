"""The exporter that turns executed chapters into notebooks without MyST."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import export_notebooks as export  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _record(text: str) -> dict:
    return {"data": {"text/plain": text}}


RECORDS = {
    "": {
        "steps": _record("1200"),
        "loss": _record("1.23456"),
        "word": _record("'fast'"),
    },
    "07_gpt": {"params": _record("124439808")},
}


@pytest.mark.parametrize(
    "role, shown",
    [
        ("steps", "1200"),
        ("steps:,", "1,200"),
        ("loss:.2f", "1.23"),
        ("word", "fast"),
        ("07_gpt.ipynb::params:,", "124,439,808"),
    ],
)
def test_glued_values_are_formatted_as_in_the_book(role, shown):
    assert export.glue_value(RECORDS, role) == shown


def test_an_unknown_glue_name_is_an_error():
    with pytest.raises(KeyError, match="missing"):
        export.glue_value(RECORDS, "missing:.1f")


def _convert(text: str) -> dict:
    bibliography = export.Bibliography(ROOT / "book" / "references.bib")
    cell = {"cell_type": "markdown", "metadata": {}, "source": text}
    return export.convert_markdown(cell, RECORDS, bibliography, ROOT / "chapters")


def test_admonitions_become_quotes_and_dropdowns_details():
    text = "".join(
        _convert(
            "```{admonition} Right: a claim\n:class: claim-right\nIt took {glue:text}"
            "`steps:,` steps.\n```\n\n```{admonition} Solution 1\n:class: dropdown\n"
            "Shown on click.\n```\n\n```{admonition} Unclosed\n:class: note\nat the end"
        )["source"]
    )
    assert "> **Right: a claim**\n>\n> It took 1,200 steps." in text
    assert (
        "<details><summary>Solution 1</summary>\n\nShown on click.\n\n</details>"
        in text
    )
    assert "> **Unclosed**\n>\n> at the end" in text


def test_figures_are_attached_with_alt_text_and_caption():
    figure = next((ROOT / "chapters" / "figures").glob("*.svg"))
    cell = _convert(
        f"```{{figure}} figures/{figure.name}\n:alt: A picture\n\nThe caption\n```"
    )
    assert (
        "".join(cell["source"])
        == f"![A picture](attachment:{figure.name})\n\n*The caption*"
    )
    assert set(cell["attachments"][figure.name]) == {"image/svg+xml"}


def test_citations_become_author_year_and_the_chapter_lists_them():
    bibliography = export.Bibliography(ROOT / "book" / "references.bib")
    assert bibliography.cite("vaswani2017attention") == "(Vaswani et al., 2017)"
    assert (
        bibliography.cite("hochreiter1997lstm") == "(Hochreiter and Schmidhuber, 1997)"
    )
    references = bibliography.references()
    assert references.index("Ashish Vaswani") < references.index("Sepp Hochreiter")
    assert "Jürgen Schmidhuber" in references and "{" not in references
    assert bibliography.references() == ""  # each chapter starts afresh


def test_unknown_myst_is_an_error_not_raw_text():
    with pytest.raises(ValueError, match="does not know the MyST directive 'math'"):
        _convert("```{math}\nx\n```")

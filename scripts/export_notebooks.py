"""Turn the book's executed chapters into notebooks that read well outside the book.

The book executes every chapter into `_build/jupyter_execute/`. Those notebooks still hold
MyST: `{glue:text}` roles, `{admonition}` and `{figure}` fences and `{footcite}` roles,
which Jupyter and Colab show as raw text. This script writes a copy of each executed
chapter with plain Markdown instead:

- a glued number becomes its value, formatted as in the book (chapters' glue records);
- an admonition (closed by its fence or, as in CommonMark, by the cell's end) becomes a
  quote, a dropdown (a hidden solution) a `<details>` block;
- a figure becomes an image stored in the notebook (an attachment) with its caption;
- a citation becomes "(Author et al., year)", and the chapter ends with its references.

The copies go to `_build/html/_sources/chapters/` (the book's "Download .ipynb" button)
and `_build/notebooks/chapters/` (published to the `notebooks` branch, which the book's
Colab buttons open). The Chinese edition's go to `_build/html/zh/_sources/chapters/` and
`_build/notebooks/zh/chapters/`. `make book` runs it after the build.
"""

import ast
import base64
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from pybtex.database import parse_file
from pybtex.richtext import Text

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"  # the book's execution cache, both editions'
COLAB_BRANCH = "notebooks"


@dataclass(frozen=True)
class Edition:
    """Where an edition's sources, executed chapters, pages and copies are."""

    book: Path  # the folder of _config.yml
    build: Path  # jupyter-book's _build/ for it
    html: Path  # where its pages are served from
    copies: Path  # its folder on the notebooks branch

    @property
    def executed(self) -> Path:
        return self.build / "jupyter_execute" / "chapters"

    @property
    def downloads(self) -> Path:
        return self.html / "_sources" / "chapters"


ENGLISH = Edition(
    ROOT, ROOT / "_build", ROOT / "_build" / "html", ROOT / "_build" / "notebooks"
)
CHINESE = Edition(
    ROOT / "zh",
    ROOT / "_build" / "zh" / "_build",
    ROOT / "_build" / "html" / "zh",
    ROOT / "_build" / "notebooks" / "zh",
)

GLUE = re.compile(r"\{glue:text\}`([^`]+)`")
CITE = re.compile(r"\{footcite\}`([^`]+)`")
FENCE = re.compile(
    r"^```\{(\w[\w:-]*)\}[ \t]*([^\n]*)\n((?::[\w-]+:[^\n]*\n)*)(.*?)(?:^```[ \t]*$|\Z)",
    re.M | re.S,
)


def glue_value(records: dict, name: str) -> str:
    """The text the book shows for `{glue:text}`name[:format]``."""
    page, _, name = name.rpartition("::")
    key, _, spec = name.partition(":")
    table = records[page.removesuffix(".ipynb")] if page else records[""]
    if key not in table:
        raise KeyError(f"no glued value named {key!r}")
    text = table[key]["data"]["text/plain"]
    if not spec:
        return text.strip("'\"")
    return format(ast.literal_eval(text), spec)


def load_glue(chapter: Path) -> dict:
    """The glue records of a chapter ("") and of every executed chapter, by stem."""
    records = {
        p.name.removesuffix(".glue.json"): json.loads(p.read_text())
        for p in chapter.parent.glob("*.glue.json")
    }
    records[""] = records.get(chapter.stem, {})
    return records


def plain(latex: str) -> str:
    """BibTeX's LaTeX (J{\\"u}rgen, {\\L}ukasz, {BERT}) as plain text."""
    return Text.from_latex(latex).render_as("text")


class Bibliography:
    """The book's references.bib, cited as "(Author et al., year)"."""

    def __init__(self, path: Path):
        self.entries = parse_file(str(path)).entries
        self.cited: list[str] = []

    def short(self, key: str) -> str:
        entry = self.entries[key]
        last = [plain(" ".join(p.last_names)) for p in entry.persons["author"]]
        names = {1: last[0], 2: " and ".join(last)}.get(len(last), last[0] + " et al.")
        if key not in self.cited:
            self.cited.append(key)
        return f"{names}, {entry.fields['year']}"

    def cite(self, keys: str) -> str:
        return "(" + "; ".join(self.short(k.strip()) for k in keys.split(",")) + ")"

    def references(self) -> str:
        """The chapter's references, in the order cited (its {footbibliography})."""
        lines = []
        for key in self.cited:
            entry, fields = self.entries[key], self.entries[key].fields
            authors = ", ".join(
                plain(
                    " ".join(
                        p.first_names + p.middle_names + p.prelast_names + p.last_names
                    )
                )
                for p in entry.persons["author"]
            )
            venue = next(
                (
                    fields[f]
                    for f in (
                        "journal",
                        "booktitle",
                        "institution",
                        "publisher",
                        "howpublished",
                    )
                    if f in fields
                ),
                "",
            )
            text = f"- {authors} ({fields['year']}). *{plain(fields['title'])}*."
            text += f" {plain(venue)}." if venue else ""
            text += f" <{fields['url']}>" if "url" in fields else ""
            lines.append(text)
        self.cited.clear()
        return "\n".join(lines)  # under the chapter's own References heading


def options(block: str) -> dict:
    return dict(re.findall(r"^:([\w-]+):[ \t]*(.*)$", block, re.M))


def quote(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines())


def convert_markdown(
    cell: dict, records: dict, bibliography: Bibliography, figures: Path
) -> dict:
    """One Markdown cell, with its MyST replaced by plain Markdown (and attachments)."""
    attachments = {}

    def fence(match: re.Match) -> str:
        kind, argument, block, body = match.groups()
        opts, body = options(block), body.strip("\n")
        if kind == "admonition":
            if "dropdown" in opts.get("class", ""):
                return f"<details><summary>{argument}</summary>\n\n{body}\n\n</details>"
            return quote(f"**{argument}**\n\n{body}")
        if kind in ("figure", "glue:figure"):
            if kind == "figure":
                path = figures / argument
                name, mime = path.name, "image/svg+xml"
                data = base64.b64encode(path.read_bytes()).decode()
            else:
                output = records[""][argument]["data"]
                mime = "image/png"
                name, data = f"{argument}.png", output[mime]
            attachments[name] = {mime: data}
            return f"![{opts.get('alt', '')}](attachment:{name})\n\n*{body}*"
        if kind == "footbibliography":
            return bibliography.references()
        raise ValueError(f"the exporter does not know the MyST directive {kind!r}")

    text = "".join(cell["source"])
    text = FENCE.sub(fence, text)
    text = GLUE.sub(lambda m: glue_value(records, m.group(1)), text)
    text = CITE.sub(lambda m: bibliography.cite(m.group(1)), text)
    for leftover in ("{glue", "{footcite}", "```{"):
        if leftover in text:
            at = text.index(leftover)
            raise ValueError(
                f"MyST left in a Markdown cell: {text[at - 80 : at + 80]!r}"
            )
    new = dict(cell, source=text.splitlines(keepends=True))
    if attachments:
        new["attachments"] = attachments
    return new


def executed(chapter: Path) -> dict:
    """The executed chapter. A build that takes a chapter from the execution cache
    writes it to `jupyter_execute/` without its outputs (myst-nb merges them only into
    the page), so the outputs come from the cache, as in the page."""
    import nbformat
    from jupyter_cache import get_cache

    notebook = nbformat.read(chapter, as_version=4)
    try:
        _, notebook = get_cache(str(CACHE)).merge_match_into_notebook(notebook)
    except KeyError:  # not cached: executed by the build, outputs in place
        pass
    return json.loads(nbformat.writes(notebook))


def export(
    chapter: Path, bibliography: Bibliography, edition: Edition = ENGLISH
) -> dict:
    notebook = executed(chapter)
    records = load_glue(chapter)
    figures = edition.book / "chapters"
    notebook["cells"] = [
        convert_markdown(cell, records, bibliography, figures)
        if cell["cell_type"] == "markdown"
        else cell
        for cell in notebook["cells"]
    ]
    return notebook


def point_colab_at_the_executed_copies(edition: Edition) -> None:
    """The Colab buttons open the `notebooks` branch, which holds these copies."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    repository = url.removeprefix("https://github.com/")
    folder = edition.copies.relative_to(ENGLISH.copies).as_posix()
    github = f"colab.research.google.com/github/{repository}/blob/"
    source = f"{github}main/{folder}/"
    target = f"{github}{COLAB_BRANCH}/{folder}/".replace("/./", "/")
    for page in edition.html.rglob("*.html"):
        if edition is ENGLISH and CHINESE.html in page.parents:
            continue
        text = page.read_text()
        if source in text:
            page.write_text(text.replace(source, target))


def export_edition(edition: Edition, bibliography: Bibliography) -> int:
    chapters = sorted(edition.executed.glob("*.ipynb"))
    # a chapter renamed since an earlier build leaves its old executed copy behind
    chapters = [c for c in chapters if (ROOT / "chapters" / c.name).exists()]
    edition.copies.joinpath("chapters").mkdir(parents=True, exist_ok=True)
    for chapter in chapters:
        notebook = export(chapter, bibliography, edition)
        text = json.dumps(notebook, indent=1, ensure_ascii=False)
        for folder in (edition.downloads, edition.copies / "chapters"):
            (folder / chapter.name).write_text(text + "\n")
    point_colab_at_the_executed_copies(edition)
    return len(chapters)


def main() -> int:
    if not list(ENGLISH.executed.glob("*.ipynb")):
        sys.exit(
            f"no executed chapters in {ENGLISH.executed}: build the book first (make book)"
        )
    bibliography = Bibliography(ROOT / "book" / "references.bib")
    for edition in (ENGLISH, CHINESE):
        if edition.html.exists():
            count = export_edition(edition, bibliography)
            where = edition.downloads.relative_to(ROOT)
            print(f"exported {count} executed chapters to {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Split the book's MyST Markdown into messages for translators, and put it back together.

A page (a Markdown file, or a notebook's Markdown cells) is cut into pieces: each piece is
either a *message*, text a translator rewrites, or markup that stays as it is. Joining
the pieces again gives the page back exactly, so a translation changes only the messages.

- A paragraph, list, heading or quote is one message; a table is one message per row.
- Code fences (``` or ~~~), `$$` math blocks, targets such as `(label)=` and HTML comments stay.
- A directive fence (```{admonition} Title, :::{figure} path) keeps its fence and
  options; an admonition's title and an `:alt:` text are messages, and the body is cut
  in the same way, so an admonition's paragraphs are messages of their own.
- A piece with no words outside roles, math and code (a lone glued number) stays.

Roles (`{glue:text}`key``), math and links inside a message stay inside it: the
translator keeps them, and `markup(message)` lists them so a test can compare.
"""

import re
from dataclasses import dataclass

FENCE_OPEN = re.compile(r"^(\s*)(`{3,}|~{3,}|:{3,})(\{[\w:-]+\})?[ \t]*(.*)$")
OPTION = re.compile(r"^\s*:([\w-]+):[ \t]*(.*)$")
TITLED = {"admonition"}  # directives whose argument is a title
MARKUP = re.compile(
    r"\{[\w:-]+\}`[^`]*`"  # roles: {glue:text}`key:.2f`, {footcite}`a,b`, {doc}`x`
    r"|\$\$.+?\$\$|\$[^$\n]+\$"  # math
    r"|`[^`\n]+`"  # code
    r"|\]\([^)\s]+\)"  # link targets
    r"|<https?://[^>]+>",  # autolinks
    re.S,
)
WORD = re.compile(r"[A-Za-z]{2,}")


@dataclass
class Piece:
    text: str
    message: bool  # True: a translator rewrites it


def markup(text: str) -> list[str]:
    """The roles, math, code and link targets of a message, in order."""
    return MARKUP.findall(text)


def has_words(text: str) -> bool:
    return bool(WORD.search(MARKUP.sub(" ", text)))


def _closing(lines: list[str], start: int, fence: str) -> int:
    """The index of the line that closes a fence opened with `fence`, or len(lines)."""
    char, width = fence[0], len(fence)
    for i in range(start, len(lines)):
        stripped = lines[i].strip()
        if stripped and set(stripped) == {char} and len(stripped) >= width:
            return i
    return len(lines)


def _block(lines: list[str]) -> list[Piece]:
    """A run of non-blank lines that is not a fence: messages, or markup that stays."""
    text = "\n".join(lines)
    first = lines[0].strip()
    if (
        first.startswith("$$")
        or re.fullmatch(r"\(.+\)=", first)
        or first.startswith("<!--")
    ):
        return [Piece(text, False)]
    if (
        first.startswith("|")
        and len(lines) > 1
        and re.match(r"^\|[\s|:-]+\|$", lines[1])
    ):
        pieces = []
        for i, line in enumerate(lines):
            pieces.append(Piece(line, i != 1 and has_words(line)))
            if i < len(lines) - 1:
                pieces.append(Piece("\n", False))
        return pieces
    return [Piece(text, has_words(text))]


def split(text: str) -> list[Piece]:
    """Cut a page into pieces whose texts, joined, are the page."""
    lines = text.split("\n")
    pieces: list[Piece] = []
    i = 0

    def keep(s: str) -> None:
        pieces.append(Piece(s, False))

    def ending_in_message(line: str, words: str) -> None:
        """A fence or option line whose last part, `words`, is a message."""
        keep(line[: len(line) - len(words)])
        pieces.append(Piece(words, True))

    while i < len(lines):
        if i:
            keep("\n")
        line = lines[i]
        opened = FENCE_OPEN.match(line)
        if not line.strip():
            keep(line)
            i += 1
        elif opened:
            _, fence, directive, argument = opened.groups()
            end = _closing(lines, i + 1, fence)
            if not directive:  # a code block
                keep("\n".join(lines[i : end + 1]))
            else:
                if directive[1:-1] in TITLED and has_words(argument):
                    ending_in_message(line, argument)
                else:
                    keep(line)
                j = i + 1
                while j < end and (option := OPTION.match(lines[j])):
                    name, value = option.groups()
                    keep("\n")
                    if name == "alt" and has_words(value):
                        ending_in_message(lines[j], value)
                    else:
                        keep(lines[j])
                    j += 1
                if j < end:
                    keep("\n")
                    pieces.extend(split("\n".join(lines[j:end])))
                if end < len(lines):
                    keep("\n")
                    keep(lines[end])
            i = end + 1
        else:
            j = i
            while (
                j < len(lines) and lines[j].strip() and not FENCE_OPEN.match(lines[j])
            ):
                j += 1
            pieces.extend(_block(lines[i:j]))
            i = j
    return pieces


def join(pieces: list[Piece]) -> str:
    return "".join(p.text for p in pieces)


def messages(text: str) -> list[str]:
    return [p.text for p in split(text) if p.message]


def translate(text: str, catalog: dict[str, str]) -> str:
    """The page with every message replaced by its translation (KeyError if missing)."""
    return join(
        [
            Piece(catalog[p.text] if p.message else p.text, p.message)
            for p in split(text)
        ]
    )

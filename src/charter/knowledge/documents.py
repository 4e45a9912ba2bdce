"""Reading a team's documents into passages: markdown, text, HTML and PDF.

A passage is a run of whole paragraphs of at most `max_words` words, under the heading it
sits in (markdown `#` headings, HTML `h1`-`h4`, PDF pages), so a citation can say where it
came from: `fees.md › International transfers`. A paragraph longer than the limit is split
at sentence boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from charter.errors import CharterError
from charter.extras import requires_extra

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}


class DocumentError(CharterError):
    """A document cannot be read: an unsupported suffix, not UTF-8 text, or an unreadable PDF."""

    pass


@dataclass(frozen=True)
class Section:
    """A document's text under one heading ("" before the first heading, or for plain text)."""

    heading: str
    text: str


@dataclass(frozen=True)
class Passage:
    """A chunk of a document to retrieve and cite; `where` reads `source › heading`."""

    source: str
    heading: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.source} › {self.heading}" if self.heading else self.source


def read_sections(path: Path) -> list[Section]:
    """The file's sections, by its suffix: markdown, text, HTML or PDF (a section per page).

    Raises DocumentError for an unsupported suffix or an unreadable file, and MissingExtraError
    for HTML or PDF without the `knowledge` extra.
    """
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(
            f"{path}: cannot read {suffix or 'files without a suffix'}; "
            f"supported: {', '.join(sorted(SUFFIXES))}"
        )
    try:
        if suffix == ".pdf":
            return _pdf(path)
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise DocumentError(f"{path}: {exc.strerror or exc}") from None
    if suffix in (".html", ".htm"):
        return _html(text)
    if suffix in (".md", ".markdown"):
        return _markdown(text)
    return [Section("", text)]


def _markdown(text: str) -> list[Section]:
    sections: list[Section] = []
    heading, lines = "", list[str]()
    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            sections.append(Section(heading, "\n".join(lines)))
            heading, lines = match.group(1), []
        else:
            lines.append(line)
    sections.append(Section(heading, "\n".join(lines)))
    return [s for s in sections if s.text.strip()]


def _html(text: str) -> list[Section]:
    with requires_extra("reading HTML documents", "knowledge"):
        from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "nav", "footer", "head"]):
        tag.decompose()
    sections: list[Section] = []
    heading, parts = "", list[str]()
    for element in soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "td", "pre"]):
        content = element.get_text(" ", strip=True)
        if element.name in ("h1", "h2", "h3", "h4"):
            sections.append(Section(heading, "\n\n".join(parts)))
            heading, parts = content, []
        elif content:
            parts.append(content)
    sections.append(Section(heading, "\n\n".join(parts)))
    return [s for s in sections if s.text.strip()]


def _pdf(path: Path) -> list[Section]:
    with requires_extra("reading PDF documents", "knowledge"):
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, OSError, ValueError) as exc:
        raise DocumentError(f"{path}: unreadable PDF ({exc})") from None
    return [Section(f"page {i}", text) for i, text in enumerate(pages, 1) if text.strip()]


def _sentences(paragraph: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", paragraph) if s]


def chunk(source: str, sections: list[Section], max_words: int = 120) -> list[Passage]:
    """Cut sections into passages of whole paragraphs, at most `max_words` words each.

    A paragraph longer than the limit is split into sentences; a single sentence longer than
    the limit makes a passage of its own.
    """
    passages: list[Passage] = []
    for section in sections:
        paragraphs = [re.sub(r"\s+", " ", p).strip() for p in re.split(r"\n\s*\n", section.text)]
        pieces: list[str] = []
        for paragraph in filter(None, paragraphs):
            if len(paragraph.split()) <= max_words:
                pieces.append(paragraph)
            else:
                pieces.extend(_sentences(paragraph))
        current: list[str] = []
        for piece in pieces:
            words = sum(len(p.split()) for p in current) + len(piece.split())
            if current and words > max_words:
                passages.append(Passage(source, section.heading, " ".join(current)))
                current = []
            current.append(piece)
        if current:
            passages.append(Passage(source, section.heading, " ".join(current)))
    return passages

"""The report's building blocks: plain data that the Jinja2 template renders (and escapes).

A report is a list of :class:`Section` s; each holds blocks (a paragraph, a table, an
embedded figure, a list, key/value pairs, cards). Nothing here writes HTML by hand: all
text goes through the template with autoescaping on, so user strings (activation names,
formulas, database paths) can never inject markup.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.figure import Figure

from actlab.report.figures import to_png_bytes


@dataclass(frozen=True)
class Cell:
    """A table cell with a CSS class (``good``, ``warn``, ``bad``)."""

    text: str
    cls: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass
class Table:
    """A table: column names, rows of cells (str or :class:`Cell`), numeric columns."""

    columns: Sequence[str]
    rows: list[list[Any]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)
    highlight: set[int] = field(default_factory=set)

    def text(self, cell: Any) -> str:
        return str(cell) if cell is not None else ""

    def cell_class(self, col: int, cell: Any) -> str:
        parts = ["num"] if col in self.numeric else []
        if isinstance(cell, Cell) and cell.cls:
            parts.append(cell.cls)
        return " ".join(parts)


@dataclass
class Block:
    """One piece of a section. ``kind`` selects how the template renders it."""

    kind: str
    text: str = ""
    items: list[Any] = field(default_factory=list)
    table: Table | None = None
    src: str = ""
    alt: str = ""
    caption: str = ""
    width: int = 0
    height: int = 0
    cards: list[Card] = field(default_factory=list)


@dataclass
class Card:
    id: str
    title: str
    blocks: list[Block]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    children: list[Section] = field(default_factory=list)


def p(text: str) -> Block:
    return Block("p", text=text)


def note(text: str) -> Block:
    return Block("note", text=text)


def absent(text: str) -> Block:
    """A sentence saying that some data is not there (rendered muted)."""
    return Block("absent", text=text)


def heading(text: str) -> Block:
    return Block("heading", text=text)


def bullets(items: Iterable[str]) -> Block:
    return Block("list", items=list(items))


def kv(pairs: Iterable[tuple[str, Any]]) -> Block:
    return Block("kv", items=[(k, str(v)) for k, v in pairs])


def table(
    columns: Sequence[str],
    rows: list[list[Any]],
    caption: str = "",
    numeric: Iterable[int] = (),
    highlight: Iterable[int] = (),
) -> Block:
    return Block("table", table=Table(list(columns), rows, caption, set(numeric), set(highlight)))


def figures(items: Iterable[Block]) -> Block:
    """Figures side by side (a responsive grid)."""
    return Block("figs", items=list(items))


def cards(items: list[Card]) -> Block:
    return Block("cards", cards=items)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image")
    return struct.unpack(">II", data[16:24])


def figure(fig: Figure, alt: str, caption: str = "", dpi: int = 80) -> Block:
    """Embed a matplotlib figure as a base64 PNG data URI (the figure is closed)."""
    data = to_png_bytes(fig, dpi=dpi)
    w, h = png_size(data)
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return Block("figure", src=src, alt=alt, caption=caption, width=w, height=h)


# ----------------------------------------------------------------------------- numbers


def fmt(x: Any, digits: int = 4) -> str:
    """A number for a table: ``-`` for missing, ``nan``/``inf`` spelled out."""
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "-"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if abs(v) >= 1e5 or abs(v) < 1e-3:
        return f"{v:.{max(digits - 1, 1)}e}"
    return f"{v:.{digits}g}"


def pct(x: Any, digits: int = 1) -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "-" if math.isnan(v) else f"{100 * v:.{digits}f}%"


def slug(text: str) -> str:
    """An HTML id from any text (letters, digits and dashes)."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in text)
    out = "-".join(filter(None, out.split("-")))
    return out or "section"

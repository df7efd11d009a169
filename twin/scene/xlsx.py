"""Fast values-only reading of .xlsx worksheets, on top of openpyxl's workbook reader.

openpyxl reads the package (content types, workbook, sheet list, relationships, styles and their
date formats); this module replaces only its two per-cell hot loops, which the SMAT2022 profile
showed at ~80 % of the import: the shared-string table (one descriptor-checked ``Text`` object per
string) and the worksheet cells (one dict per cell, then a row rebuilt from them). Both are read
here with the C expat parser and callbacks that keep only what a values-only read returns, with
openpyxl's own rules for each cell type (numbers, shared and inline strings, booleans, errors,
ISO and serial dates). Worksheets take one pass with three callbacks per cell when their XML has
no whitespace between elements (what spreadsheet programs and openpyxl write); any other sheet
is read by openpyxl itself. ``tests/scene/test_xlsx.py`` checks the result against openpyxl's
``iter_rows(values_only=True)``.

XML safety: like defusedxml, a document that declares entities is refused; expat (>= 2.4, as in
Python 3.11) also bounds entity amplification and never fetches external resources.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

from openpyxl.reader.excel import ExcelReader
from openpyxl.utils.cell import column_index_from_string
from openpyxl.utils.datetime import from_excel, from_ISO8601
from openpyxl.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.xml.constants import SHARED_STRINGS, SHEET_MAIN_NS

from twin.errors import TwinError

_NS = SHEET_MAIN_NS + " "  # expat's "namespace name" prefix (namespace_separator=" ")
_ROW, _C, _V, _IS = _NS + "row", _NS + "c", _NS + "v", _NS + "is"
_SI, _T, _RPH = _NS + "si", _NS + "t", _NS + "rPh"
_CHUNK = 1 << 16  # bytes of XML fed to expat at a time


class XlsxError(TwinError):
    """A worksheet or shared-string part that cannot be read; the message says where.

    Not a ValueError: openpyxl's reader would re-raise that as "could not read strings",
    losing the place."""


def open_workbook(path: str | Path) -> Workbook:
    """openpyxl's read-only, values-only workbook whose shared strings are read by expat."""
    reader = _Reader(path, read_only=True, data_only=True)
    reader.read()
    return reader.wb


def iter_values(ws: ReadOnlyWorksheet) -> Iterator[tuple[int, list[Any]]]:
    """(Excel row number, values from column A) for each row present in a read-only sheet.

    Values are those of ``ws.iter_rows(values_only=True)`` for a workbook opened with
    ``data_only=True``, but a row is as long as its last value (openpyxl pads to the sheet's
    width) and rows without values are left out (openpyxl yields them empty).
    """
    try:
        with ws._get_source() as src:
            rows = _compact_rows(src, _Cells(ws._shared_strings, ws.parent), f"sheet {ws.title!r}")
    except _NotCompact:
        yield from _openpyxl_rows(ws)
        return
    yield from (row for row in rows if row[1])


class _Reader(ExcelReader):
    """openpyxl's package reader with the shared-string table read by :func:`read_strings`."""

    def read_strings(self) -> None:
        ct = self.package.find(SHARED_STRINGS)
        if ct is not None:
            with self.archive.open(ct.PartName[1:]) as src:
                self.shared_strings = read_strings(src)


def read_strings(src: IO[bytes]) -> list[str]:
    """The shared-string table as openpyxl reads it without rich text: each ``<si>``'s plain
    and run texts joined (phonetic ``<rPh>`` runs left out), ``x005F_`` escapes removed."""
    strings: list[str] = []
    parts: list[str] = []
    capture = False
    phonetic = 0

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal capture, phonetic
        if name == _T:
            capture = not phonetic
        elif name == _SI:
            parts.clear()
        elif name == _RPH:
            phonetic += 1

    def end(name: str) -> None:
        nonlocal capture, phonetic
        if name == _T:
            capture = False
        elif name == _SI:
            strings.append("".join(parts).replace("x005F_", ""))
        elif name == _RPH:
            phonetic -= 1

    def text(data: str) -> None:
        if capture:
            parts.append(data)

    _parse(src, _expat(start, end, text), "shared strings")
    return strings


def cell_value(kind: str, style: int, text: str, cells: _Cells) -> Any:
    """A cell's value by openpyxl's ``WorkSheetParser.parse_cell`` rules (values only, data
    only), from its type ``t``, its style index ``s`` and the text of its ``<v>``."""
    if not text:
        return None
    if kind == "s":
        return cells.strings[int(text)]
    if kind == "n":
        value = float(text) if ("." in text or "E" in text or "e" in text) else int(text)
        if style in cells.date_formats:
            try:
                return from_excel(value, cells.epoch, timedelta=style in cells.timedelta_formats)
            except (OverflowError, ValueError):
                return "#VALUE!"  # openpyxl warns and reads the cell as this error
        return value
    if kind == "b":
        return bool(int(text))
    if kind == "d":
        return from_ISO8601(text)
    return text  # "str" (a formula's cached text), "e" (an error such as #N/A)


class _Cells:
    """What a cell's value depends on beyond the cell: the workbook's strings and date styles."""

    def __init__(self, strings: list[str], wb: Workbook) -> None:
        self.strings, self.epoch = strings, wb.epoch
        self.date_formats, self.timedelta_formats = wb._date_formats, wb._timedelta_formats


class _NotCompact(Exception):
    """The worksheet XML has whitespace between elements: the one-pass reader cannot be exact."""


def _compact_rows(src: IO[bytes], cells: _Cells, where: str) -> list[tuple[int, list[Any]]]:
    """(row number, values) of every ``<row>`` of a worksheet part, in document order.

    Every cell costs three callbacks, not five: no end-element handler is set (a third of the
    parse time), so a cell is complete when the next ``<c>`` or ``<row>`` starts, and the text
    delivered for a ``<v>`` runs up to that next start tag. That is the value exactly when no
    text lies between elements, as Excel, LibreOffice and openpyxl write; any whitespace
    outside a value, or a value that ends in whitespace, raises :class:`_NotCompact`.
    """
    rows: list[tuple[int, list[Any]]] = []
    columns: dict[str, int] = {}  # "AB" -> 28, cached: every row repeats the same letters
    strings, dates = cells.strings, cells.date_formats
    values: list[Any] = []
    row_no = col = style = 0
    kind = "n"
    buf = ""  # text of the open cell's value
    capture = inline = phonetic = False  # in a value; the cell has <is>; in <is>'s <rPh>

    def close_cell() -> None:  # the open cell's value into its row
        nonlocal buf
        text, buf = buf, ""
        if text and text[-1] in " \t\r\n":
            raise _NotCompact
        try:
            # the two cases of nearly every cell first; every rule is in cell_value
            if kind == "s" and text:
                value = strings[int(text)]
            elif kind == "n" and text and style not in dates and "." not in text:
                value = int(text) if "E" not in text and "e" not in text else float(text)
            elif kind == "inlineStr":
                value = text if inline else None
            else:
                value = cell_value(kind, style, text, cells)
        except (ValueError, IndexError, OverflowError) as exc:
            raise XlsxError(f"{where} row {row_no} column {col}: {exc}") from None
        if value is not None:
            n = len(values)
            if col == n + 1:  # the next column: nearly always
                values.append(value)
            elif col > n:
                values.extend([None] * (col - n - 1))
                values.append(value)
            else:
                values[col - 1] = value

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal values, row_no, col, style, kind, capture, inline, phonetic
        if name == _V:
            capture = kind != "inlineStr"  # openpyxl ignores the <v> of an inline string
        elif name == _C:
            if buf or inline:
                close_cell()
            ref = attrs.get("r")
            if ref:
                letters = ref.rstrip("0123456789")
                col = columns.get(letters) or columns.setdefault(
                    letters, column_index_from_string(letters)
                )
            else:
                col += 1
            kind = attrs.get("t", "n")
            s = attrs.get("s")
            style = int(s) if s else 0
            capture = inline = phonetic = False
        elif name == _ROW:
            if buf or inline:
                close_cell()
            r = attrs.get("r")
            row_no = _row_number(r, where) if r else row_no + 1
            col, values = 0, []
            rows.append((row_no, values))
            capture = inline = phonetic = False
        elif name == _T:
            capture = inline and not phonetic
        elif name == _IS:
            capture, inline = False, True
        else:  # <f> (its formula text is not the value), <rPh>, <r>, elements after the rows
            capture = False
            phonetic = phonetic or name == _RPH

    def text(data: str) -> None:
        nonlocal buf
        if capture:
            buf += data
        elif data.isspace():
            raise _NotCompact

    _parse(src, _expat(start, None, text), where)
    if buf or inline:
        close_cell()
    return rows


def _openpyxl_rows(ws: ReadOnlyWorksheet) -> Iterator[tuple[int, list[Any]]]:
    """openpyxl's own ``iter_rows(values_only=True)`` in the shape of :func:`iter_values`."""
    ws.reset_dimensions()  # keep rows past a stale <dimension>, as the one-pass reader does
    for n, row in enumerate(ws.iter_rows(values_only=True), start=1):
        values = list(row)
        while values and values[-1] is None:
            values.pop()
        if values:
            yield n, values


def _row_number(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if value.is_integer():
            return int(value)
        raise XlsxError(f"{where}: {text!r} is not a valid row number") from None


def _expat(start: Any, end: Any, text: Any) -> Any:
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True  # one text callback per text node, not one per line
    parser.buffer_size = _CHUNK
    parser.StartElementHandler = start
    if end is not None:
        parser.EndElementHandler = end
    parser.CharacterDataHandler = text
    parser.EntityDeclHandler = _refuse_entities
    return parser


def _refuse_entities(name: str, *_: Any) -> None:
    raise XlsxError(f"the XML declares entity {name!r}; workbook parts never do")


def _parse(src: IO[bytes], parser: Any, where: str) -> None:
    """Feed ``src`` to ``parser`` a chunk at a time (the part is never held whole)."""
    try:
        while chunk := src.read(_CHUNK):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise XlsxError(f"{where}: not well-formed XML ({exc})") from None

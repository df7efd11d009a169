"""twin.scene.xlsx reads the same cell values as openpyxl's own iter_rows(values_only=True)."""

from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from twin.scene import xlsx
from twin.scene.xlsx import XlsxError, iter_values, open_workbook

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRINGS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"


def trimmed(sheets: dict[str, list[tuple]]) -> dict[str, list[tuple[int, list]]]:
    """openpyxl's rows numbered from 1, trailing blanks and empty rows dropped."""
    out = {}
    for title, rows in sheets.items():
        out[title] = []
        for n, row in enumerate(rows, start=1):
            values = list(row)
            while values and values[-1] is None:
                values.pop()
            if values:
                out[title].append((n, values))
    return out


def plain(path) -> dict[str, list[tuple[int, list]]]:
    """Every sheet through openpyxl alone, trailing blanks and empty rows dropped."""
    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return trimmed({ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets})
    finally:
        wb.close()


def fast(path) -> dict[str, list[tuple[int, list]]]:
    wb = open_workbook(path)
    try:
        return {ws.title: list(iter_values(ws)) for ws in wb.worksheets}
    finally:
        wb.close()


def same(a: dict, b: dict) -> None:
    """Equal values and types (1 is not 1.0 nor True)."""
    assert a == b
    typed = {k: [(n, [type(v) for v in r]) for n, r in rows] for k, rows in a.items()}
    assert typed == {k: [(n, [type(v) for v in r]) for n, r in rows] for k, rows in b.items()}


def with_parts(src, dst, parts: dict[str, str]) -> None:
    """Copy an .xlsx replacing (or adding) parts; a sharedStrings part is registered too."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename in parts:
                data = parts[item.filename].encode()
            elif item.filename == "[Content_Types].xml" and "xl/sharedStrings.xml" in parts:
                override = (
                    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{STRINGS_TYPE}"/>'
                )
                data = data.replace(b"</Types>", override.encode() + b"</Types>")
            zout.writestr(item, data)
        for name in set(parts) - set(zin.namelist()):
            zout.writestr(name, parts[name])


def sheet_xml(rows: str, sep: str = "") -> str:
    return (
        f'<worksheet xmlns="{MAIN}">{sep}<sheetData>{sep}{rows}{sep}</sheetData>{sep}'
        '<pageMargins left="0.75" right="0.75" top="1" bottom="1" header="0.5" footer="0.5"/>'
        "</worksheet>"
    )


@pytest.fixture
def fallbacks(monkeypatch) -> list:
    """The sheets handed to openpyxl's own reader because their XML is not compact."""
    seen: list = []
    real = xlsx._openpyxl_rows
    monkeypatch.setattr(xlsx, "_openpyxl_rows", lambda ws: seen.append(ws.title) or real(ws))
    return seen


@pytest.fixture
def base(tmp_path):
    """An openpyxl-written workbook with a date, a time and a datetime style in its stylesheet."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "S"
    ws.append([dt.datetime(2020, 1, 2, 3, 4), dt.date(2021, 5, 6), dt.time(7, 8)])
    path = tmp_path / "base.xlsx"
    wb.save(path)
    return path


def test_smat2022_workbook_reads_as_openpyxl_does(smat_xlsx, smat_openpyxl_rows, fallbacks):
    """Every sheet of the SMAT2022 workbook has openpyxl's values, types and row numbers."""
    same(fast(smat_xlsx), trimmed(smat_openpyxl_rows))
    assert fallbacks == []


def test_openpyxl_written_cell_types(tmp_path):
    """Ints, floats, exponents, bools, dates, times, errors, formulas, gaps read as openpyxl does."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([1, -2, 2.5, 1e20, 1.5e-7, True, False, "#N/A", "=A1+1", None, "x"])
    ws.append([dt.datetime(2020, 1, 2, 3, 4), dt.date(2021, 5, 6), dt.time(7, 8)])
    ws.append([])
    ws.append([None, None, "après 東京"])
    ws["H9"] = 3
    ws2 = wb.create_sheet("Second")
    ws2["C3"] = "only cell"
    path = tmp_path / "types.xlsx"
    wb.save(path)
    same(fast(path), plain(path))


def test_shared_strings_rich_text_and_phonetics(base, tmp_path, fallbacks):
    """Shared strings join plain and run texts, drop phonetic runs and x005F_ as openpyxl does."""
    strings = (
        f'<sst xmlns="{MAIN}">'
        "<si><t>NAME</t></si>"
        '<si><r><rPr><b/></rPr><t xml:space="preserve">bold </t></r><r><t>plain</t></r></si>'
        '<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh><phoneticPr fontId="1"/></si>'
        "<si><t>a_x005F_x0041_b</t></si>"
        "<si><t/></si>"
        "<si><t>&amp;&lt;&#x41;</t></si>"
        "</sst>"
    )
    rows = (
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c>'
        '<c r="C1" t="s"><v>2</v></c><c r="D1" t="s"><v>3</v></c><c r="E1" t="s"><v>4</v></c>'
        '<c r="F1" t="s"><v>5</v></c></row>'
    )
    path = tmp_path / "strings.xlsx"
    with_parts(
        base, path, {"xl/sharedStrings.xml": strings, "xl/worksheets/sheet1.xml": sheet_xml(rows)}
    )
    got = fast(path)
    same(got, plain(path))
    assert got["S"][0][1][1:3] == ["bold plain", "東京"]
    assert fallbacks == []


CELLS = (
    '<row r="2" spans="1:9"><c r="A2" s="1"><v>43832.5</v></c><c r="B2" s="2" t="n"><v>44322</v></c>'
    '<c r="C2" s="3"><v>0.25</v></c><c r="D2" t="str"><f>"a"&amp;"b"</f><v>ab</v></c>'
    '<c r="E2" t="b"><v>0</v></c><c r="F2" t="e"><f>1/0</f><v>#DIV/0!</v></c>'
    '<c r="G2" t="inlineStr"><is><r><t>in</t></r><r><rPr><i/></rPr><t>line</t></r></is></c>'
    '<c r="H2" t="inlineStr"><is><t/></is></c><c r="I2" t="d"><v>2020-01-02T03:04:05</v></c></row>'
    '<row><c><v>7</v></c><c><f>SUM(A1:A2)</f><v>8.5</v></c><c s="1"/><c t="inlineStr"/></row>'
    '<row r="6"><c r="AB6"><v>-1E-3</v></c></row>'
)


def test_every_cell_form_excel_writes(base, tmp_path, fallbacks):
    """Date styles, cached formula text and errors, inline rich strings, ISO dates, cells and rows
    without a reference, a two-letter column: the values openpyxl reads."""
    path = tmp_path / "cells.xlsx"
    with_parts(base, path, {"xl/worksheets/sheet1.xml": sheet_xml(CELLS)})
    got = fast(path)
    same(got, plain(path))
    assert [n for n, _ in got["S"]] == [2, 3, 6]
    assert fallbacks == []


def test_indented_xml_is_read_exactly(base, tmp_path, fallbacks):
    """A sheet with whitespace between its elements is read by openpyxl itself, same values."""
    pretty = CELLS.replace("><", ">\n  <")
    path = tmp_path / "pretty.xlsx"
    with_parts(base, path, {"xl/worksheets/sheet1.xml": sheet_xml(pretty, "\n")})
    got = fast(path)
    assert fallbacks == ["S"]
    compact = tmp_path / "compact.xlsx"
    with_parts(base, compact, {"xl/worksheets/sheet1.xml": sheet_xml(CELLS)})
    same(got, fast(compact))
    same(got, plain(path))


def test_value_ending_in_whitespace_is_read_exactly(base, tmp_path, fallbacks):
    """A value ending in a space (it could be indentation) sends the sheet to openpyxl: kept."""
    rows = '<row r="1"><c r="A1" t="str"><f>"a "</f><v>a </v></c><c r="B1"><v>2</v></c></row>'
    path = tmp_path / "space.xlsx"
    with_parts(base, path, {"xl/worksheets/sheet1.xml": sheet_xml(rows)})
    got = fast(path)
    assert got == {"S": [(1, ["a ", 2])]} and fallbacks == ["S"]


def test_entity_declarations_are_refused(base, tmp_path):
    """A part that declares XML entities (a billion-laughs shape) is refused, not expanded."""
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f'<sst xmlns="{MAIN}"><si><t>&b;</t></si></sst>'
    )
    path = tmp_path / "bomb.xlsx"
    with_parts(base, path, {"xl/sharedStrings.xml": bomb})
    with pytest.raises(XlsxError, match="declares entity 'a'"):
        open_workbook(path)


def test_bad_cells_name_sheet_row_and_column(base, tmp_path):
    """A shared-string index past the table or a malformed number names its sheet, row, column."""
    rows = '<row r="4"><c r="C4" t="s"><v>12</v></c></row>'
    path = tmp_path / "bad.xlsx"
    with_parts(base, path, {"xl/worksheets/sheet1.xml": sheet_xml(rows)})
    with pytest.raises(XlsxError, match=r"sheet 'S' row 4 column 3"):
        fast(path)
    with_parts(
        base,
        path,
        {"xl/worksheets/sheet1.xml": sheet_xml('<row r="2"><c r="B2"><v>1,5</v></c></row>')},
    )
    with pytest.raises(XlsxError, match=r"sheet 'S' row 2 column 2"):
        fast(path)


cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=8),
    st.sampled_from([" lead", "trail ", "  ", "tab\tin", "line\nbreak", "=1+1", "#N/A"]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.lists(cell, max_size=6), max_size=6))
def test_any_openpyxl_grid_reads_back_the_same(tmp_path_factory, rows):
    """Any grid of values openpyxl writes reads back with openpyxl's values and types."""
    wb = openpyxl.Workbook()
    for row in rows:
        wb.active.append(row)
    path = tmp_path_factory.mktemp("grid") / "grid.xlsx"
    wb.save(path)
    same(fast(path), plain(path))

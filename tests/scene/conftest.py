"""Fixtures shared by the scene tests."""

from __future__ import annotations

import openpyxl
import pytest


@pytest.fixture(scope="session")
def smat_openpyxl_rows(smat_xlsx) -> dict[str, list[tuple]]:
    """Every sheet of the SMAT2022 workbook read by openpyxl alone, row 1 first: the independent
    reference for twin.scene.xlsx (read once: it takes seconds)."""
    wb = openpyxl.load_workbook(smat_xlsx, read_only=True, data_only=True)
    try:
        return {ws.title: list(ws.iter_rows(values_only=True)) for ws in wb.worksheets}
    finally:
        wb.close()

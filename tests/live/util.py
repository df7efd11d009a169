"""Helpers shared by the live tests."""

from __future__ import annotations

import sqlite3


def stored_count(db) -> int:
    """Events in a store, read without taking a write lock (0 before the schema exists)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COALESCE(MAX(pos), 0) FROM events").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0

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


# The event store's schema before the hash chain (2026-11): what a legacy store holds.
LEGACY_SCHEMA = """
CREATE TABLE events (pos INTEGER PRIMARY KEY, source TEXT NOT NULL, seq INTEGER NOT NULL,
    id TEXT NOT NULL, time REAL NOT NULL, type TEXT NOT NULL, subject TEXT NOT NULL,
    data TEXT NOT NULL, UNIQUE (source, seq));
CREATE INDEX events_time ON events (time);
CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, received REAL NOT NULL, source TEXT,
    seq INTEGER, reason TEXT NOT NULL, raw TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE snapshots (pos INTEGER PRIMARY KEY, clock REAL NOT NULL, state TEXT NOT NULL);
CREATE TRIGGER events_append_only_u BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
CREATE TRIGGER events_append_only_d BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""

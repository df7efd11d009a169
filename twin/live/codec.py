"""Event JSON on the hot paths: orjson (a base dependency), else the standard library.

orjson parses and writes event JSON several times faster than ``json``. Where the two disagree
the standard library decides, so accepted payloads, stored text and rejection reasons stay what
they were: ``loads`` hands a text orjson refuses (NaN, Infinity, 1e400, lone surrogates) to
``json``, and ``dumps`` uses ``json`` for what orjson cannot write exactly (integers beyond 64
bits, non-string keys, NaN/Infinity, which orjson would turn into ``null``). One difference is
kept on purpose: orjson reads an integer literal beyond 64 bits as a float, which no event field
accepts as an integer and which SQLite could not store as one anyway.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import repeat
from operator import contains as _contains
from typing import Any

_std_loads = json.JSONDecoder().decode
_std_dumps = json.JSONEncoder(separators=(",", ":")).encode

try:
    from orjson import dumps as _fast_dumps
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - the standard library is slower, not different
    _fast_loads = None
    _fast_dumps = None

# The fastest parser there is; it may refuse what ``loads`` accepts (callers fall back).
fast_loads = _fast_loads if _fast_loads is not None else json.loads


def loads(text: str | bytes) -> Any:
    """Parse JSON text; raises ValueError (or RecursionError) as ``json.loads`` would."""
    if _fast_loads is not None:
        try:
            return _fast_loads(text)
        except ValueError:
            pass  # the standard parser accepts a little more, and explains what it refuses
    return json.loads(text)


def dumps(obj: Any) -> str:
    """Compact JSON text (``separators=(",", ":")``), non-ASCII written as UTF-8."""
    if _fast_dumps is None:
        return _std_dumps(obj)
    try:
        out = _fast_dumps(obj)
    except TypeError:  # integers beyond 64 bits, non-string keys: as json writes them
        return _std_dumps(obj)
    if b"null" in out:  # maybe a NaN/Infinity orjson wrote as null: json writes it as it is
        return _std_dumps(obj)
    return out.decode()


def dumps_many(objs: Sequence[Any]) -> list[str]:
    """``[dumps(o) for o in objs]`` with one check for the whole list instead of a call and a
    check per object (the event store writes each event's data this way)."""
    if _fast_dumps is None:
        return [_std_dumps(o) for o in objs]
    try:
        # decoded at once: orjson's bytes are allocated large then shrunk, and 2,000 of them
        # alive together made the heap grow and shrink (page faults) on every batch
        out = [_fast_dumps(o).decode() for o in objs]
    except TypeError:
        return [dumps(o) for o in objs]
    if any(map(_contains, out, repeat("null"))):
        return [dumps(o) for o in objs]
    return out

"""The error family of the twin: one base class, a few specific subclasses.

Messages are for people: they name the offending file, line, sheet/row or id and say what
would be accepted. Validators collect every problem and raise once.
"""

from __future__ import annotations

from collections.abc import Iterable


class TwinError(Exception):
    """Base class of every error the twin raises on purpose."""


class InputError(TwinError):
    """Input (a file, a workbook, a request) is malformed; lists every problem found.

    ``problems`` holds one human-readable line per problem, each naming where it is
    (file:line, sheet/row, id) and what would be accepted.
    """

    def __init__(self, what: str, problems: Iterable[str]):
        self.what = what
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        n = len(self.problems)
        super().__init__(f"{what}: {n} problem{'s' if n != 1 else ''}\n{lines}")


class StoreError(InputError):
    """An event store file that cannot be used as it is: not a store, damaged, or missing or
    altering committed events. One line: the file, what is wrong, and what to do about it."""

    def __init__(self, path: object, problem: str, hint: str = ""):
        line = f"event store {path}: {problem}" + (f"; {hint}" if hint else "")
        TwinError.__init__(self, line)
        self.what = "event store"
        self.problems = [line]
        self.path = path
        self.problem = problem


class StoreWriteError(TwinError):
    """A write the event store refused, with nothing written: names the event (source, seq), or
    the store, and what could not be stored."""

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = problem
        super().__init__(f"event store write refused, nothing written: {where}: {problem}")


class UnsupportedFormatError(TwinError):
    """A file format no loader handles; names the format and the supported ones."""

    def __init__(self, fmt: str, supported: Iterable[str], path: object = None):
        self.format = fmt
        self.supported = sorted(supported)
        where = f" ({path})" if path is not None else ""
        super().__init__(
            f"unsupported format {fmt!r}{where}; supported: {', '.join(self.supported)}"
        )


def close_matches(word: object, known: Iterable[object], n: int = 3) -> list[str]:
    """Up to ``n`` entries of ``known`` that look like ``word`` (for "did you mean" hints)."""
    import difflib

    return difflib.get_close_matches(str(word), [str(k) for k in known], n=n)


class NotFoundError(TwinError, KeyError):
    """An id that names nothing known; says which kind of thing and close matches."""

    def __init__(self, kind: str, key: str, known: Iterable[str] = ()):
        self.kind = kind
        self.key = key
        close = close_matches(key, known)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        msg = f"unknown {kind} {key!r}{hint}"
        super().__init__(msg)
        self.args = (msg,)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ConfigError(TwinError):
    """A config object failed validation; lists every problem."""

    def __init__(self, what: str, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__(f"invalid {what}: " + "; ".join(self.problems))


def raise_if(problems: list[str], what: str) -> None:
    """Raise one InputError listing every problem, if there are any."""
    if problems:
        raise InputError(what, problems)


class IngestFailed(TwinError):
    """A batch could not be made durable (the store's write failed). Nothing of it was
    acknowledged, and the twin state was rebuilt from the store, so it holds exactly what is
    stored: the same messages may be sent again."""

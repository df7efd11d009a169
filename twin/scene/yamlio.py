"""YAML reading that remembers line numbers, so every problem can say file:line."""

from __future__ import annotations

from typing import Any

import yaml

from twin.errors import InputError


class LineDict(dict):
    """A YAML mapping with the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class LineList(list):
    """A YAML sequence with the line it starts on (1-based)."""

    line: int = 0


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    pass


def _construct_map(loader: Any, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    out.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            hash(key)
        except TypeError:
            key = repr(key)  # unhashable keys (lists, mappings) are reported by the schema
        if key in out:
            out.duplicates.append((key, line))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = line
    return out


def _construct_seq(loader: Any, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    return out


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def load_yaml(text: str, file: str) -> Any:
    """Parse YAML text; malformed YAML raises one InputError at file:line:column."""
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise InputError(
            "scene file", [f"{where}: malformed YAML: {what}; expected a YAML mapping document"]
        ) from None
    except yaml.YAMLError as exc:
        raise InputError("scene file", [f"{file}: malformed YAML: {exc}"]) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. bad timestamps, deep nesting
        raise InputError("scene file", [f"{file}: unreadable YAML value: {exc}"]) from None


def line_of(obj: Any, key: Any = None) -> int:
    """The line of a parsed mapping/sequence (or of one of its keys); 0 when unknown."""
    if key is not None and isinstance(obj, LineDict):
        return obj.key_lines.get(key, obj.line)
    return getattr(obj, "line", 0)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data (dicts keep their order; floats keep every digit)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=None, width=100)

"""YAML reading that remembers line numbers, so every problem can say file:line.

Every YAML document of the project is read through ``load_guarded``, which bounds what a few
bytes can make: the text's size, the nesting depth and the aliases (``*name``). Aliases share
one node while parsed, so a 577-byte "billion laughs" file parses at once, but every walk of the
result (a copy, a dump, a check) would visit 10⁹ nodes; the alias count and the nodes the
aliases add when expanded are counted on the parsed node graph, before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from twin.errors import InputError


@dataclass(frozen=True, kw_only=True)
class YamlLimits:
    """What one YAML document may hold (docs/whatif.md, "Limits")."""

    max_bytes: int = 16 * 1024 * 1024  # UTF-8 bytes of the text
    max_depth: int = 64  # nesting levels of mappings and sequences
    max_aliases: int = 1000  # alias uses (``*name``); 0 refuses anchors and aliases
    max_alias_nodes: int = 100_000  # nodes the aliases add when the document is expanded


SCENE_LIMITS = YamlLimits()


class LineDict(dict):
    """A YAML mapping with the line it starts on and the line of each key (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class LineList(list):
    """A YAML sequence with the line it starts on (1-based)."""

    line: int = 0


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class GuardedLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """A safe loader (libyaml's where installed) that checks ``limits``' depth and aliases on
    the parsed nodes before building anything, even when called as ``yaml.load(text, Loader=...)``
    (``load_guarded`` also bounds the text's size and names the file)."""

    limits: YamlLimits = SCENE_LIMITS

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        problem = node_problem(node, "YAML document", self.limits)
        if problem is not None:
            raise InputError("YAML document", [problem])
        return self.construct_document(node)


class _LineLoader(GuardedLoader):
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


def text_problem(text: str, file: str, limits: YamlLimits) -> str | None:
    """Why ``text`` may not be parsed at all (too large, not encodable), or None."""
    if len(text) > limits.max_bytes:  # every character is at least one byte
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            return (
                f"{file}: not valid text: a lone surrogate {text[exc.start]!r} at character "
                f"{exc.start + 1}; expected UTF-8 text"
            )
    if size > limits.max_bytes:
        return f"{file}: {size:,} bytes or more, over the limit of {limits.max_bytes:,} bytes"
    return None


def node_problem(root: yaml.Node, file: str, limits: YamlLimits) -> str | None:
    """Why a parsed node graph may not be built (too deep, too many aliases, an alias that
    contains itself, aliases that expand too far), or None. Iterative: no recursion limit."""
    height: dict[int, int] = {}  # id(node) -> nesting levels below and including it
    expanded: dict[int, int] = {}  # id(node) -> nodes of its subtree with aliases expanded
    state: dict[int, bool] = {}  # id(node) -> done (False: entered, children pending)
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        kids = _children(node)
        if done:
            height[key] = 1 + max((height[id(k)] for k in kids), default=0)
            expanded[key] = 1 + sum(expanded[id(k)] for k in kids)
            state[key] = True
            if height[key] > limits.max_depth:
                return (
                    f"{file}:{node.start_mark.line + 1}: nesting deeper than "
                    f"{limits.max_depth} levels starts here; at most {limits.max_depth}"
                )
            continue
        if key in state:  # a second reference to a node: an alias
            if not state[key]:
                return f"{file}:{node.start_mark.line + 1}: an alias inside its own anchor"
            aliases += 1
            if aliases > limits.max_aliases:
                if limits.max_aliases == 0:
                    return (
                        f"{file}: anchors and aliases (&name, *name) are not accepted here; "
                        "write the values out (a sweep makes many similar scenarios)"
                    )
                return f"{file}: more than {limits.max_aliases} aliases (*name); at most that many"
            continue
        state[key] = False
        stack.append((node, True))
        stack.extend((k, False) for k in kids)
    distinct = len(state)
    if expanded[id(root)] - distinct > limits.max_alias_nodes:
        return (
            f"{file}: its aliases expand to {expanded[id(root)]:,} nodes from {distinct:,}; "
            f"aliases may add at most {limits.max_alias_nodes:,}"
        )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_guarded(
    text: str, file: str, loader: type, limits: YamlLimits, what: str = "YAML file"
) -> Any:
    """The document of ``text`` built by ``loader`` (a SafeLoader subclass) once ``limits``
    hold; a limit broken raises one InputError (``what``: the kind of file, for the message).
    Malformed YAML raises the parser's own yaml.YAMLError, for the caller to word."""
    problem = text_problem(text, file, limits)
    if problem is None:
        parser = loader(text)
        try:
            node = parser.get_single_node()
            if node is None:
                return None
            problem = node_problem(node, file, limits)
            if problem is None:
                return parser.construct_document(node)
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:
            # a value the constructor cannot make: an integer of 5,000 digits, a bad date
            problem = f"{file}: unreadable YAML value: {str(exc)[:300]}"
        finally:
            parser.dispose()
    raise InputError(what, [problem])


def load_yaml(text: str, file: str, limits: YamlLimits = SCENE_LIMITS) -> Any:
    """Parse YAML text; malformed YAML raises one InputError at file:line:column, and so does
    a document over ``limits`` (size, depth, aliases)."""
    try:
        return load_guarded(text, file, _LineLoader, limits, "scene file")
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

"""Property tests: whatever text the parsers get, they fail only with InputError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from twin.errors import InputError, raise_if
from twin.process import smt2020

ROUTE_HEADER = (
    "ROUTE\tSTEP\tDESC\tSTNFAM\tPDIST\tPTIME\tPTIME2\tPTUNITS\tPTPER\tBATCHMN\tBATCHMX\tSETUP\t"
    "WHEN\tSTIME\tSTUNITS\tSVESTN\tFORSTEP\tBatchInterval\tBatchIntUnits\tPartInterval\t"
    "PartIntUnits\tRWKSTEP\tREWORK\tRWKTYPE\tStepPercent\tSTEP_CQT\tCQT\tCQTUNITS"
)
TOOL_HEADER = "STNFAM\tSTN\tRULE\tFWLRANK\tLTIME\tLTUNITS\tULTIME\tULTUNITS\tSTNCAP\tSTNQTY\tSTNGRP"

cell = st.one_of(
    st.sampled_from(["", "1", "-2", "3.5", "nan", "inf", "min", "hr", "per_lot", "per_batch",
                     "uniform", "yes", "rule_LSSU", "01/01/18 00:00:00", "x"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)  # fmt: skip
line = st.lists(cell, min_size=0, max_size=32).map("\t".join)
body = st.lists(line, max_size=6).map("\n".join)


def _only_input_errors(parse, text):
    problems: list[str] = []
    parse(text, "f.txt", problems)  # must not raise anything itself
    try:
        raise_if(problems, "f.txt")
    except InputError as e:
        assert all(p.startswith("f.txt") for p in e.problems)


@settings(max_examples=150, deadline=None)
@given(body)
def test_route_parser_garbage(text):
    """Garbage route lines produce problems (file:line...), never an exception."""
    _only_input_errors(smt2020.parse_route, ROUTE_HEADER + "\n" + text)


@settings(max_examples=150, deadline=None)
@given(body)
def test_tool_parser_garbage(text):
    """Garbage tool lines produce problems, never an exception."""
    _only_input_errors(smt2020.parse_tools, TOOL_HEADER + "\n" + text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_text_any_parser(text):
    """Any text given to any parser (header or not) produces problems, never an exception."""
    for parse in (smt2020.parse_parts, smt2020.parse_setups, smt2020.parse_setup_groups,
                  smt2020.parse_downcal, smt2020.parse_pmcal, smt2020.parse_attach,
                  smt2020.parse_fromto):  # fmt: skip
        _only_input_errors(parse, text)
    for parse in (smt2020.parse_orders, smt2020.parse_wip):
        problems: list[str] = []
        parse(text, "f.txt", problems, None)

"""Dispatching rules: which waiting lot a free tool takes next.

A rule is a key function; the tool takes the lot with the SMALLEST key. Every key starts with
the minimum-run flag (0 unless the tool still owes lots of its current setup and this lot
needs another setup), so minimum runs are kept whatever the rule.

Built-in rules (``ToolFamily.rule``) are lists of ranks (``twin.process.model.RANKS``: hp,
setup, fifo, cr), applied in order after the minimum-run flag, the sequence number last
(``rank_key``); ``dispatch_ranks(rule, family.ranks)`` gives a family's list:
  hot_first       the family's ranks (SMT2020 FWLRANK); without any: hp, setup, fifo
  least_setup     setup, then the family's other ranks; without any: setup, hp, fifo
  fifo            fifo (earliest arrival in the queue), whatever the family's ranks
  critical_ratio  hp, cr (smallest (due - now) / remaining mean processing time), fifo

Plug-in point: ``register_rule("my_rule", key)`` where ``key(lot, tool, now, setup_time)``
returns a sortable tuple. ``lot`` has ``id``, ``lot_type``, ``product``, ``priority``,
``wafers``, ``release``, ``due``, ``arrived`` (s, entered this queue), ``seq`` (a tie-breaker)
and ``step`` (``number``, ``setup``, ``rpt`` = remaining mean processing time in s);
``tool`` has ``id``, ``setup``, ``minrun_left``, ``minrun_setup``; ``setup_time`` (s) is what
this tool needs before running the lot. Then set a family's ``rule`` to ``"my_rule"``.
Ranks without cr are evaluated on per-setup heaps (same order as their key functions, much
faster on long queues); cr and registered rules scan the whole queue.
"""

from __future__ import annotations

from collections.abc import Callable

RuleKey = Callable[[object, object, float, float], tuple]


def _minrun(lot, tool) -> int:
    return 1 if tool.minrun_left > 0 and lot.step.setup != tool.minrun_setup else 0


def hot_first(lot, tool, now: float, setup_time: float) -> tuple:
    """Priority, then least setup, then FIFO (SMT2020 rule_HotLotFIRST)."""
    return (_minrun(lot, tool), -lot.priority, setup_time, lot.arrived, lot.seq)


def least_setup(lot, tool, now: float, setup_time: float) -> tuple:
    """Least setup, then priority, then FIFO (SMT2020 rule_LSSU)."""
    return (_minrun(lot, tool), setup_time, -lot.priority, lot.arrived, lot.seq)


def fifo(lot, tool, now: float, setup_time: float) -> tuple:
    """First in, first out (ignores priority)."""
    return (_minrun(lot, tool), lot.arrived, lot.seq)


def critical_ratio(lot, tool, now: float, setup_time: float) -> tuple:
    """Priority, then smallest critical ratio (time to due / remaining processing)."""
    rpt = lot.step.rpt
    cr = (lot.due - now) / rpt if rpt > 0 else 0.0
    return (_minrun(lot, tool), -lot.priority, cr, lot.arrived, lot.seq)


def _rank_value(rank: str):
    """The key part of one rank, a function of (lot, now, setup_time)."""
    if rank == "hp":
        return lambda lot, now, stt: -lot.priority
    if rank == "setup":
        return lambda lot, now, stt: stt
    if rank == "fifo":
        return lambda lot, now, stt: lot.arrived
    if rank == "cr":
        return _cr
    if rank == "started":  # the engine's own (SimConfig.unstarted_last), not a dataset rank
        return lambda lot, now, stt: 0 if lot.started else 1
    raise ValueError(f"rank {rank!r}: unknown; accepted: hp, setup, fifo, cr")


def _cr(lot, now: float, setup_time: float) -> float:
    rpt = lot.step.rpt
    return (lot.due - now) / rpt if rpt > 0 else 0.0


def rank_key(ranks: tuple[str, ...], due_ties: bool = False) -> RuleKey:
    """The key function of a list of ranks: (minimum-run flag, one value per rank, seq), with
    ``due_ties`` (SimConfig.due_ties) the lot's due date before seq."""
    parts = tuple(_rank_value(r) for r in ranks)
    if due_ties:

        def due_key(lot, tool, now: float, setup_time: float) -> tuple:
            return (
                _minrun(lot, tool),
                *(part(lot, now, setup_time) for part in parts),
                lot.due,
                lot.seq,
            )

        return due_key

    def key(lot, tool, now: float, setup_time: float) -> tuple:
        return (
            _minrun(lot, tool),
            *(part(lot, now, setup_time) for part in parts),
            lot.seq,
        )

    return key


RULES: dict[str, RuleKey] = {
    "hot_first": hot_first,
    "least_setup": least_setup,
    "fifo": fifo,
    "critical_ratio": critical_ratio,
}

# rules whose order within one setup class does not depend on the tool or the clock when the
# family lists no ranks (with ranks, any list without cr): the engine keeps their queues as
# one heap per setup instead of scanning
CLASS_RULES = frozenset({"hot_first", "least_setup", "fifo"})
BUILT_IN = frozenset(RULES)  # rules given by ranks (twin.process.model.RULE_RANKS)


def register_rule(name: str, key: RuleKey) -> None:
    """Make a dispatching rule available to the reference engine under ``name``."""
    if name in BUILT_IN:
        raise ValueError(f"rule {name!r} is built in; register the variant under another name")
    if not callable(key):
        raise TypeError(f"rule {name!r}: key must be callable (lot, tool, now, setup_time)")
    RULES[name] = key

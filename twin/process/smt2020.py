"""Loader for the SMT2020 testbed format (AutoSched-AP style tab-separated files).

A model folder holds ``part.txt`` (products and their route files), ``route_*.txt``,
``tool.txt.1l`` (tool families), ``order.txt`` (releases) and optionally ``WIP.txt``,
``setup.txt``, ``setupgrp.txt``, ``downcal.txt``, ``pmcal.txt``, ``attach.txt`` and
``fromto.txt``. Every parser takes the file's text so that it can be tested on its own; all
problems in all files are collected and raised as one InputError naming file:line:column.

Choices where the format is ambiguous (each is documented where it is made):
- uniform spread: ``ptime_spread_mode`` (``"full"``: mean ± PTIME2, default; ``"half"``).
- PTIME2 of per-piece steps is a spread per piece, like PTIME.
- ``CURSETUP`` empty in setup.txt means "from any setup"; ``SETUPGRP`` empty in setupgrp.txt
  continues the group of the line above.
- initial-WIP lots are released at DUE minus their lot type's relative due date
  (``wip_release="due"``) rather than at START, which is the same for all of them.
- ``attach.txt`` rows with an empty ``FOAUNITS`` give the first occurrence in wafers (the
  calendar is a wafer-count PM); ``REWORK`` and ``StepPercent`` are percentages.
- ``FWLRANK`` (rank_HP, rank_RSETUP, rank_FIFO, rank_CR) orders a family's queue, first rank
  first, under ``rule_HotLotFIRST``; ``rule_LSSU`` puts least setup first and then follows
  FWLRANK (HVLM's rule_LSSU families list rank_HP first: this engine has always read LSSU as
  "least setup first"); ``rule_FIFO``/``rule_CR`` are whole orders and refuse other ranks.
  ``WAKERESRANK`` is empty or ``wake_LeastSetupTime``. Anything else is refused.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from twin.errors import InputError
from twin.process.model import (
    DELAY_FAMILY,
    PER_BATCH,
    PER_LOT,
    PER_PIECE,
    PRIORITY_HOT,
    RULE_RANKS,
    SPREAD_MODES,
    Attachment,
    Dist,
    DownCalendar,
    FabModel,
    PMCalendar,
    Product,
    Release,
    Route,
    Step,
    ToolFamily,
    WipLot,
)
from twin.process.tables import (
    Row,
    choice,
    date,
    integer,
    number,
    parse_table,
    seconds,
    unit_factor,
)

DISTS = {"uniform": "uniform", "constant": "constant", "exponential": "exponential"}
PERS = {"per_piece": PER_PIECE, "per_lot": PER_LOT, "per_batch": PER_BATCH}
RULES = {"rule_hotlotfirst": "hot_first", "rule_lssu": "least_setup", "rule_fifo": "fifo"}
RULES.update({"rule_cr": "critical_ratio", "fifo": "fifo", "hot_first": "hot_first"})
# FWLRANK: the ranks of the SMT2020 models' tool.txt (HVLM: rank_HP;rank_RSETUP;rank_FIFO,
# LVHM: rank_HP;rank_RSETUP;rank_CR); definitions in twin.process.model.RANKS
FWL_RANKS = {"rank_hp": "hp", "rank_rsetup": "setup", "rank_fifo": "fifo", "rank_cr": "cr"}
RANK_NAMES = {"hp": "rank_HP", "setup": "rank_RSETUP", "fifo": "rank_FIFO", "cr": "rank_CR"}
# WAKERESRANK: which idle tool new work wakes; empty: the engine's SimConfig.wake order
WAKE_RANKS = {"": False, "wake_leastsetuptime": True}
OPTIONAL_FILES = (
    "WIP.txt",
    "setup.txt",
    "setupgrp.txt",
    "downcal.txt",
    "pmcal.txt",
    "attach.txt",
    "fromto.txt",
)


def _dist(row: Row, kind_col: str, mean_col: str, spread_col: str | None, units_col: str, p):
    """A Dist in seconds from a distribution/mean/spread/units quadruple of columns."""
    kind = choice(row, kind_col, DISTS, p)
    mean = seconds(row, mean_col, units_col, p)
    spread = 0.0
    if spread_col and row.get(spread_col):
        spread = seconds(row, spread_col, units_col, p) or 0.0
    if kind is None or mean is None:
        return None
    return Dist(kind=kind, mean=mean, spread=spread)


def parse_parts(text: str, file: str, p: list[str]) -> dict[str, tuple[Product, str]]:
    """part.txt: product name -> (Product, route file name)."""
    t = parse_table(text, file, ("PART", "ROUTEFILE", "ROUTE"), p)
    out: dict[str, tuple[Product, str]] = {}
    for row in t.rows if t else []:
        name, route, rfile = row.get("PART"), row.get("ROUTE"), row.get("ROUTEFILE")
        if not (name and route and rfile):
            p.append(f"{row.where()}: PART, ROUTE and ROUTEFILE must all be given")
            continue
        if name in out:
            p.append(f"{row.where('PART')}: product {name!r} defined twice")
        prod = Product(name=name, route=route, family=row.get("PARTFAM"), group=row.get("PARTGRP"))
        out[name] = (prod, rfile)
    return out


def parse_route(text: str, file: str, p: list[str]) -> Route | None:
    """route_N.txt: one Route (all lines must name the same ROUTE)."""
    req = ("ROUTE", "STEP", "STNFAM", "PDIST", "PTIME", "PTUNITS", "PTPER")
    t = parse_table(text, file, req, p)
    if t is None:
        return None
    names = {r.get("ROUTE") for r in t.rows}
    if len(names) != 1:
        p.append(f"{file}: expected one ROUTE name in the file, found {sorted(names)}")
        return None
    route = Route(name=names.pop())
    seen: set[int] = set()
    for row in t.rows:
        step = _parse_step(row, p)
        if step is None:
            continue
        if step.number in seen:
            p.append(f"{row.where('STEP')}: step {step.number} appears twice")
        seen.add(step.number)
        route.steps.append(step)
    return route


def _parse_step(row: Row, p: list[str]) -> Step | None:
    n0 = len(p)
    num = integer(row, "STEP", p)
    fam = row.get("STNFAM")
    if not fam:
        p.append(f"{row.where('STNFAM')}: empty; expected a tool family name")
    dist = choice(row, "PDIST", DISTS, p)
    mean = seconds(row, "PTIME", "PTUNITS", p)
    spread = seconds(row, "PTIME2", "PTUNITS", p, required=False) or 0.0
    per = choice(row, "PTPER", PERS, p)
    bmin = integer(row, "BATCHMN", p, required=per == PER_BATCH) or 0
    bmax = integer(row, "BATCHMX", p, required=per == PER_BATCH) or 0
    if per == PER_BATCH and not 0 < bmin <= bmax:
        p.append(f"{row.where('BATCHMN')}: batch sizes {bmin}..{bmax}; need 0 < BATCHMN <= BATCHMX")
    setup = row.get("SETUP") or None
    stime = 0.0
    if row.get("STIME"):
        stime = seconds(row, "STIME", "STUNITS", p) or 0.0
    b_int = seconds(row, "BatchInterval", "BatchIntUnits", p, required=False)
    p_int = seconds(row, "PartInterval", "PartIntUnits", p, required=False)
    rwk_step = integer(row, "RWKSTEP", p, required=False)
    rwk = number(row, "REWORK", p, required=False)
    if rwk is not None and not 0 <= rwk <= 100:
        p.append(f"{row.where('REWORK')}: {rwk} outside 0..100 (a percentage)")
    if (rwk_step is None) != (rwk is None):
        p.append(f"{row.where('RWKSTEP')}: RWKSTEP and REWORK must be given together")
    pct = number(row, "StepPercent", p, required=False)
    if pct is not None and not 0 <= pct <= 100:
        p.append(f"{row.where('StepPercent')}: {pct} outside 0..100 (a percentage)")
    cqt_step = integer(row, "STEP_CQT", p, required=False)
    cqt = seconds(row, "CQT", "CQTUNITS", p, required=False) if row.get("CQT") else None
    if (cqt_step is None) != (cqt is None):
        p.append(f"{row.where('STEP_CQT')}: STEP_CQT and CQT must be given together")
    same = None
    if row.get("SVESTN").lower() == "yes":
        same = integer(row, "FORSTEP", p)
    if len(p) > n0:
        return None
    return Step(
        number=num,
        family=fam,
        is_delay=fam == DELAY_FAMILY,
        description=row.get("DESC"),
        dist=dist,
        mean=mean,
        spread=spread,
        per=per,
        batch_min=bmin,
        batch_max=bmax,
        setup=setup,
        setup_time=stime,
        batch_interval=b_int,
        part_interval=p_int,
        rework_step=rwk_step,
        rework_prob=(rwk or 0.0) / 100.0,
        sampling_percent=100.0 if pct is None else pct,
        cqt_step=cqt_step,
        cqt_limit=cqt,
        same_tool_step=same,
    )


def parse_tools(text: str, file: str, p: list[str]) -> dict[str, ToolFamily]:
    """tool.txt.1l: tool families with their dispatching rule, capacity and load times."""
    t = parse_table(text, file, ("STNFAM", "RULE", "STNQTY", "STNGRP"), p)
    out: dict[str, ToolFamily] = {}
    for row in t.rows if t else []:
        n0 = len(p)
        name = row.get("STNFAM")
        if not name:
            p.append(f"{row.where('STNFAM')}: empty; expected a family name")
        count = integer(row, "STNQTY", p)
        if count is not None and count < 1:
            p.append(f"{row.where('STNQTY')}: {count}; expected >= 1 tools")
        cap = integer(row, "STNCAP", p, required=False) or 1
        if cap < 1:
            p.append(f"{row.where('STNCAP')}: {cap}; expected >= 1")
        rule = choice(row, "RULE", RULES, p)
        lt = seconds(row, "LTIME", "LTUNITS", p, required=False) if row.get("LTIME") else 0.0
        ut = seconds(row, "ULTIME", "ULTUNITS", p, required=False) if row.get("ULTIME") else 0.0
        if name in out:
            p.append(f"{row.where('STNFAM')}: family {name!r} defined twice")
        ranks = _parse_ranks(row, rule, p)
        wake = WAKE_RANKS.get(row.get("WAKERESRANK").lower())
        if wake is None:
            p.append(
                f"{row.where('WAKERESRANK')}: {_short(row.get('WAKERESRANK'))}; accepted:"
                " wake_LeastSetupTime or empty"
            )
        if len(p) > n0:
            continue
        out[name] = ToolFamily(
            name=name,
            count=count,
            area=row.get("STNGRP"),
            rule=rule,
            ranks=ranks,
            wake_least_setup=wake,
            batch_criterion=row.get("BATCHCRITF"),
            capacity=cap,
            load_time=lt or 0.0,
            unload_time=ut or 0.0,
            setup_group=row.get("SETUPGRP") or None,
            is_delay=name == DELAY_FAMILY,
        )
    return out


def _short(text: str, limit: int = 60) -> str:
    """repr of a value for a message, cut to ``limit`` characters (a hostile value is long)."""
    r = repr(text)
    return r if len(r) <= limit else f"{r[: limit - 5]}...{r[-1]} ({len(text)} characters)"


def _parse_ranks(row: Row, rule: str | None, p: list[str]) -> tuple[str, ...]:
    """FWLRANK: ``;``-separated ranks, first decides (case-insensitive, blanks skipped)."""
    text = row.get("FWLRANK")
    out: list[str] = []
    for part in text.split(";"):
        word = part.strip()
        if not word:
            continue
        rank = FWL_RANKS.get(word.lower())
        if rank is None:
            p.append(
                f"{row.where('FWLRANK')}: rank {_short(word)} unknown; accepted:"
                f" {', '.join(RANK_NAMES.values())} (separated by ';')"
            )
        elif rank in out:
            p.append(f"{row.where('FWLRANK')}: rank {word!r} listed twice in {_short(text)}")
        else:
            out.append(rank)
    own = RULE_RANKS.get(rule or "")
    if out and rule in ("fifo", "critical_ratio") and tuple(out) != own:
        # these rules are whole orders: ranks that differ would go unused
        p.append(
            f"{row.where('FWLRANK')}: {_short(text)} with RULE {row.get('RULE')!r}, which orders by"
            f" {';'.join(RANK_NAMES[r] for r in own)} alone; leave FWLRANK empty (or give"
            " exactly that), or use rule_HotLotFIRST, which follows FWLRANK"
        )
    return tuple(out)


def parse_orders(text: str, file: str, p: list[str], epoch: datetime | None) -> list[Release]:
    """order.txt: release streams; START and DUE are dates, times relative to ``epoch``."""
    req = ("LOT", "PART", "PRIOR", "PIECES", "START", "RDIST", "REPEAT", "RUNITS", "RPT#", "DUE")
    t = parse_table(text, file, req, p)
    out: list[Release] = []
    for row in t.rows if t else []:
        n0 = len(p)
        prio = integer(row, "PRIOR", p)
        wafers = integer(row, "PIECES", p)
        start, due = date(row, "START", p), date(row, "DUE", p)
        dist = choice(row, "RDIST", {"constant": "constant", "exponential": "exponential"}, p)
        interval = seconds(row, "REPEAT", "RUNITS", p)
        count = integer(row, "RPT#", p)
        per = integer(row, "LOTSPERRPT", p, required=False) or 1
        if wafers is not None and wafers < 1:
            p.append(f"{row.where('PIECES')}: {wafers}; expected >= 1 wafers per lot")
        if start and due and due < start:
            p.append(f"{row.where('DUE')}: due date before the start date")
        if len(p) > n0:
            continue
        t0 = epoch or start
        out.append(
            Release(
                lot_type=row.get("LOT"),
                product=row.get("PART"),
                priority=prio,
                wafers=wafers,
                start=(start - t0).total_seconds(),
                dist=dist,
                interval=interval,
                count=count,
                lots_per_release=per,
                due_offset=(due - start).total_seconds(),
                hot=prio >= PRIORITY_HOT or row.get("HOTLOT").lower() == "yes",
            )
        )
    return out


def lot_type_of(lot_id: str) -> str:
    """The lot type of an initial-WIP lot id: ``Init_HotLot_3_7`` -> ``HotLot_3``."""
    base = lot_id.removeprefix("Init_")
    head, sep, tail = base.rpartition("_")
    return head if sep and tail.isdigit() else base


def parse_wip(text: str, file: str, p: list[str], epoch: datetime | None) -> list[WipLot]:
    """WIP.txt: lots in the fab at time 0, waiting for step CURSTEP."""
    req = ("LOT", "PART", "PRIOR", "PIECES", "START", "CURSTEP", "DUE")
    t = parse_table(text, file, req, p)
    out: list[WipLot] = []
    seen: set[str] = set()
    for row in t.rows if t else []:
        n0 = len(p)
        lot_id = row.get("LOT")
        if not lot_id or lot_id in seen:
            p.append(f"{row.where('LOT')}: lot id {lot_id!r} is empty or repeated")
        seen.add(lot_id)
        prio, wafers = integer(row, "PRIOR", p), integer(row, "PIECES", p)
        step = integer(row, "CURSTEP", p)
        start, due = date(row, "START", p), date(row, "DUE", p)
        if len(p) > n0:
            continue
        t0 = epoch or start
        out.append(
            WipLot(
                id=lot_id,
                lot_type=lot_type_of(lot_id),
                product=row.get("PART"),
                step=step,
                priority=prio,
                wafers=wafers,
                release=(start - t0).total_seconds(),
                due=(due - t0).total_seconds(),
            )
        )
    return out


def parse_setups(text: str, file: str, p: list[str]) -> dict[tuple[str | None, str], float]:
    """setup.txt: (from setup or None for any, to setup) -> seconds."""
    t = parse_table(text, file, ("CURSETUP", "NEWSETUP", "STIME", "STUNITS"), p)
    out: dict[tuple[str | None, str], float] = {}
    for row in t.rows if t else []:
        new = row.get("NEWSETUP")
        s = seconds(row, "STIME", "STUNITS", p)
        if not new:
            p.append(f"{row.where('NEWSETUP')}: empty; expected the setup changed to")
        elif s is not None:
            out[(row.get("CURSETUP") or None, new)] = s
    return out


def parse_setup_groups(text: str, file: str, p: list[str]):
    """setupgrp.txt: (group -> setups, setup -> minimum run in lots)."""
    t = parse_table(text, file, ("SETUPGRP", "SETUP", "MINRUN"), p)
    groups: dict[str, list[str]] = {}
    min_runs: dict[str, int] = {}
    group = ""
    for row in t.rows if t else []:
        group = row.get("SETUPGRP") or group  # empty: continues the group above
        setup, run = row.get("SETUP"), integer(row, "MINRUN", p)
        if not group or not setup:
            p.append(f"{row.where()}: needs a SETUP and a SETUPGRP (here or on a line above)")
            continue
        if run is not None and run < 0:
            p.append(f"{row.where('MINRUN')}: {run}; expected >= 0 lots")
        elif run is not None:
            groups.setdefault(group, []).append(setup)
            min_runs[setup] = run
    return groups, min_runs


def parse_downcal(text: str, file: str, p: list[str]) -> dict[str, DownCalendar]:
    """downcal.txt: unscheduled-down calendars (time between failures, repair time)."""
    req = ("DOWNCALNAME", "MTTFDIST", "MTTF", "MTTFUNITS", "MTTRDIST", "MTTR", "MTTRUNITS")
    t = parse_table(text, file, req, p)
    out: dict[str, DownCalendar] = {}
    for row in t.rows if t else []:
        f = _dist(row, "MTTFDIST", "MTTF", None, "MTTFUNITS", p)
        r = _dist(
            row, "MTTRDIST", "MTTR", "MTTR2" if "MTTR2" in row.values else None, "MTTRUNITS", p
        )
        if f and r:
            out[row.get("DOWNCALNAME")] = DownCalendar(name=row.get("DOWNCALNAME"), mttf=f, mttr=r)
    return out


def parse_pmcal(text: str, file: str, p: list[str]) -> dict[str, PMCalendar]:
    """pmcal.txt: PM calendars, by calendar time (mtbpm_by_cal) or wafers (mtbpm_by_pieces)."""
    req = ("PMCALNAME", "PMCALTYPE", "MTBPM", "MTBPMUNITS", "MTTRDIST", "MTTR", "MTTRUNITS")
    t = parse_table(text, file, req, p)
    out: dict[str, PMCalendar] = {}
    kinds = {"mtbpm_by_cal": "time", "mtbpm_by_pieces": "wafers"}
    for row in t.rows if t else []:
        by = choice(row, "PMCALTYPE", kinds, p)
        if by == "time":
            interval = seconds(row, "MTBPM", "MTBPMUNITS", p)
        else:
            interval = number(row, "MTBPM", p)
        dur = _dist(row, "MTTRDIST", "MTTR", "MTTR2", "MTTRUNITS", p)
        if interval is not None and interval <= 0:
            p.append(f"{row.where('MTBPM')}: {interval}; expected > 0")
            continue
        if by and interval is not None and dur:
            name = row.get("PMCALNAME")
            out[name] = PMCalendar(name=name, by=by, interval=interval, duration=dur)
    return out


def parse_attach(text: str, file: str, p: list[str]) -> list[Attachment]:
    """attach.txt: which calendar applies to which area (stngrp) or family (stnfam)."""
    req = ("CALNAME", "CALTYPE", "RESTYPE", "RESNAME", "FOADIST", "FOA", "FOAUNITS")
    t = parse_table(text, file, req, p)
    out: list[Attachment] = []
    for row in t.rows if t else []:
        n0 = len(p)
        kind = choice(row, "CALTYPE", {"down": "down", "pm": "pm"}, p)
        target = choice(row, "RESTYPE", {"stngrp": "area", "stnfam": "family"}, p)
        fdist = choice(row, "FOADIST", DISTS, p)
        first = number(row, "FOA", p)
        if row.get("FOAUNITS") and first is not None:  # a time; empty units: wafers
            factor = unit_factor(row, "FOAUNITS", p)
            first = first * factor if factor else None
        if len(p) > n0 or first is None:
            continue
        out.append(
            Attachment(
                calendar=row.get("CALNAME"),
                kind=kind,
                target_kind=target,
                target=row.get("RESNAME"),
                first=Dist(kind=fdist, mean=first),
            )
        )
    return out


def parse_fromto(text: str, file: str, p: list[str]) -> Dist | None:
    """fromto.txt: the transport time between steps (one Fab -> Fab line is supported)."""
    t = parse_table(text, file, ("FROMLOC", "TOLOC", "DDIST", "DTIME", "DUNITS"), p)
    if t is None or not t.rows:
        return None
    if len(t.rows) > 1:
        p.append(f"{t.rows[1].where()}: only one FROMLOC/TOLOC line is supported")
    return _dist(t.rows[0], "DDIST", "DTIME", "DTIME2", "DUNITS", p)


def _read(folder: Path, name: str, p: list[str]) -> str | None:
    path = folder / name
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        p.append(f"{name}: cannot be read ({exc.strerror or exc})")
        return None


def load_model(
    path: str | Path,
    *,
    ptime_spread_mode: str = "full",
    wip_release: str = "due",
    tool_file: str | None = None,
) -> FabModel:
    """Read an SMT2020-format folder into a FabModel (times in seconds).

    ``ptime_spread_mode``: "full" (uniform support mean ± PTIME2, default) or "half".
    ``wip_release``: the release time of an initial-WIP lot. WIP.txt gives every lot the same
    START (time 0), which would make lots near the end of their route look brand new; "due"
    (default) dates the release back to DUE minus the relative due date of the lot type in
    order.txt, "start" keeps START.
    ``tool_file``: the tool-family table; default ``tool.txt.1l`` (the AutoSched export's name),
    else ``tool.txt`` when only that exists (the name the project's own demo fab uses).
    Raises InputError listing every problem with file:line:column.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(f"SMT2020 model {folder}", [f"{folder}: not a folder"])
    if tool_file is None:
        plain = not (folder / "tool.txt.1l").exists() and (folder / "tool.txt").exists()
        tool_file = "tool.txt" if plain else "tool.txt.1l"
    p: list[str] = []
    if ptime_spread_mode not in SPREAD_MODES:
        p.append(f"ptime_spread_mode {ptime_spread_mode!r}; accepted: {', '.join(SPREAD_MODES)}")
    if wip_release not in ("due", "start"):
        p.append(f"wip_release {wip_release!r}; accepted: due, start")
    model = FabModel(name=folder.name, ptime_spread_mode=ptime_spread_mode)
    parts = parse_parts(_read(folder, "part.txt", p) or "", "part.txt", p)
    for prod, rfile in parts.values():
        model.products[prod.name] = prod
        text = _read(folder, rfile, p)
        if text is not None:
            route = parse_route(text, rfile, p)
            if route is not None:
                if route.name != prod.route:
                    p.append(f"{rfile}: ROUTE {route.name!r} but part.txt says {prod.route!r}")
                model.routes[prod.route] = route
    text = _read(folder, tool_file, p)
    model.families = parse_tools(text, tool_file, p) if text is not None else {}
    epoch = _epoch(folder)
    model.epoch = epoch.isoformat() if epoch else ""
    if (folder / "order.txt").exists():
        model.releases = parse_orders(_read(folder, "order.txt", p) or "", "order.txt", p, epoch)
    present = {n for n in OPTIONAL_FILES if (folder / n).exists()}
    texts = {n: _read(folder, n, p) or "" for n in present}
    if "WIP.txt" in present:
        model.wip = parse_wip(texts["WIP.txt"], "WIP.txt", p, epoch)
        if wip_release == "due":
            offsets = {r.lot_type: r.due_offset for r in model.releases}
            for lot in model.wip:
                if lot.lot_type in offsets:
                    lot.release = lot.due - offsets[lot.lot_type]
    if "setup.txt" in present:
        model.setup_times = parse_setups(texts["setup.txt"], "setup.txt", p)
    if "setupgrp.txt" in present:
        model.setup_groups, model.min_runs = parse_setup_groups(
            texts["setupgrp.txt"], "setupgrp.txt", p
        )
    if "downcal.txt" in present:
        model.downs = parse_downcal(texts["downcal.txt"], "downcal.txt", p)
    if "pmcal.txt" in present:
        model.pms = parse_pmcal(texts["pmcal.txt"], "pmcal.txt", p)
    if "attach.txt" in present:
        model.attachments = parse_attach(texts["attach.txt"], "attach.txt", p)
    if "fromto.txt" in present:
        model.transport = parse_fromto(texts["fromto.txt"], "fromto.txt", p) or Dist()
    if not p:
        p.extend(model.validate())
    if p:
        raise InputError(f"SMT2020 model {folder}", p)
    return model


def _epoch(folder: Path) -> datetime | None:
    """Time zero of the model: the earliest START in order.txt (WIP.txt if none)."""
    starts: list[datetime] = []
    for name in ("order.txt", "WIP.txt"):
        try:
            lines = (folder / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if not lines:
            continue
        header = lines[0].split("\t")
        if "START" not in header:
            continue
        i = header.index("START")
        for line in lines[1:]:
            parts = line.split("\t")
            if i < len(parts):
                try:
                    starts.append(datetime.strptime(parts[i].strip(), "%m/%d/%y %H:%M:%S"))
                except ValueError:
                    pass  # reported by the parser of the file
        if starts:
            break
    return min(starts) if starts else None

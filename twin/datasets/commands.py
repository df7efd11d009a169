"""`twin datasets list | fetch NAME... | path NAME`: the public reference datasets by name."""

from __future__ import annotations

import argparse
import json
import sys

from twin.datasets import DatasetMissing, dataset, dataset_path, datasets_dir
from twin.datasets.catalog import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list, fetch and locate the public reference datasets (SMT2020 HVLM, SMAT2022)",
        description="The public datasets the twin reads, by name. They are downloaded from their "
        "pinned upstream files and checked by SHA-256 into the datasets folder: $TWIN_DATASETS, "
        "else ../shared/datasets beside a checkout, else ~/.cache/twin/datasets.",
    )
    verbs = p.add_subparsers(dest="verb", metavar="SUBCOMMAND", required=True)
    ls = verbs.add_parser("list", help="the known datasets, where they go, whether present")
    ls.add_argument("--json", action="store_true", help="one JSON object on stdout")
    ls.set_defaults(func=_list)
    fe = verbs.add_parser("fetch", help="download datasets (skips files already present)")
    fe.add_argument("names", nargs="+", metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    fe.set_defaults(func=_fetch)
    pa = verbs.add_parser("path", help="print where a dataset is (fails if it is not there)")
    pa.add_argument("name", metavar="NAME", help=f"one of: {', '.join(DATASETS)}")
    pa.set_defaults(func=_path)


def _present(name: str) -> bool:
    try:
        dataset_path(name)
    except DatasetMissing:
        return False
    return True


def _list(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": d.name,
            "title": d.title,
            "path": str(dataset_path(d.name, check=False)),
            "files": len(d.files),
            "present": _present(d.name),
        }
        for d in DATASETS.values()
    ]
    if args.json:
        print(json.dumps({"folder": str(datasets_dir()), "datasets": rows}, indent=2))
        return 0
    print(f"datasets folder: {datasets_dir()}")
    for r in rows:
        state = "present" if r["present"] else f"missing: twin datasets fetch {r['name']}"
        print(f"  {r['name']:<14} {r['title']}\n  {'':<14} {r['path']} ({state})")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    for name in args.names:
        dataset(name)  # every name is checked before anything is downloaded
    for name in args.names:
        print(f"{name}:", file=sys.stderr)
        from twin.datasets.fetch import fetch

        path = fetch(name, say=lambda line: print(f"  {line}", file=sys.stderr))
        print(path)
    return 0


def _path(args: argparse.Namespace) -> int:
    print(dataset_path(args.name))
    return 0

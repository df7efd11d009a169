"""Download a named dataset from its pinned upstream files, checked by SHA-256.

Each file is downloaded (with pooch) into ``.partial/`` inside the datasets folder, hashed, and
moved into place only if the hash is the pinned one, so an interrupted or corrupted download
never leaves a file where the loaders look. ``.partial/`` is emptied at the start of each fetch
(a process killed mid-download leaves its temporary file there). A file already in place with
the right hash is not downloaded again; one with another hash is replaced.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from twin.datasets import DatasetMissing, dataset, datasets_dir
from twin.datasets.catalog import UPSTREAM, DataFile


class DatasetFetchError(DatasetMissing):
    """A download failed or gave the wrong bytes; nothing half-written was kept."""


def base_url() -> str:
    """UPSTREAM, or the prefix $TWIN_DATASETS_URL puts in its place (a mirror or a test server)."""
    url = os.environ.get("TWIN_DATASETS_URL") or UPSTREAM
    return url if url.endswith("/") else url + "/"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    name: str,
    *,
    root: Path | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Path:
    """Make dataset NAME complete under ``root`` (default: the datasets folder); its path.

    ``progress``: a download bar per file (None: only when stderr is a terminal).
    """
    entry = dataset(name)
    root = Path(root) if root is not None else datasets_dir()
    partial = root / ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    for file in entry.files:
        target = root / file.local
        if target.is_file() and sha256(target) == file.sha256:
            say(f"{file.local}: present, SHA-256 checked")
            continue
        _download(file, target, partial, progress, name)
        say(f"{file.local}: downloaded, SHA-256 checked")
    shutil.rmtree(partial, ignore_errors=True)
    return root / entry.folder


def _download(
    file: DataFile, target: Path, partial: Path, progress: bool | None, name: str
) -> None:
    import pooch
    import requests

    url = base_url() + file.remote
    try:
        partial.mkdir(parents=True, exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetFetchError(
            f"cannot write the datasets folder {target.parent}: {exc.strerror}; set TWIN_DATASETS "
            "to a writable folder"
        ) from None
    if progress is None:
        progress = sys.stderr.isatty()
    staged = partial / Path(file.local).name
    pooch.get_logger().setLevel("WARNING")  # it logs every hash at INFO; we check our own
    try:
        pooch.retrieve(url, known_hash=None, fname=staged.name, path=partial, progressbar=progress)
    except requests.exceptions.RequestException as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise DatasetFetchError(
            f"could not download {file.local} of {name} from {url}: {type(exc).__name__}: "
            f"{_first_line(exc)}. Nothing half-written was kept. If this machine is offline, get "
            f"the file by hand from that URL (SHA-256 {file.sha256}) into "
            f"{target}, or set TWIN_DATASETS to a folder that holds the datasets, or "
            "TWIN_DATASETS_URL to a mirror"
        ) from None
    got = sha256(staged)
    if got != file.sha256:
        shutil.rmtree(partial, ignore_errors=True)
        raise DatasetFetchError(
            f"{file.local} of {name} from {url} has SHA-256 {got}, expected {file.sha256}; the "
            "file was not kept (a wrong mirror, a proxy that rewrites, or a damaged download)"
        )
    os.replace(staged, target)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else "no detail"

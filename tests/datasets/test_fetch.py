"""`twin datasets`: the real download code against a local HTTP server serving the shared copies
under the upstream paths (TWIN_DATASETS_URL points at it)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from twin.cli import main
from twin.datasets import DatasetMissing, dataset_path, datasets_dir
from twin.datasets.catalog import DATASETS
from twin.datasets.fetch import DatasetFetchError, fetch

SHARED = datasets_dir()  # the team's copies (TWIN_DATASETS or ../shared/datasets)


class Upstream:
    """What the local server serves: every catalog file by its remote path, with faults."""

    def __init__(self) -> None:
        self.files = {
            "/" + f.remote: (SHARED / f.local).read_bytes()
            for d in DATASETS.values()
            for f in d.files
            if (SHARED / f.local).is_file()
        }
        self.corrupt: set[str] = set()  # remote paths served with one byte changed
        self.truncate: set[str] = set()  # remote paths cut off half way, then the socket closed
        self.requests: list[str] = []


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Upstream]:
    if not (SHARED / "smt2020/HVLM/route_3.txt").exists():
        pytest.skip(f"the shared dataset copies are not at {SHARED}: `twin datasets fetch` them")
    up = Upstream()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            up.requests.append(self.path)
            body = up.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            if self.path in up.corrupt:
                body = bytes([body[0] ^ 1]) + body[1:]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in up.truncate:
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops mid-body
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TWIN_DATASETS_URL", f"http://127.0.0.1:{server.server_address[1]}/")
    monkeypatch.setenv("TWIN_DATASETS", str(tmp_path / "cache"))
    yield up
    server.shutdown()
    server.server_close()


def _remote(name: str, local_name: str) -> str:
    return "/" + next(f.remote for f in DATASETS[name].files if f.local.endswith(local_name))


def test_fetch_downloads_every_file_byte_identical_and_the_loader_reads_it(upstream, tmp_path):
    """fetch gets all 12 HVLM files and the SMAT2022 workbook, each equal to the shared copy, and
    the model loader and the SMAT2022 reader run on the fetched files."""
    hvlm = fetch("smt2020-hvlm")
    smat = fetch("smat2022")
    for d in DATASETS.values():
        for f in d.files:
            got = (tmp_path / "cache" / f.local).read_bytes()
            assert got == (SHARED / f.local).read_bytes(), f.local
            assert hashlib.sha256(got).hexdigest() == f.sha256
    assert len(upstream.requests) == 13
    assert dataset_path("smt2020-hvlm") == hvlm and dataset_path("smat2022") == smat
    assert not (tmp_path / "cache" / ".partial").exists()

    from twin.process import load_model

    model = load_model(hvlm)
    assert len(model.families) >= 105


def test_second_fetch_downloads_nothing_and_repairs_a_damaged_file(upstream, tmp_path):
    """Files present with the pinned hash are not downloaded again; a damaged one is replaced."""
    fetch("smt2020-hvlm")
    first = len(upstream.requests)
    fetch("smt2020-hvlm")
    assert len(upstream.requests) == first
    victim = tmp_path / "cache" / "smt2020/HVLM/route_4.txt"
    victim.write_bytes(b"damaged")
    fetch("smt2020-hvlm")
    assert upstream.requests[first:] == [_remote("smt2020-hvlm", "route_4.txt")]
    assert victim.read_bytes() == (SHARED / "smt2020/HVLM/route_4.txt").read_bytes()


def test_corrupted_download_names_the_file_and_both_hashes_and_keeps_nothing(upstream, tmp_path):
    """A file whose bytes differ from the pin is an error naming it and both hashes; it is not
    kept where the loaders look, nor in .partial."""
    remote = _remote("smt2020-hvlm", "tool.txt.1l")
    upstream.corrupt.add(remote)
    pinned = next(f.sha256 for f in DATASETS["smt2020-hvlm"].files if f.remote == remote[1:])
    with pytest.raises(DatasetFetchError) as err:
        fetch("smt2020-hvlm")
    text = str(err.value)
    body = upstream.files[remote]
    bad = hashlib.sha256(bytes([body[0] ^ 1]) + body[1:]).hexdigest()
    assert "tool.txt.1l" in text and pinned in text and bad in text
    assert not (tmp_path / "cache/smt2020/HVLM/tool.txt.1l").exists()
    assert not (tmp_path / "cache/.partial").exists()
    with pytest.raises(DatasetMissing, match="twin datasets fetch smt2020-hvlm"):
        dataset_path("smt2020-hvlm")


def test_interrupted_download_leaves_nothing_half_written(upstream, tmp_path):
    """A connection that drops mid-file is an error; no partial file is left in the cache."""
    upstream.truncate.add(_remote("smat2022", ".xlsx"))
    with pytest.raises(DatasetFetchError, match="Nothing half-written was kept"):
        fetch("smat2022")
    cache = tmp_path / "cache"
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_a_killed_fetch_leftover_is_cleared_by_the_next_fetch(upstream, tmp_path):
    """A temporary file left by a process killed mid-download is removed by the next fetch."""
    leftover = tmp_path / "cache" / ".partial" / "tmpabc123"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half a file")
    fetch("smat2022")
    assert not leftover.exists()


def test_offline_without_cache_says_how_to_get_the_data_by_hand(monkeypatch, tmp_path):
    """No server to reach and nothing cached: the error gives the URL, the pinned hash, where the
    file goes, and the TWIN_DATASETS alternative."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("TWIN_DATASETS_URL", f"http://127.0.0.1:{port}/")
    monkeypatch.setenv("TWIN_DATASETS", str(tmp_path / "cache"))
    with pytest.raises(DatasetFetchError) as err:
        fetch("smat2022")
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and "by hand" in text and "TWIN_DATASETS" in text
    assert DATASETS["smat2022"].files[0].sha256 in text
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("name", ["\ud800", "x" * 100_000, "../../etc/passwd", "", "SMAT2022"])
def test_hostile_names_are_refused_listing_the_known_ones(name, tmp_path, monkeypatch, capsys):
    """An unknown, hostile or huge dataset name is one error that lists the known names; nothing
    is downloaded or written."""
    monkeypatch.setenv("TWIN_DATASETS", str(tmp_path / "cache"))
    monkeypatch.setenv("TWIN_DATASETS_URL", "http://127.0.0.1:9/")
    assert main(["datasets", "fetch", "smat2022", name]) != 0
    err = capsys.readouterr().err
    assert "known: smat2022, smt2020-hvlm" in err
    assert len(err) < 1_000  # a huge name is cut, not echoed whole
    assert not (tmp_path / "cache").exists()


def test_cli_list_and_path(upstream, tmp_path, capsys):
    """`datasets list --json` reports presence; `path` prints the folder once fetched and fails
    naming the fetch command before."""
    import json

    assert main(["datasets", "path", "smt2020-hvlm"]) != 0
    assert "twin datasets fetch smt2020-hvlm" in capsys.readouterr().err
    assert main(["datasets", "fetch", "smt2020-hvlm"]) == 0
    capsys.readouterr()
    assert main(["datasets", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["datasets"]}
    assert rows["smt2020-hvlm"]["present"] and not rows["smat2022"]["present"]
    assert main(["datasets", "path", "smt2020-hvlm"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "cache" / "smt2020" / "HVLM")

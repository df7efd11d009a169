"""Scan files: round trips through open3d, and one clear error for every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest

from twin.errors import InputError, UnsupportedFormatError
from twin.scan.io import read_scan, write_scan


@pytest.mark.parametrize("ext", ["ply", "pcd", "xyz"])
def test_round_trip(tmp_path, ext):
    """Points written in each accepted format read back unchanged (to float precision)."""
    pts = np.random.default_rng(1).uniform(-50, 50, size=(1000, 3))
    path = write_scan(tmp_path / f"cloud.{ext}", pts)
    back = read_scan(path)
    assert back.shape == pts.shape
    assert np.allclose(back, pts, atol=1e-4)


def _error(path) -> str:
    with pytest.raises(InputError) as err:
        read_scan(path)
    text = str(err.value)
    assert str(path) in text, "the error names the file"
    assert "accepted: PLY" in text and "PCD" in text, "the error lists the accepted formats"
    return text


def test_missing_file(tmp_path):
    """A scan that does not exist is an InputError naming it, not an empty cloud."""
    assert "not found" in _error(tmp_path / "nowhere.ply")


def test_empty_file(tmp_path):
    """A zero-byte scan file is reported as empty."""
    path = tmp_path / "empty.ply"
    path.write_bytes(b"")
    assert "empty" in _error(path)


def test_garbage_ply(tmp_path):
    """Bytes that are not a PLY file are refused with the reason."""
    path = tmp_path / "garbage.ply"
    path.write_bytes(b"\x00\x01garbage" * 50)
    assert "not a PLY file" in _error(path)


def test_truncated_ascii_ply(tmp_path):
    """A PLY whose header declares more vertices than the file holds is truncated (open3d would pad)."""
    path = tmp_path / "short.ply"
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n1 2 3\n"
    )
    assert "truncated" in _error(path)


def test_truncated_binary_ply(tmp_path):
    """A binary PLY cut short is refused with the byte counts."""
    path = write_scan(tmp_path / "cut.ply", np.ones((100, 3)))
    path.write_bytes(path.read_bytes()[:-50])
    assert "truncated" in _error(path)


def test_ply_without_vertices(tmp_path):
    """A PLY declaring zero vertices is an empty scan."""
    path = tmp_path / "none.ply"
    path.write_text(
        "ply\nformat ascii 1.0\nelement vertex 0\nproperty float x\nproperty float y\n"
        "property float z\nend_header\n"
    )
    assert "0 vertices" in _error(path)


def test_pcd_problems_listed_together(tmp_path):
    """A PCD header with several faults reports all of them at once."""
    path = tmp_path / "bad.pcd"
    path.write_text("VERSION .7\nFIELDS a b\nSIZE 4 4\nTYPE F F\nCOUNT 1 1\nPOINTS 0\nDATA weird\n")
    with pytest.raises(InputError) as err:
        read_scan(path)
    assert len(err.value.problems) == 3


def test_garbage_xyz(tmp_path):
    """An XYZ file whose first row is not three numbers is refused."""
    path = tmp_path / "words.xyz"
    path.write_text("hello world\n")
    assert "not 'x y z'" in _error(path)


def test_all_nan(tmp_path):
    """A scan whose points are all NaN has nothing to align."""
    path = tmp_path / "nan.xyz"
    path.write_text("nan nan nan\nnan 1 2\n")
    assert "NaN" in _error(path)


def test_nan_points_dropped(tmp_path):
    """Non-finite points are dropped, finite ones kept."""
    path = tmp_path / "some.xyz"
    path.write_text("1 2 3\nnan 1 2\n4 5 6\n")
    assert read_scan(path).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_unknown_format(tmp_path):
    """An unknown extension names the format and the supported ones."""
    with pytest.raises(UnsupportedFormatError, match="pcd, ply, xyz"):
        read_scan(tmp_path / "scan.las")

"""`twin ... | head` ends quietly: a closed stdout is not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWIN = [sys.executable, "-m", "twin.cli"]


@pytest.mark.parametrize(
    "argv",
    [
        ["scene", "check", "scenes/demo-fab", "--json"],
        ["emulate", "scenes/demo-fab", "--hours", "2", "--out", "-"],
        ["datasets", "list", "--json"],
    ],
    ids=["scene-check", "emulate", "datasets-list"],
)
def test_a_reader_that_goes_away_ends_the_command_quietly(argv: list[str]) -> None:
    """Piped into a reader that takes one line and closes, the command prints no traceback and
    exits with 141 (128 + SIGPIPE) or 0."""
    twin = subprocess.Popen(
        [*TWIN, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert twin.stdout is not None
    first = twin.stdout.readline()
    twin.stdout.close()  # what `head -1` does after its line
    _, err = twin.communicate(timeout=120)
    assert first.strip()
    assert b"Traceback" not in err and b"BrokenPipeError" not in err, err.decode()[-2000:]
    assert twin.returncode in (0, 141), (twin.returncode, err.decode()[-2000:])


def test_ingest_progress_only_on_a_terminal_and_transparent(tmp_path: Path) -> None:
    """`twin ingest` wraps its source in a progress counter only when stderr is a terminal; the
    wrapper passes every message, the end of the stream and the MQTT hooks through."""
    from twin.live.commands import _Progress, _with_progress

    class Source:
        def __init__(self) -> None:
            self.left = [1, 2, 3]
            self.confirmed = None

        def receive(self, n: int, timeout: float) -> list:
            out, self.left = self.left[:n], self.left[n:]
            return out

        @property
        def exhausted(self) -> bool:
            return not self.left

        def confirm(self, positions: dict) -> None:
            self.confirmed = positions

        def close(self) -> None:
            pass

    plain = Source()
    assert _with_progress(plain, quiet=False) is plain  # pytest's stderr is no terminal
    import io

    shown = io.StringIO()
    wrapped = _Progress(Source(), file=shown, disable=False)
    got = wrapped.receive(2, 0.0) + wrapped.receive(5, 0.0)
    assert got == [1, 2, 3] and wrapped.exhausted and wrapped.bar.n == 3
    wrapped.confirm({"mes": 3})
    assert wrapped.source.confirmed == {"mes": 3}
    wrapped.close()
    assert "ingest:" in shown.getvalue()  # the counter was drawn (it redraws at most 10x/s)


def test_emulate_without_out_says_where_the_events_went() -> None:
    """`twin emulate` with neither --out nor --mqtt says the events went nowhere and how to
    keep them, instead of discarding them silently."""
    done = subprocess.run(
        [*TWIN, "emulate", "scenes/demo-fab", "--hours", "1"], cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "went nowhere" in done.stderr and "--out FILE" in done.stderr


def test_emulate_progress_counts_fab_hours() -> None:
    """The emulate progress wrapper passes every event on and advances in fab hours."""
    import io

    from twin.emulator.commands import _Progress

    class Ev:
        def __init__(self, t: float) -> None:
            self.time = t

    got = []

    class Sink:
        def publish(self, e) -> None:
            got.append(e)

    p = _Progress(Sink(), start=1000.0, hours=2.0)
    p.bar.close()
    from tqdm import tqdm

    p.bar = tqdm(total=2.0, file=io.StringIO(), disable=False)
    for i in range(1000):
        p.publish(Ev(1000.0 + i * 3.6))  # 1000 events over one fab hour
    assert len(got) == 1000 and abs(p.bar.n - 3596.4 / 3600) < 1e-9

"""Stores of demo-fab history (twin.forecast.history: the reference engine as the "real" fab,
MES events only), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scenes" / "demo-fab"
TRUTH = """\
scenarios:
  - name: litho-slower
    description: the real fab's litho runs 20 % longer than designed
    changes:
      - processing_time: {family: Litho_FE_3, factor: 1.2}
"""


def make_history(path: Path, days: float, seed: int = 1, truth: Path | None = None) -> Path:
    from twin.forecast.history import truth_model, write_history
    from twin.forecast.source import load_models
    from twin.process.toolmap import ToolIdMap

    model, scene = load_models(DEMO)
    tool_map = ToolIdMap.from_scene(scene, model)
    real = truth_model(model, truth) if truth is not None else model
    write_history(path, real, tool_map, days=days, seed=seed, initial_wip=False)
    return path


@pytest.fixture(scope="session")
def truth_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("truth") / "truth.yaml"
    p.write_text(TRUTH)
    return p


@pytest.fixture(scope="session")
def short_store(tmp_path_factory) -> Path:
    """Six days of the design fab (seed 1)."""
    return make_history(tmp_path_factory.mktemp("hist") / "six.db", 6.0)


@pytest.fixture(scope="session")
def truth_store(tmp_path_factory, truth_file) -> Path:
    """40 days of a fab whose litho is 20 % slower than the design (seed 1)."""
    return make_history(tmp_path_factory.mktemp("hist") / "truth.db", 40.0, truth=truth_file)

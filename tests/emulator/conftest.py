"""Fixtures for the emulator tests: the live tests' real Mosquitto broker."""

from __future__ import annotations

from tests.live.conftest import broker  # noqa: F401  (a fixture, used by name)

"""Colours for rendering: a stable colour per tool family and one per SEMI E10 state."""

from __future__ import annotations

import colorsys
import hashlib

_STATE_RGBA = {
    "productive": (0.15, 0.70, 0.25, 1.0),  # green
    "standby": (0.95, 0.80, 0.15, 1.0),  # yellow
    "engineering": (0.20, 0.45, 0.90, 1.0),  # blue
    "scheduled_down": (0.95, 0.50, 0.10, 1.0),  # orange
    "unscheduled_down": (0.85, 0.10, 0.10, 1.0),  # red
    "non_scheduled": (0.55, 0.55, 0.55, 1.0),  # grey
}


def family_colour(family: str) -> tuple[float, float, float, float]:
    """A colour that depends only on the family name (stable across runs and machines)."""
    digest = hashlib.md5(family.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 65535.0
    sat = 0.45 + 0.35 * digest[2] / 255.0
    val = 0.70 + 0.25 * digest[3] / 255.0
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return (round(r, 4), round(g, 4), round(b, 4), 1.0)


def state_colour(state: str) -> tuple[float, float, float, float]:
    """The colour of an E10 state (KeyError for anything else; callers validate first)."""
    return _STATE_RGBA[state]

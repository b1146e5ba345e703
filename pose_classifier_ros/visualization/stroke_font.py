"""A tiny stroke (vector) font: text as line segments, so it can travel in a visualization_msgs/ImageMarker.

ImageMarker has no TEXT type (CIRCLE, LINE_STRIP, LINE_LIST, POLYGON, POINTS only), so labels drawn by
any ImageMarker viewer (Foxglove's Image panel) must be made of lines. Glyphs are polylines on a grid 4
units wide and 6 units tall (y down); text is upper-cased; characters without a glyph draw as a box.
"""

from __future__ import annotations

import functools

import numpy as np

CELL_W, CELL_H, ADVANCE = 4.0, 6.0, 6.0  # glyph box and pen advance, grid units

_O = ((1, 0), (3, 0), (4, 1), (4, 5), (3, 6), (1, 6), (0, 5), (0, 1), (1, 0))
_P = ((0, 6), (0, 0), (3, 0), (4, 1), (4, 2), (3, 3), (0, 3))
_GLYPHS: dict[str, tuple] = {
    "A": (((0, 6), (0, 2), (2, 0), (4, 2), (4, 6)), ((0, 3.5), (4, 3.5))),
    "B": (((0, 0), (0, 6), (3, 6), (4, 5), (4, 4), (3, 3), (0, 3)), ((0, 0), (3, 0), (4, 1), (4, 2), (3, 3))),
    "C": (((4, 1), (3, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5)),),
    "D": (((0, 0), (0, 6), (2, 6), (4, 4), (4, 2), (2, 0), (0, 0)),),
    "E": (((4, 0), (0, 0), (0, 6), (4, 6)), ((0, 3), (3, 3))),
    "F": (((4, 0), (0, 0), (0, 6)), ((0, 3), (3, 3))),
    "G": (((4, 1), (3, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 3), (2, 3)),),
    "H": (((0, 0), (0, 6)), ((4, 0), (4, 6)), ((0, 3), (4, 3))),
    "I": (((1, 0), (3, 0)), ((2, 0), (2, 6)), ((1, 6), (3, 6))),
    "J": (((4, 0), (4, 5), (3, 6), (1, 6), (0, 5)),),
    "K": (((0, 0), (0, 6)), ((4, 0), (0, 4)), ((1.5, 3), (4, 6))),
    "L": (((0, 0), (0, 6), (4, 6)),),
    "M": (((0, 6), (0, 0), (2, 3), (4, 0), (4, 6)),),
    "N": (((0, 6), (0, 0), (4, 6), (4, 0)),),
    "O": (_O,),
    "P": (_P,),
    "Q": (_O, ((2.5, 4.5), (4, 6))),
    "R": (_P, ((2, 3), (4, 6))),
    "S": (((4, 1), (3, 0), (1, 0), (0, 1), (0, 2), (1, 3), (3, 3), (4, 4), (4, 5), (3, 6), (1, 6), (0, 5)),),
    "T": (((0, 0), (4, 0)), ((2, 0), (2, 6))),
    "U": (((0, 0), (0, 5), (1, 6), (3, 6), (4, 5), (4, 0)),),
    "V": (((0, 0), (2, 6), (4, 0)),),
    "W": (((0, 0), (1, 6), (2, 3), (3, 6), (4, 0)),),
    "X": (((0, 0), (4, 6)), ((4, 0), (0, 6))),
    "Y": (((0, 0), (2, 3), (4, 0)), ((2, 3), (2, 6))),
    "Z": (((0, 0), (4, 0), (0, 6), (4, 6)),),
    "0": (_O, ((4, 1), (0, 5))),
    "1": (((1, 1), (2, 0), (2, 6)), ((1, 6), (3, 6))),
    "2": (((0, 1), (1, 0), (3, 0), (4, 1), (4, 2), (0, 6), (4, 6)),),
    "3": (((0, 0), (4, 0), (2, 2.5), (3, 2.5), (4, 3.5), (4, 5), (3, 6), (1, 6), (0, 5)),),
    "4": (((3, 6), (3, 0), (0, 4), (4, 4)),),
    "5": (((4, 0), (0, 0), (0, 3), (3, 3), (4, 4), (4, 5), (3, 6), (0, 6)),),
    "6": (((3, 0), (1, 0), (0, 1), (0, 5), (1, 6), (3, 6), (4, 5), (4, 4), (3, 3), (0, 3)),),
    "7": (((0, 0), (4, 0), (1, 6)),),
    "8": (
        (
            (1, 3),
            (0, 2),
            (0, 1),
            (1, 0),
            (3, 0),
            (4, 1),
            (4, 2),
            (3, 3),
            (1, 3),
            (0, 4),
            (0, 5),
            (1, 6),
            (3, 6),
            (4, 5),
            (4, 4),
            (3, 3),
        ),
    ),
    "9": (((4, 3), (1, 3), (0, 2), (0, 1), (1, 0), (3, 0), (4, 1), (4, 5), (3, 6), (1, 6)),),
    "-": (((1, 3), (3, 3)),),
    "_": (((0, 6), (4, 6)),),
    "+": (((2, 1), (2, 5)), ((0, 3), (4, 3))),
    ".": (((1.5, 6), (2.5, 6)),),
    ",": (((2, 5), (1.5, 7)),),
    ":": (((1.5, 1.5), (2.5, 1.5)), ((1.5, 4.5), (2.5, 4.5))),
    "/": (((4, 0), (0, 6)),),
    "(": (((3, 0), (2, 1), (2, 5), (3, 6)),),
    ")": (((1, 0), (2, 1), (2, 5), (1, 6)),),
    "?": (((0, 1), (1, 0), (3, 0), (4, 1), (4, 2), (2, 3.5), (2, 4.5)), ((1.5, 6), (2.5, 6))),
    "%": (((0, 6), (4, 0)), ((0, 0), (1, 0), (1, 1), (0, 1), (0, 0)), ((3, 5), (4, 5), (4, 6), (3, 6), (3, 5))),
    "#": (((1, 0), (1, 6)), ((3, 0), (3, 6)), ((0, 2), (4, 2)), ((0, 4), (4, 4))),
    " ": (),
}
_MISSING = (((0, 0), (4, 0), (4, 6), (0, 6), (0, 0)),)


@functools.lru_cache(maxsize=256)
def glyph_segments(char: str) -> np.ndarray:
    """(K, 2, 2) float32 segments [segment, end, xy] of one character, grid units."""
    strokes = _GLYPHS.get(char.upper(), _MISSING)
    segs = [(a, b) for stroke in strokes for a, b in zip(stroke[:-1], stroke[1:])]
    return np.asarray(segs, np.float32).reshape(-1, 2, 2)


def text_width(text: str, height: float) -> float:
    """Width, px, of `text` drawn `height` px tall (last glyph without its trailing space)."""
    unit = height / CELL_H
    return max(0.0, (len(text) * ADVANCE - (ADVANCE - CELL_W)) * unit) if text else 0.0


def text_segments(text: str, x: float, y: float, height: float) -> np.ndarray:
    """(M, 2, 2) float32 segments of `text` with its top-left corner at (x, y) px, `height` px tall."""
    unit = height / CELL_H
    parts = []
    for i, char in enumerate(text):
        segs = glyph_segments(char)
        if segs.size:
            parts.append(segs * unit + np.array([x + i * ADVANCE * unit, y], np.float32))
    return np.concatenate(parts) if parts else np.zeros((0, 2, 2), np.float32)


def has_glyph(char: str) -> bool:
    return char.upper() in _GLYPHS


__all__ = ("ADVANCE", "CELL_H", "CELL_W", "glyph_segments", "has_glyph", "text_segments", "text_width")
